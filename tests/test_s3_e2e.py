"""The pipeline on a real S3 endpoint (moto_server over HTTP, a separate process): the default
pipeline entirely on S3, source included; a mixed one (local workspace, S3 registry); the
requests a no-op rerun makes; and the errors a user gets for a bad bucket, endpoint or URI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from tests.conftest import (
    ALL_TASKS,
    FAKE_ACCESS_KEY,
    FAKE_SECRET_KEY,
    NO_SUITES,
    VERSION_FILES,
    S3Endpoint,
    csv_source,
    free_port,
    run_json,
    run_mlcd,
    write_config,
)

pytestmark = pytest.mark.e2e
DATE = "2026-01-15"
MODEL = "breast-cancer"


def s3_config(folder: Path, bucket: str, **changes: Any) -> Path:
    """The default pipeline with its source, workspace and registry in ``bucket``; the source is
    a daily partition, ``raw/{date}/data.csv``."""
    config = write_config(
        folder, workspace=f"s3://{bucket}/workspace", publish=f"s3://{bucket}/registry", **changes
    )
    data = yaml.safe_load(config.read_text())
    data["source"] = {"path": f"s3://{bucket}/raw/{{date}}/data.csv"}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def s3_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("mlcd: s3 ")]


@pytest.fixture(scope="module")
def on_s3(s3_endpoint: S3Endpoint, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The default pipeline run once with everything on S3."""
    folder = tmp_path_factory.mktemp("on-s3")
    bucket = s3_endpoint.bucket()
    source = csv_source(folder / "upload")
    s3_endpoint.client().put_object(
        Bucket=bucket, Key=f"raw/{DATE}/data.csv", Body=source.read_bytes()
    )
    config = s3_config(folder / "site", bucket)
    started = time.perf_counter()
    code, report, err = run_json(config, date=DATE, env={"MLCD_S3_TRACE": "1"})
    seconds = time.perf_counter() - started
    assert code == 0, err
    print(f"\ndefault pipeline on S3: {seconds:.1f} s, {len(s3_lines(err))} S3 requests")
    return SimpleNamespace(
        bucket=bucket, folder=folder, config=config, report=report, err=err, seconds=seconds
    )


def test_default_pipeline_runs_entirely_on_s3(on_s3, s3_endpoint):
    objects = s3_endpoint.objects(on_s3.bucket)
    version = on_s3.report["published"]["version"]
    prefix = f"registry/{MODEL}/versions/{version}/"
    assert sorted(k[len(prefix) :] for k in objects if k.startswith(prefix)) == VERSION_FILES
    pointer = json.loads(objects[f"registry/{MODEL}/production.json"])
    assert pointer["version"] == version
    log = objects[f"registry/{MODEL}/promotions.jsonl"].decode().splitlines()
    assert [json.loads(line)["version"] for line in log] == [version]
    # every task folder is sealed, and nothing was written on local disk but the config
    stages = {k.split("/")[1] for k in objects if k.endswith("/_SUCCESS.json")}
    assert stages == {
        "extract",
        "validate_data",
        "split",
        "validate_split",
        "train",
        "evaluate",
        "validate_model",
        "publish",
    }
    assert sorted(p.name for p in (on_s3.folder / "site").iterdir()) == ["pipeline.yaml"]
    assert on_s3.report["run_manifest"].startswith(f"s3://{on_s3.bucket}/workspace/runs/")
    # the version's files are what its manifest says
    manifest = json.loads(objects[prefix + "manifest.json"])
    for rel, info in manifest["artifacts"].items():
        assert len(objects[prefix + rel]) == info["bytes"]
    assert manifest["source_fingerprint"]["etag"] and "sha256" not in manifest["source_fingerprint"]


