"""Crashes anywhere and races: mlcd SIGKILLed before, during and after any task's write (local
disk and S3), luigid SIGKILLed and restarted mid-run, five runs of one date through one luigid,
and two runs on different data racing to publish one model.

The kills come from tests/crash/sitecustomize.py, on the PYTHONPATH of the mlcd process only:
it patches ``mlcd.storage`` (and ``os.replace``/``os.rename``, and a botocore event hook) so the
process dies at an exact point of an exact write. After every kill the killed task must not be
taken as complete, and a plain rerun must publish the same model and metrics, byte for byte, as
an uninterrupted run.

By default a representative subset of crash points runs (every task once, every point, both
backends); ``MLCD_SLOW_TESTS=1`` runs the whole matrix (docs/faults.md lists it and what
happened). ``MLCD_FAULT_LEDGER=FILE`` appends one JSON line per fault injected to FILE.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import (
    MLCD,
    ROOT,
    Luigid,
    S3Endpoint,
    csv_config,
    csv_source,
    run_json,
    run_mlcd,
)

pytestmark = pytest.mark.e2e

DATE = "2026-01-15"
MODEL = "breast-cancer"
HARNESS = {"PYTHONPATH": str(ROOT / "tests" / "crash")}
SLOW = os.environ.get("MLCD_SLOW_TESTS") == "1"
POINTS = ("before", "during", "after")
STAGES = {
    "ExtractData": "extract",
    "ValidateData": "validate_data",
    "SplitData": "split",
    "ValidateSplit": "validate_split",
    "TrainModel": "train",
    "EvaluateModel": "evaluate",
    "ValidateModel": "validate_model",
    "PublishModel": "publish",
}
TASKS = list(STAGES)
ID = "[0-9a-f]{16}"
VERSION_DIR = rf"/{MODEL}/versions/{ID}"


def output(stage: str, name: str) -> str:
    return rf"/{stage}/{ID}/{re.escape(name)}$"


# The write each task is crashed around: the output the task exists to produce.
CHOSEN = {
    "ExtractData": ("snapshot", r"/snapshots/[0-9a-f]{64}\.parquet$"),
    "ValidateData": ("verdict.json", output("validate_data", "verdict.json")),
    "SplitData": ("split.parquet", output("split", "split.parquet")),
    "ValidateSplit": ("verdict.json", output("validate_split", "verdict.json")),
    "TrainModel": ("model.joblib", output("train", "model.joblib")),
    "EvaluateModel": ("metrics.json", output("evaluate", "metrics.json")),
    "ValidateModel": ("verdict.json", output("validate_model", "verdict.json")),
    "PublishModel": ("version folder", VERSION_DIR + "$"),
}
# Further writes worth a kill: a seal, the version's files on S3, and the registry's pointer and
# log (the pointer moved but its log line not written yet is the case the registry recovers).
EXTRA = {
    "seal": ("TrainModel", output("train", "_SUCCESS.json")),
    "version model.joblib": ("PublishModel", VERSION_DIR + r"/model\.joblib$"),
    "version manifest.json": ("PublishModel", VERSION_DIR + r"/manifest\.json$"),
    "production.json": ("PublishModel", rf"/{MODEL}/production\.json$"),
    "promotions.jsonl": ("PublishModel", rf"/{MODEL}/promotions\.jsonl$"),
}


@dataclass(frozen=True)
class Fault:
    backend: str  # local | s3
    task: str
    point: str  # before | during | after
    file: str

    @property
    def regex(self) -> str:
        if self.file in EXTRA:
            return EXTRA[self.file][1]
        name, regex = CHOSEN[self.task]
        assert name == self.file
        return regex

    @property
    def id(self) -> str:
        return f"{self.backend}-{self.task}-{self.point}-{self.file.replace(' ', '_')}"


def chosen(backend: str, task: str, point: str) -> Fault:
    if backend == "s3" and task == "PublishModel" and point == "during":
        # S3 has no rename: "during" the version is during the multipart upload of its model.
        return Fault(backend, task, point, "version model.joblib")
    return Fault(backend, task, point, CHOSEN[task][0])


def extra(backend: str, point: str, file: str) -> Fault:
    return Fault(backend, EXTRA[file][0], point, file)


LOCAL_ALL = [chosen("local", t, p) for t in TASKS for p in POINTS] + [
    extra("local", "during", "seal"),
    extra("local", "during", "production.json"),
    extra("local", "after", "production.json"),
    extra("local", "after", "promotions.jsonl"),
]
LOCAL_SUBSET = [
    chosen("local", "ExtractData", "after"),
    chosen("local", "ValidateData", "before"),
    chosen("local", "SplitData", "during"),
    chosen("local", "ValidateSplit", "after"),
    chosen("local", "TrainModel", "during"),
    chosen("local", "EvaluateModel", "after"),
    chosen("local", "ValidateModel", "during"),
    chosen("local", "PublishModel", "during"),
    chosen("local", "PublishModel", "after"),
    extra("local", "after", "production.json"),
]
S3_ALL = [chosen("s3", t, p) for t in TASKS for p in POINTS] + [
    extra("s3", "during", "seal"),
    extra("s3", "before", "version manifest.json"),
    extra("s3", "during", "production.json"),
    extra("s3", "after", "production.json"),
    extra("s3", "after", "promotions.jsonl"),
]
S3_SUBSET = [
    chosen("s3", "TrainModel", "during"),
    chosen("s3", "PublishModel", "during"),
    extra("s3", "before", "version manifest.json"),
    extra("s3", "after", "production.json"),
]
FAULTS = (LOCAL_ALL + S3_ALL) if SLOW else (LOCAL_SUBSET + S3_SUBSET)


# --- reading a workspace or registry from the test ----------------------------------------------


class Store:
    """A workspace or registry location (a local folder or an s3:// URI), read from here."""

    def __init__(self, location: str, s3: S3Endpoint | None = None) -> None:
        self.location = location.rstrip("/")
        self.client = s3.client() if location.startswith("s3://") and s3 else None

    def _bucket_key(self, rel: str) -> tuple[str, str]:
        bucket, _, prefix = self.location[len("s3://") :].partition("/")
        return bucket, f"{prefix}/{rel}" if prefix else rel

    def read(self, rel: str) -> bytes | None:
        if self.client is None:
            path = Path(self.location) / rel
            return path.read_bytes() if path.is_file() else None
        bucket, key = self._bucket_key(rel)
        try:
            return bytes(self.client.get_object(Bucket=bucket, Key=key)["Body"].read())
        except self.client.exceptions.NoSuchKey:
            return None

    def files(self) -> list[str]:
        """Every file under the location, relative to it."""
        if self.client is None:
            root = Path(self.location)
            return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        bucket, prefix = self._bucket_key("")
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix
        ):
            found += [item["Key"][len(prefix) :] for item in page.get("Contents") or []]
        return sorted(found)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_seals(workspace: Store, registry: Store) -> int:
    """Every seal in the workspace lists outputs that are there with the recorded digest (no
    partial output was ever sealed); the number of seals."""
    seals = [f for f in workspace.files() if f.endswith("/_SUCCESS.json")]
    for rel in seals:
        folder = rel.rsplit("/", 1)[0]
        for name, record in json.loads(workspace.read(rel) or b"")["outputs"].items():
            store, path = {
                "folder": (workspace, f"{folder}/{record['path']}"),
                "workspace": (workspace, record["path"]),
                "publish": (registry, record["path"]),
            }[record["root"]]
            data = store.read(path)
            assert data is not None, f"{rel} lists {name}, which is missing"
            assert sha256(data) == record["sha256"], f"{rel}: {name} is not what was sealed"
    return len(seals)


