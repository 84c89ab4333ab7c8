"""S3-compatible stores that behave unlike AWS, emulated by a proxy in front of moto_server
(tests/faulty_s3.py): one that ignores If-None-Match / If-Match (as s3rver does), one that
refuses a quoted ETag in If-Match (as Ceph RGW 16 does); and a version whose manifest a killed
writer left truncated (11 of 40 kills on s3rver)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from mlcd import registry, storage
from mlcd.errors import StorageError
from mlcd.storage import s3
from mlcd.training import dump
from tests.conftest import MLCD, ROOT, write_config
from tests.faulty_s3 import FaultyProxy

NAME = "churn"


@pytest.fixture
def store(s3_endpoint, monkeypatch):
    """``store(quirk)``: this process's S3 client pointed at a proxy emulating that store."""
    proxies: list[FaultyProxy] = []

    def start(quirk: str | None) -> FaultyProxy:
        proxy = FaultyProxy(s3_endpoint.url, rate=0.0, quirk=quirk).__enter__()
        proxies.append(proxy)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setattr(s3, "_client", None)  # a new client, for the new endpoint
        monkeypatch.setattr(s3, "_conditional", {})  # probed afresh
        return proxy

    yield start
    for proxy in proxies:
        proxy.__exit__(None, None, None)


def test_a_store_that_ignores_conditional_writes_is_refused_before_anything_is_written(
    s3_endpoint, store
):
    bucket = s3_endpoint.bucket()
    proxy = store("ignores-conditions")
    with pytest.raises(StorageError) as info:
        storage.append_line(f"s3://{bucket}/registry/{NAME}/promotions.jsonl", "{}")
    message = str(info.value)
    assert f"the S3 store at {proxy.url} ignores conditional writes in bucket {bucket!r}" in message
    assert "If-None-Match: * replaced an existing object" in message
    assert "refuses to use it for a workspace or registry" in message
    assert s3_endpoint.objects(bucket) == {}  # the probe object is gone, nothing else written
    # once per bucket and process: the verdict is kept, the store is not probed again
    before = sum(proxy.requests.values())
    with pytest.raises(StorageError, match="ignores conditional writes"):
        storage.write_bytes(f"s3://{bucket}/lock", b"x", if_absent=True)
    assert sum(proxy.requests.values()) == before
    storage.write_bytes(f"s3://{bucket}/plain", b"unconditional writes still work")


def test_racing_publishers_on_a_store_without_conditional_writes_are_both_refused(
    s3_endpoint, tmp_path
):
    """Two `mlcd run` at once, registry and workspace on a store that ignores conditional
    writes: neither may publish (a race there lost a promotion line in 5 of 5 tries)."""
    bucket = s3_endpoint.bucket()
    off = {"enabled": False}
    validation = {"data_integrity": off, "train_test": off, "model_evaluation": off}
    with FaultyProxy(s3_endpoint.url, rate=0.0, quirk="ignores-conditions") as proxy:
        procs = []
        for i in range(2):
            config = write_config(
                tmp_path / f"publisher{i}",
                workspace=f"s3://{bucket}/workspace",
                publish=f"s3://{bucket}/registry",
                validation=validation,
            )
            procs.append(
                subprocess.Popen(
                    [MLCD, "run", "--config", str(config), "--date", "2026-01-15"],
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env={**_env(), "AWS_ENDPOINT_URL": proxy.url},
                )
            )
        results = [p.communicate(timeout=300) for p in procs]
        requests = dict(proxy.requests)
    print(f"\nrace on a store without conditional writes: requests {requests}")
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 7, err[-2000:]
        assert "ignores conditional writes" in err and "Traceback" not in err
    assert s3_endpoint.objects(bucket) == {}  # refused before any work: nothing written


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def publish(version: str, publish_root: str) -> None:
    x, y = load_iris(return_X_y=True)
    blob = dump(LogisticRegression(max_iter=300).fit(x, y))
    files = {"model.joblib": blob, "verdict.json": b'{"passed": true, "gates": []}\n'}
    assert registry.publish_version(publish_root, NAME, version, files, {"version": version})


def test_a_store_that_refuses_quoted_etags_in_if_match_promotes_and_rolls_back(
    s3_endpoint, store
):
    bucket = s3_endpoint.bucket()
    root = f"s3://{bucket}/registry"
    proxy = store("unquoted-if-match")
    for version in ("v1", "v2", "v3"):
        publish(version, root)
        registry.set_production(root, NAME, version, actor="run", reason="test", extra={})
    registry.rollback(root, NAME, reason="v3 is bad")
    assert registry.production(root, NAME)["version"] == "v2"
    log = storage.read_bytes(f"{root}/{NAME}/promotions.jsonl").decode().splitlines()
    assert [json.loads(line)["version"] for line in log] == ["v1", "v2", "v3", "v2"]
    assert s3._conditional[(proxy.url, bucket)] == "unquoted"