def test_registry_commands_read_an_s3_registry(on_s3):
    listed = run_mlcd("models", "list", MODEL, "--config", str(on_s3.config), "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)["versions"]
    assert row["version"] == on_s3.report["published"]["version"] and row["production"]
    runs = run_mlcd("runs", "list", "--config", str(on_s3.config))
    assert runs.returncode == 0 and on_s3.report["run_id"] in runs.stdout


def test_a_no_op_rerun_on_s3_makes_two_requests_per_task(on_s3):
    started = time.perf_counter()
    code, report, err = run_json(on_s3.config, date=DATE, env={"MLCD_S3_TRACE": "1"})
    seconds = time.perf_counter() - started
    assert code == 0, err
    assert report["ran"] == [] and len(report["already_complete"]) == len(ALL_TASKS)
    lines = s3_lines(err)
    kinds = Counter(line.split()[2] for line in lines)
    print(f"\nno-op rerun on S3: {len(lines)} requests {dict(kinds)} in {seconds:.1f} s")
    print("\n".join(lines))
    # each of the eight steps: its seal (GET) and a listing of its folder
    assert sum("/_SUCCESS.json" in line for line in lines) == 8
    assert sum("list-type=2" in line for line in lines) <= 9  # + the version's folder
    # and the run's own: the source's HEAD, the snapshot's, production.json, the run manifest
    assert len(lines) <= 2 * len(ALL_TASKS) + 3
    assert kinds["PUT"] == 1  # the run manifest; nothing else is written


def test_mixed_local_workspace_and_s3_registry_publish_the_same_model(on_s3, s3_endpoint, tmp_path):
    bucket = s3_endpoint.bucket()
    csv_source(tmp_path)
    config = write_config(tmp_path, publish=f"s3://{bucket}/registry")
    data = yaml.safe_load(config.read_text())
    data["source"] = {"path": "data.csv"}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    code, report, err = run_json(config, date=DATE)
    assert code == 0, err
    assert (tmp_path / "workspace" / "train").is_dir() and not (tmp_path / "registry").exists()
    ours = s3_endpoint.objects(bucket)
    theirs = s3_endpoint.objects(on_s3.bucket)

    def version_file(objects: dict[str, bytes], version: str, name: str) -> bytes:
        return objects[f"registry/{MODEL}/versions/{version}/{name}"]

    mine, other = report["published"]["version"], on_s3.report["published"]["version"]
    # another source fingerprint (a local sha256, not an ETag): another version id; the same
    # data, split and model parameters: the same model, byte for byte, and the same metrics
    assert mine != other
    assert version_file(ours, mine, "model.joblib") == version_file(theirs, other, "model.joblib")
    assert version_file(ours, mine, "metrics.json") == version_file(theirs, other, "metrics.json")


def test_no_secret_is_written_or_printed(on_s3, s3_endpoint, tmp_path):
    status = run_mlcd("status", "--config", str(on_s3.config), "--date", DATE)
    outputs = [on_s3.err, json.dumps(on_s3.report), status.stdout, status.stderr]
    written = list(s3_endpoint.objects(on_s3.bucket).values())
    written += [p.read_bytes() for p in on_s3.folder.rglob("*") if p.is_file()]
    assert written and outputs
    for secret in (FAKE_ACCESS_KEY, FAKE_SECRET_KEY):
        assert not any(secret in text for text in outputs)
        assert not any(secret.encode() in blob for blob in written)


# --- daily partitions -------------------------------------------------------------------------


def test_a_missing_daily_partition_is_a_data_error_and_changes_nothing(on_s3, s3_endpoint):
    before = s3_endpoint.objects(on_s3.bucket)
    result = run_mlcd("run", "--config", str(on_s3.config), "--date", "2026-01-16")
    assert result.returncode == 4, result.stderr
    assert f"s3://{on_s3.bucket}/raw/2026-01-16/data.csv" in result.stderr
    assert "does not exist" in result.stderr
    after = s3_endpoint.objects(on_s3.bucket)
    assert {k: v for k, v in after.items() if "/runs/" not in k} == {
        k: v for k, v in before.items() if "/runs/" not in k
    }


def test_a_new_partition_is_a_new_source(on_s3, s3_endpoint, tmp_path):
    bucket = s3_endpoint.bucket()
    body = s3_endpoint.client().get_object(Bucket=on_s3.bucket, Key=f"raw/{DATE}/data.csv")
    rows = body["Body"].read().decode().splitlines()
    client = s3_endpoint.client()
    client.put_object(Bucket=bucket, Key="raw/2026-01-15/data.csv", Body="\n".join(rows) + "\n")
    client.put_object(Bucket=bucket, Key="raw/2026-01-16/data.csv", Body="\n".join(rows[:-40]))
    config = s3_config(tmp_path, bucket, validation=NO_SUITES)
    status = {}
    for day in ("2026-01-15", "2026-01-16"):
        result = run_mlcd("status", "--config", str(config), "--date", day, "--json")
        assert result.returncode == 0, result.stderr
        status[day] = {t["task"]: t["identity"] for t in json.loads(result.stdout)["tasks"]}
    assert status["2026-01-15"]["ExtractData"] != status["2026-01-16"]["ExtractData"]


# --- errors -------------------------------------------------------------------------------------


def assert_nothing_published(s3_endpoint: S3Endpoint, bucket: str) -> None:
    assert not [k for k in s3_endpoint.objects(bucket) if k.startswith("registry/")]


def test_a_bucket_that_does_not_exist_is_named(on_s3, s3_endpoint, tmp_path):
    bucket = s3_endpoint.bucket()
    s3_endpoint.client().put_object(
        Bucket=bucket,
        Key=f"raw/{DATE}/data.csv",
        Body=(on_s3.folder / "upload/data.csv").read_bytes(),
    )
    config = s3_config(tmp_path, bucket, validation=NO_SUITES)
    data = yaml.safe_load(config.read_text())
    data["workspace"] = "s3://mlcd-no-such-bucket/workspace"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    result = run_mlcd("run", "--config", str(config), "--date", DATE)
    assert result.returncode == 7, result.stderr
    assert "bucket 'mlcd-no-such-bucket' does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert_nothing_published(s3_endpoint, bucket)


def test_an_unreachable_endpoint_is_named(on_s3, tmp_path):
    port = free_port()  # nothing listens there
    result = run_mlcd(
        "run",
        "--config",
        str(on_s3.config),
        "--date",
        DATE,
        env={"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_MAX_ATTEMPTS": "2"},
    )
    assert result.returncode == 7, result.stderr
    assert f"cannot reach the S3 endpoint http://127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "key, value, problem",
    [
        ("workspace", "s3://Bad_Bucket/x", "not a valid S3 bucket name"),
        ("publish", "s3://ok-bucket/a/../b", "'..'"),
        ("workspace", "gs://bucket/x", "gs:// scheme is not supported"),
    ],
)
def test_an_invalid_uri_is_a_config_error_naming_the_key(tmp_path, key, value, problem):
    config = write_config(tmp_path, **{key: value})
    result = run_mlcd("run", "--config", str(config), "--date", DATE)
    assert result.returncode == 2, result.stderr
    assert f"'{key}'" in result.stderr and problem in result.stderr
    assert not (tmp_path / "workspace").exists() and not (tmp_path / "registry").exists()


