"""Shared fixtures: pipeline configs in a temporary folder and ``mlcd`` run as a real process."""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "config"
MLCD = str(Path(sys.executable).parent / "mlcd")


# The pipeline's steps in order, and every task a run reports (with the RetrainPipeline wrapper).
STEPS = [
    "ExtractData",
    "ValidateData",
    "SplitData",
    "ValidateSplit",
    "TrainModel",
    "EvaluateModel",
    "ValidateModel",
    "PublishModel",
]
ALL_TASKS = sorted([*STEPS, "RetrainPipeline"])

# What a published version folder holds (the default, classification, pipeline).
VERSION_FILES = [
    "input_example.json",
    "manifest.json",
    "metrics.json",
    "model.joblib",
    "plots/confusion_matrix.png",
    "plots/roc_curve.png",
    "predictions.parquet",
    "profile.json",
    "reports/data_integrity.html",
    "reports/model_evaluation.html",
    "reports/train_test.html",
    "schema.json",
    "verdict.json",
]


# Known fake credentials: the S3 tests search every output for them (they must never be written).
FAKE_ACCESS_KEY = "AKIAMLCDFAKE7Q3XK2PZ"
FAKE_SECRET_KEY = "mlcdFakeSecret/9vT2wQ8rL5nB1xZ7cK4mH6jD3sA0"


class S3Endpoint:
    """A real S3 endpoint over HTTP (moto_server, a separate process on 127.0.0.1)."""

    def __init__(self, url: str, log: Path) -> None:
        self.url, self.log = url, log
        self.env = {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=FAKE_ACCESS_KEY,
            aws_secret_access_key=FAKE_SECRET_KEY,
        )

    def bucket(self, prefix: str = "mlcd") -> str:
        """A new, empty bucket."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str) -> dict[str, bytes]:
        """Every object in ``bucket``: key -> bytes."""
        client = self.client()
        found: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents") or []:
                body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                found[item["Key"]] = body
        return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """moto_server for the whole session; its address and the fake credentials are exported to
    this process and to every mlcd it starts (boto3 reads AWS_ENDPOINT_URL)."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    server = str(Path(sys.executable).parent / "moto_server")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [server, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto_server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
    endpoint = S3Endpoint(url, log)
    saved = {key: os.environ.get(key) for key in endpoint.env}
    os.environ.update(endpoint.env)
    try:
        yield endpoint
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