def test_a_truncated_manifest_left_by_a_killed_writer_is_replaced_never_promoted(s3_endpoint):
    bucket = s3_endpoint.bucket()
    root = f"s3://{bucket}/registry"
    client = s3_endpoint.client()
    key = f"registry/{NAME}/versions/v1"
    client.put_object(Bucket=bucket, Key=f"{key}/model.joblib", Body=b"half a model")
    client.put_object(Bucket=bucket, Key=f"{key}/manifest.json", Body=b"")  # 0 bytes: killed
    with pytest.raises(StorageError, match="not valid JSON"):
        registry.check_promotable(root, NAME, "v1", force=True)
    publish("v1", root)  # the rerun writes the version again: the truncated one counts as absent
    manifest = registry.read_manifest(root, NAME, "v1")
    assert manifest["version"] == "v1" and "model.joblib" in manifest["artifacts"]
    assert not registry.verify_version(root, NAME, "v1", manifest)

    # a whole manifest that names another version (a folder copied over) is not this version
    client.put_object(
        Bucket=bucket, Key=f"registry/{NAME}/versions/v2/manifest.json", Body=b'{"version": "v9"}'
    )
    with pytest.raises(StorageError, match="names version 'v9', not 'v2'"):
        registry.check_promotable(root, NAME, "v2", force=True)
    publish("v2", root)
    assert registry.read_manifest(root, NAME, "v2")["version"] == "v2"


def test_a_damaged_local_manifest_is_never_promoted_either(tmp_path: Path):
    (tmp_path / NAME / "versions" / "v1").mkdir(parents=True)
    (tmp_path / NAME / "versions" / "v1" / "manifest.json").write_bytes(b"{")
    with pytest.raises(StorageError, match="not valid JSON"):
        registry.check_promotable(str(tmp_path), NAME, "v1", force=True)


def test_a_store_stopped_mid_run_is_reported_by_the_write_that_failed(s3_endpoint, tmp_path):
    """The store goes away at ValidateSplit's first write: the run's one error line names that
    write and the task, not a later read of some task's seal by the summary."""
    bucket = s3_endpoint.bucket()
    off = {"enabled": False}
    config = write_config(
        tmp_path,
        workspace=f"s3://{bucket}/workspace",
        publish=f"s3://{bucket}/registry",
        validation={"data_integrity": off, "train_test": off, "model_evaluation": off},
    )
    with FaultyProxy(s3_endpoint.url, rate=0.0, stop_on=("PUT", "/validate_split/")) as proxy:
        result = subprocess.run(
            [MLCD, "run", "--config", str(config), "--date", "2026-01-15"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env={**_env(), "AWS_ENDPOINT_URL": proxy.url, "AWS_MAX_ATTEMPTS": "2"},
        )
    assert result.returncode == 7, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("mlcd: storage error: ValidateSplit: cannot write s3://"), last
    assert "/validate_split/" in last and "Traceback" not in result.stderr
    assert not [k for k in s3_endpoint.objects(bucket) if k.startswith("registry/")]


def test_a_frozen_store_is_named_with_the_request_waited_for(s3_endpoint, monkeypatch, capfd):
    """A store that stops answering (each request held 3 s): a line says what mlcd waits for,
    at MLCD_S3_WAIT_NOTICE seconds, instead of silence until the timeouts and retries end."""
    bucket = s3_endpoint.bucket()
    monkeypatch.setenv("MLCD_S3_WAIT_NOTICE", "1")
    monkeypatch.setattr(s3, "_waiting", s3._Waiting())
    with FaultyProxy(s3_endpoint.url, rate=1.0, faults=("delay",), delay=3.0) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setattr(s3, "_client", None)
        storage.write_bytes(f"s3://{bucket}/slow/answer", b"eventually")
        err = capfd.readouterr().err
        proxy.rate = 0.0
        assert storage.read_bytes(f"s3://{bucket}/slow/answer") == b"eventually"
    expected = f"mlcd: waiting for the S3 store at {proxy.url}: PUT {proxy.url}/{bucket}/slow/"
    assert expected in err, err
    assert "has had no answer for" in err and "read_timeout 60 s" in err