@pytest.fixture(scope="module")
def locked_endpoint(tmp_path_factory: pytest.TempPathFactory):
    """A second S3 endpoint that checks credentials (moto's IAM), with a bucket and a user
    whose policy does not allow it."""
    import boto3

    port = free_port()
    log = tmp_path_factory.mktemp("moto-iam") / "moto.log"
    server = str(Path(sys.executable).parent / "moto_server")
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "5"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [server, "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        admin = {
            "endpoint_url": url,
            "region_name": "us-east-1",
            "aws_access_key_id": "AKIAADMIN0000000000",
            "aws_secret_access_key": "admin",
        }
        deadline = time.monotonic() + 60
        while True:
            try:
                boto3.client("s3", **admin).create_bucket(Bucket="mlcd-locked")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="reader")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="reader", PolicyName="p", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        yield SimpleNamespace(url=url, key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_access_denied_is_named_and_the_secret_is_not(locked_endpoint, tmp_path):
    csv_source(tmp_path)
    config = write_config(tmp_path, publish="s3://mlcd-locked/registry", validation=NO_SUITES)
    data = yaml.safe_load(config.read_text())
    data["source"] = {"path": "data.csv"}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    env = {
        "AWS_ENDPOINT_URL": locked_endpoint.url,
        "AWS_ACCESS_KEY_ID": locked_endpoint.key,
        "AWS_SECRET_ACCESS_KEY": locked_endpoint.secret,
    }
    result = run_mlcd("run", "--config", str(config), "--date", DATE, env=env)
    assert result.returncode == 7, result.stderr
    assert re.search(r"access denied to s3://mlcd-locked/registry", result.stderr)
    assert locked_endpoint.secret not in result.stderr + result.stdout


# --- transient faults ---------------------------------------------------------------------------


def faulty_setup(s3_endpoint: S3Endpoint, on_s3: SimpleNamespace, folder: Path) -> tuple[str, Path]:
    bucket = s3_endpoint.bucket()
    body = (on_s3.folder / "upload/data.csv").read_bytes()
    s3_endpoint.client().put_object(Bucket=bucket, Key=f"raw/{DATE}/data.csv", Body=body)
    return bucket, s3_config(folder, bucket, validation=NO_SUITES)


def test_the_pipeline_finishes_through_ten_percent_of_faults(on_s3, s3_endpoint, tmp_path):
    from tests.faulty_s3 import FaultyProxy

    bucket, config = faulty_setup(s3_endpoint, on_s3, tmp_path)
    with FaultyProxy(s3_endpoint.url, rate=0.1, seed=7) as proxy:
        code, report, err = run_json(config, date=DATE, env={"AWS_ENDPOINT_URL": proxy.url})
    assert code == 0, err
    assert sum(proxy.injected.values()) > 0, "no fault was injected"
    print(f"\n10% faults: {dict(proxy.injected)} injected, {proxy.forwarded} forwarded")
    objects = s3_endpoint.objects(bucket)
    version = report["published"]["version"]
    assert json.loads(objects[f"registry/{MODEL}/production.json"])["version"] == version
    model = objects[f"registry/{MODEL}/versions/{version}/model.joblib"]
    theirs = s3_endpoint.objects(on_s3.bucket)
    assert (
        model
        == theirs[f"registry/{MODEL}/versions/{on_s3.report['published']['version']}/model.joblib"]
    )


def test_an_endpoint_that_always_fails_stops_the_run_cleanly(on_s3, s3_endpoint, tmp_path):
    from tests.faulty_s3 import FaultyProxy

    bucket, config = faulty_setup(s3_endpoint, on_s3, tmp_path)
    with FaultyProxy(s3_endpoint.url, rate=1.0, faults=("500", "503")) as proxy:
        result = run_mlcd(
            "run",
            "--config",
            str(config),
            "--date",
            DATE,
            env={"AWS_ENDPOINT_URL": proxy.url, "AWS_MAX_ATTEMPTS": "2"},
        )
    assert result.returncode == 7, result.stderr
    assert proxy.url in result.stderr and "after 2 attempts" in result.stderr
    assert "Traceback" not in result.stderr
    assert_nothing_published(s3_endpoint, bucket)