def check_production(registry: Store) -> tuple[str, dict[str, bytes]]:
    """Production's version, after checking every file of it against its manifest and the model
    against the digest the pointer recorded; its files."""
    pointer = json.loads(registry.read(f"{MODEL}/production.json") or b"null")
    assert pointer is not None, "nothing in production"
    version = pointer["version"]
    folder = f"{MODEL}/versions/{version}"
    manifest = json.loads(registry.read(f"{folder}/manifest.json") or b"null")
    assert manifest is not None, f"version {version} has no manifest"
    files = {}
    for rel, info in manifest["artifacts"].items():
        data = registry.read(f"{folder}/{rel}")
        assert data is not None, f"{folder}/{rel} is missing"
        assert (sha256(data), len(data)) == (info["sha256"], info["bytes"]), f"{folder}/{rel}"
        files[rel] = data
    assert pointer["model_sha256"] == sha256(files["model.joblib"])
    return version, files


def promotion_log(registry: Store) -> list[dict[str, Any]]:
    raw = registry.read(f"{MODEL}/promotions.jsonl") or b""
    return [json.loads(line) for line in raw.decode().splitlines()]  # every line whole


# --- the baseline: one uninterrupted run --------------------------------------------------------


@dataclass
class Baseline:
    version: str
    model: bytes
    metrics: bytes


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    folder = tmp_path_factory.mktemp("baseline")
    code, report, err = run_json(csv_config(folder, suites=False), date=DATE)
    assert code == 0, err
    version, files = check_production(Store(str(folder / "registry")))
    assert version == report["published"]["version"]
    return Baseline(version, files["model.joblib"], files["metrics.json"])