class Luigid:
    """A real luigid (the shipped luigi.cfg, task history on) that a test can SIGKILL and start
    again on the same port with the same state path."""

    def __init__(self, folder: Path, luigi_cfg: str | None = None) -> None:
        self.folder, self.port = folder, free_port()
        (folder / ".mlcd" / "luigid").mkdir(parents=True)  # task history database folder
        (folder / "logs").mkdir()
        (folder / "luigi.cfg").write_text(luigi_cfg or (ROOT / "luigi.cfg").read_text())
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, method: str, **data: Any) -> Any:
        query = urllib.parse.urlencode({"data": json.dumps(data)})
        with urllib.request.urlopen(f"{self.url}/api/{method}?{query}", timeout=10) as resp:
            return json.loads(resp.read())["response"]

    def args(self) -> list[str]:
        return ["--scheduler-host", "127.0.0.1", "--scheduler-port", str(self.port)]

    def start(self) -> None:
        self.starts += 1
        with open(self.folder / f"luigid-{self.starts}.err", "wb") as err:
            self.proc = subprocess.Popen(
                [
                    str(Path(MLCD).parent / "luigid"),
                    "--address",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--logdir",
                    str(self.folder / "logs"),
                    "--state-path",
                    str(self.folder / "state.pickle"),
                ],
                cwd=self.folder,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.api("task_list", status="DONE", upstream_status="", search="")
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.proc.kill()
                    log = (self.folder / f"luigid-{self.starts}.err").read_text()
                    pytest.fail(f"luigid did not start: {log[-2000:]}")
                time.sleep(0.2)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def runs(self) -> Counter[str]:
        """How many times luigid's task history saw each task family start running."""
        db = sqlite3.connect(self.folder / ".mlcd" / "luigid" / "task-history.db")
        try:
            rows = db.execute(
                "select t.name from tasks t join task_events e on e.task_id = t.id "
                "where e.event_name = 'RUNNING'"
            ).fetchall()
        finally:
            db.close()
        return Counter(name for (name,) in rows)


def deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def write_config(
    folder: Path, base: str = "pipeline.yaml", filename: str = "pipeline.yaml", **changes: Any
) -> Path:
    """A copy of a shipped config with its workspace and registry inside ``folder``."""
    data = yaml.safe_load((CONFIGS / base).read_text())
    data["workspace"] = "workspace"
    data["publish"] = "registry"
    data = deep_merge(data, changes)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_mlcd(
    *args: str, cwd: Path = ROOT, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLCD, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def run_json(
    config: Path, *extra: str, date: str = "2026-01-15", env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], str]:
    """``mlcd run --json``: exit code, the summary, and stderr."""
    proc = run_mlcd("run", "--config", str(config), "--date", date, "--json", *extra, env=env)
    report = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
    return proc.returncode, report, proc.stderr


def versions(registry: Path, model: str) -> list[str]:
    folder = registry / model / "versions"
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def production(registry: Path, model: str) -> str | None:
    pointer = registry / model / "production.json"
    return json.loads(pointer.read_text())["version"] if pointer.exists() else None


def tree_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def config_in(tmp_path: Path) -> Callable[..., Path]:
    def make(base: str = "pipeline.yaml", **changes: Any) -> Path:
        return write_config(tmp_path, base, **changes)

    return make


# --- reproducibility and lineage (tests/test_lineage.py, tests/test_reproduce_e2e.py) ---------

NO_SUITES = {s: {"enabled": False} for s in ("data_integrity", "train_test", "model_evaluation")}


def csv_source(folder: Path, rows: int | None = None, name: str = "data.csv") -> Path:
    """scikit-learn's breast-cancer data as a CSV file in ``folder`` (its first ``rows`` rows)."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    (frame if rows is None else frame.iloc[:rows]).to_csv(path, index=False)
    return path


def csv_config(folder: Path, *, suites: bool = True, **changes: Any) -> Path:
    """The default pipeline reading ``folder/data.csv`` (written if missing); without the
    deepchecks suites (seconds instead of a dozen) unless ``suites``."""
    if not (folder / "data.csv").exists():
        csv_source(folder)
    path = write_config(folder, source={"path": "data.csv"}, **changes)
    data = yaml.safe_load(path.read_text())
    data["source"] = {"path": "data.csv"}
    if not suites:
        data["validation"] = NO_SUITES
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def set_model_params(config: Path, **params: Any) -> None:
    """Replace the config's model parameters (``write_config`` would merge them)."""
    data = yaml.safe_load(config.read_text())
    data["model"]["params"] = params
    config.write_text(yaml.safe_dump(data, sort_keys=False))


class _PickleThatWrites:
    """Unpickling this creates ``marker``: proof, when the file is absent, that a tampered model
    was never loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def evil_pickle(marker: Path) -> bytes:
    """joblib bytes that create ``marker`` when they are loaded."""
    import io

    import joblib

    buf = io.BytesIO()
    joblib.dump(_PickleThatWrites(marker), buf)
    return buf.getvalue()


# --- a real headless browser --------------------------------------------------------------------


def chromium(tmp_path: Path, budget_ms: int = 5000) -> list[str]:
    """The command line of a headless Chromium with its own profile (CI installs Debian's
    chromium; without it a test fails in CI and is skipped elsewhere)."""
    import shutil

    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return [
        found,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        f"--virtual-time-budget={budget_ms}",
    ]


def browser_dom(base: list[str], url: str) -> str:
    """The page's DOM once Chromium has run its scripts."""
    proc = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def browser_screenshot(base: list[str], url: str, shot: Path, size: str = "1300,1400") -> None:
    subprocess.run(
        [*base, f"--window-size={size}", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 10_000


def serving_port(proc: subprocess.Popen[str], log: Path, what: str, timeout: float = 60) -> int:
    """The port a server started as ``proc`` prints on its first stdout line (``... on
    http://127.0.0.1:PORT``); kills it and fails the test if it does not start."""
    import queue
    import re
    import threading

    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout
    assert stdout is not None
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        first = lines.get(timeout=timeout)
    except queue.Empty:
        proc.kill()
        pytest.fail(f"{what} did not start: {log.read_text()}")
    match = re.search(r"http://127\.0\.0\.1:(\d+)", first)
    assert match, (first, log.read_text())
    return int(match.group(1))


def stop_server(proc: subprocess.Popen[str]) -> int:
    """SIGTERM, then SIGKILL after 30 s; the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