def ledger(row: dict[str, Any]) -> None:
    """One line of docs/faults.md's tables, when MLCD_FAULT_LEDGER names a file."""
    path = os.environ.get("MLCD_FAULT_LEDGER")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, sort_keys=True) + "\n")


# --- 1. crash anywhere ------------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.id)
def test_a_run_killed_anywhere_leaves_nothing_complete_and_a_rerun_publishes_the_same_model(
    fault: Fault, baseline: Baseline, tmp_path: Path, request: pytest.FixtureRequest
):
    if fault.backend == "s3":
        s3: S3Endpoint | None = request.getfixturevalue("s3_endpoint")
        assert s3 is not None
        bucket = s3.bucket("crash")
        where = {"workspace": f"s3://{bucket}/workspace", "publish": f"s3://{bucket}/registry"}
    else:
        s3, where = None, {"workspace": "workspace", "publish": "registry"}
    config = csv_config(tmp_path, suites=False, **where)
    base = {k: v if v.startswith("s3://") else str(tmp_path / v) for k, v in where.items()}
    workspace, registry = Store(base["workspace"], s3), Store(base["publish"], s3)

    env = {**HARNESS, "MLCD_TEST_CRASH": f"{fault.point}:{fault.regex}"}
    killed = run_mlcd("run", "--config", str(config), "--date", DATE, env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    announced = re.search(rf"^crash-harness: kill {fault.point} \S+.* (\S+)$", killed.stderr, re.M)
    assert announced and re.search(fault.regex, announced[1]), killed.stderr[-3000:]

    # Nothing is taken as complete that is not sealed, and the killed task is not sealed.
    status = run_mlcd("status", "--config", str(config), "--date", DATE, "--json")
    assert status.returncode == 0, status.stderr
    rows = {row["task"]: row for row in json.loads(status.stdout)["tasks"]}
    assert set(rows) == set(TASKS)
    killed_at = TASKS.index(fault.task)
    for index, task in enumerate(TASKS):
        sealed = workspace.read(f"{STAGES[task]}/{rows[task]['identity']}/_SUCCESS.json")
        assert rows[task]["complete"] == (sealed is not None), task
        assert rows[task]["complete"] == (index < killed_at), task
    check_seals(workspace, registry)

    code, report, err = run_json(config, date=DATE)
    assert code == 0, err[-3000:]
    assert fault.task in report["ran"]
    assert set(report["already_complete"]) == set(TASKS[:killed_at])  # resumed where it died
    version, files = check_production(registry)
    check_seals(workspace, registry)
    assert version == baseline.version
    same = files["model.joblib"] == baseline.model and files["metrics.json"] == baseline.metrics
    assert same, "the rerun published another model or other metrics than an uninterrupted run"
    log = promotion_log(registry)
    assert [r["version"] for r in log] == [version]  # one promotion, none lost or doubled
    lost_log_line = fault.file == "production.json" and fault.point == "after"
    assert log[0].get("recovered", False) == lost_log_line
    if fault.backend == "s3":
        assert registry.read(f"{MODEL}/.lock") is None  # a dead holder's lock was taken over
    ledger(
        {
            "fault": fault.id,
            "backend": fault.backend,
            "task": fault.task,
            "point": fault.point,
            "file": fault.file,
            "killed_exit": killed.returncode,
            "rerun_exit": code,
            "identical": same,
        }
    )


# --- 2. luigid killed and restarted mid-run ---------------------------------------------------


@pytest.fixture
def luigid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Luigid]:
    server = Luigid(tmp_path_factory.mktemp("luigid"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def mlcd_run(config: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``mlcd run --json`` started in the background."""
    return subprocess.Popen(
        [MLCD, "run", "--config", str(config), "--date", DATE, "--json", *extra],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition: Callable[[], bool], procs: list[subprocess.Popen[str]]) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        for proc in procs:
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"mlcd ended early with {proc.returncode}: {err[-3000:]}")
        assert time.monotonic() < deadline, "the crash harness never reached its hold point"
        time.sleep(0.05)


def test_luigid_killed_and_restarted_mid_run_the_run_fails_cleanly_and_a_rerun_completes(
    luigid: Luigid, baseline: Baseline, tmp_path: Path
):
    config = csv_config(tmp_path / "site", suites=False)
    hold = tmp_path / "hold"
    hold.mkdir()
    # Luigi's worker retries a failed call to luigid 3 times, 30 s apart (rpc-retry-wait); 2 s
    # here keeps the test short and changes nothing else (LUIGI_CONFIG_PATH is read last).
    retry = tmp_path / "rpc-retry.cfg"
    retry.write_text("[core]\nrpc-retry-wait = 2\n")
    env = {
        **HARNESS,
        "MLCD_TEST_HOLD": f"before:{CHOSEN['TrainModel'][1]}",
        "MLCD_TEST_HOLD_DIR": str(hold),
        "LUIGI_CONFIG_PATH": str(retry),
    }
    run = mlcd_run(config, *luigid.args(), env=env)
    # TrainModel is running (held just before it writes the model) when luigid dies.
    wait_until(lambda: any(hold.glob("reached-*")), [run])
    luigid.kill()
    luigid.start()  # same port, same state path (luigid writes its state only on a clean stop)
    (hold / "go").touch()
    out, err = run.communicate(timeout=300)
    # The restarted luigid does not know the run's pending tasks: the worker finishes the task
    # in hand, finds nothing more to do and stops, and mlcd says the pipeline did not finish.
    assert run.returncode in (0, 5), err[-3000:]
    assert "Traceback" not in err
    if run.returncode == 5:
        assert "the pipeline did not finish" in err
    workspace = Store(str(tmp_path / "site" / "workspace"))
    registry = Store(str(tmp_path / "site" / "registry"))
    check_seals(workspace, registry)

    code, report, err = run_json(config, *luigid.args(), date=DATE)
    assert code == 0, err[-3000:]
    # The task in flight when luigid died finished and was sealed: it is not run again.
    assert "TrainModel" in report["already_complete"], report["ran"]
    version, files = check_production(registry)
    same = files["model.joblib"] == baseline.model and files["metrics.json"] == baseline.metrics
    assert version == baseline.version and same
    assert [r["version"] for r in promotion_log(registry)] == [version]
    ledger(
        {
            "fault": "luigid-SIGKILL-restart-during-TrainModel",
            "backend": "local",
            "task": "TrainModel",
            "point": "luigid killed and restarted while the task runs",
            "file": "-",
            "killed_exit": run.returncode,
            "rerun_exit": code,
            "identical": same,
        }
    )


# --- 3. races ---------------------------------------------------------------------------------


def test_five_runs_of_one_date_through_one_luigid_run_each_task_once_and_publish_once(
    luigid: Luigid, baseline: Baseline, tmp_path: Path
):
    config = csv_config(tmp_path, suites=False)
    runs = [mlcd_run(config, *luigid.args()) for _ in range(5)]
    results = [run.communicate(timeout=600) for run in runs]
    for run, (_, err) in zip(runs, results, strict=True):
        assert run.returncode == 0, err[-3000:]
    reports = [json.loads(out) for out, _ in results]
    ran = Counter(name for report in reports for name in report["ran"])
    assert ran == Counter([*TASKS, "RetrainPipeline"]), ran
    history = luigid.runs()
    assert set(history) >= set(TASKS) and set(history.values()) == {1}, history

    registry = Store(str(tmp_path / "registry"))
    version, files = check_production(registry)
    assert sorted({f.split("/")[2] for f in registry.files() if "/versions/" in f}) == [version]
    assert version == baseline.version and files["model.joblib"] == baseline.model
    assert [r["version"] for r in promotion_log(registry)] == [version]
    ledger(
        {
            "fault": "race-five-runs-one-luigid",
            "backend": "local",
            "task": "all",
            "point": "five `mlcd run` of one date at once through one luigid",
            "file": "-",
            "killed_exit": None,
            "rerun_exit": max(run.returncode for run in runs),
            "identical": files["model.joblib"] == baseline.model,
        }
    )


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_two_runs_on_different_data_racing_to_publish_leave_one_whole_version_in_production(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
):
    s3: S3Endpoint | None = None
    if backend == "s3":
        s3 = request.getfixturevalue("s3_endpoint")
        assert s3 is not None
        publish = f"s3://{s3.bucket('race')}/registry"
    else:
        publish = str(tmp_path / "registry")
    configs = []
    for name, rows in (("full", None), ("part", 400)):
        csv_source(tmp_path / name, rows=rows)
        # The champion gate is left out (tolerance 1): whichever publishes second would be
        # compared with the first on its own test set, which the first may have trained on.
        configs.append(
            csv_config(
                tmp_path / name,
                suites=False,
                publish=publish,
                gates={"champion": {"metric": "f1", "tolerance": 1.0}},
            )
        )
    assert yaml.safe_load(configs[0].read_text())["name"] == MODEL
    hold = tmp_path / "hold"
    hold.mkdir()
    # Both runs stop once their last gate is sealed and are let go together into PublishModel
    # (not later: publishing holds the registry's lock, which would hold the other run back).
    gate = output("validate_model", "_SUCCESS.json")
    env = {**HARNESS, "MLCD_TEST_HOLD": f"after:{gate}", "MLCD_TEST_HOLD_DIR": str(hold)}
    runs = [mlcd_run(config, "--local-scheduler", env=env) for config in configs]
    wait_until(lambda: len(list(hold.glob("reached-*"))) == 2, runs)
    (hold / "go").touch()
    results = [run.communicate(timeout=600) for run in runs]
    for run, (_, err) in zip(runs, results, strict=True):
        assert run.returncode == 0, err[-3000:]
    published = {json.loads(out)["published"]["version"] for out, _ in results}
    assert len(published) == 2

    registry = Store(publish, s3)
    version, _ = check_production(registry)
    assert version in published
    for other in published:  # both versions are whole
        manifest = json.loads(registry.read(f"{MODEL}/versions/{other}/manifest.json") or b"")
        for rel, info in manifest["artifacts"].items():
            data = registry.read(f"{MODEL}/versions/{other}/{rel}") or b""
            assert sha256(data) == info["sha256"], f"{other}/{rel}"
    log = promotion_log(registry)
    assert {r["version"] for r in log} == published and len(log) == 2
    assert log[0]["previous"] is None and log[1]["previous"] == log[0]["version"]
    pointer = json.loads(registry.read(f"{MODEL}/production.json") or b"")
    assert pointer["version"] == log[-1]["version"] and pointer["promotion_id"] == log[-1]["id"]
    assert registry.read(f"{MODEL}/.lock") in (None, b"")  # released
    ledger(
        {
            "fault": f"race-two-sources-publish-{backend}",
            "backend": backend,
            "task": "PublishModel",
            "point": "two runs on different data released together just before publishing",
            "file": "-",
            "killed_exit": None,
            "rerun_exit": max(run.returncode for run in runs),
            "identical": True,
        }
    )
