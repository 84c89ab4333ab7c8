"""``mlcd serve`` as a real process answering real HTTP requests: predictions that match the
pipeline's, clear refusals of bad requests, and a model that follows production (two retrains
on new data, then a rollback) without a restart and without a failed request."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from mlcd import registry
from mlcd.app import scoring
from tests.conftest import (
    MLCD,
    ROOT,
    evil_pickle,
    production,
    run_json,
    run_mlcd,
    serving_port,
    stop_server,
    versions,
    write_config,
)

pytestmark = pytest.mark.e2e
MODEL = "breast-cancer"
# Liveness bounds (a hang fails the test instead of blocking the suite), not timings.
START_TIMEOUT = 60.0
SWITCH_TIMEOUT = 60.0


class Service:
    """``mlcd serve`` on a free port of 127.0.0.1, polling production every 0.2 s."""

    def __init__(self, registry_dir: Path, log: Path, *extra: str, model: str = MODEL) -> None:
        self.log_path = log
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [MLCD, "serve", model, "--registry", str(registry_dir), "--port", "0"]
            + ["--poll-interval", "0.2", *extra],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self.port = serving_port(self.proc, log, "mlcd serve", START_TIMEOUT)

    def log(self) -> str:
        return self.log_path.read_text()

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
            conn.request(method, path, body=data, headers=headers or {})
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            conn.close()

    def stop(self) -> int:
        code = stop_server(self.proc)
        self._log.close()
        return code


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def start(registry_dir: Path, *extra: str) -> Service:
        service = Service(registry_dir, tmp_path / f"serve-{len(started)}.log", *extra)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


def wait_for(check: Callable[[], bool], what: str, timeout: float = SWITCH_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def source_rows(rows: slice) -> pd.DataFrame:
    return load_breast_cancer(as_frame=True).frame.iloc[rows]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model trained on the first 500 rows of a CSV file, published once.

    The deepchecks suites are off: these tests are about serving, and each retrain below runs
    the whole pipeline again (the metric thresholds and the champion gate still apply)."""
    folder = tmp_path_factory.mktemp("serving")
    (folder / "data").mkdir()
    source_rows(slice(0, 500)).to_csv(folder / "data" / "patients.csv", index=False)
    off = {"enabled": False}
    config = write_config(
        folder,
        source={"path": "data/patients.csv"},
        gates={"champion": {"metric": "f1", "tolerance": 0.05}},
        validation={"data_integrity": off, "train_test": off, "model_evaluation": off},
    )
    config.write_text(config.read_text().replace("dataset: breast_cancer\n", ""))
    code, _, err = run_json(config)
    assert code == 0, err
    return folder


@pytest.fixture
def site(built: Path, tmp_path: Path) -> Path:
    target = tmp_path / "site"
    shutil.copytree(built, target)
    return target


def example(site: Path, version: str) -> dict[str, Any]:
    path = site / "registry" / MODEL / "versions" / version / "input_example.json"
    body: dict[str, Any] = json.loads(path.read_text())
    return body


def test_service_predicts_as_the_pipeline_did_and_describes_its_model(site: Path, serve: Any):
    (version,) = versions(site / "registry", MODEL)
    service = serve(site / "registry")
    status, health = service.request("GET", "/health")
    assert status == 200 and health["status"] == "ok" and health["version"] == version
    status, described = service.request("GET", "/version")
    assert status == 200 and described["version"] == version and described["pinned"] is False
    schema = json.loads(
        (site / "registry" / MODEL / "versions" / version / "schema.json").read_text()
    )
    assert described["features"] == schema["features"] and described["classes"] == [0, 1]

    body = example(site, version)
    status, answer = service.request("POST", "/predict", body)
    assert status == 200, answer
    assert (answer["model"], answer["version"], answer["n"]) == (MODEL, version, 5)
    # The example is the first rows of the test set: the pipeline recorded their predictions.
    recorded = pd.read_parquet(
        site / "registry" / MODEL / "versions" / version / "predictions.parquet"
    ).head(5)
    assert answer["predictions"] == recorded["predicted"].tolist()
    assert [p[1] for p in answer["probabilities"]] == pytest.approx(recorded["proba_1"].tolist())

    # 1,000 rows in one request.
    rows = source_rows(slice(0, 569)).drop(columns=["target"]).to_dict(orient="records")
    status, answer = service.request("POST", "/predict", {"rows": (rows * 2)[:1000]})
    assert status == 200 and answer["n"] == 1000 and len(answer["probabilities"]) == 1000


def test_service_refuses_bad_requests_clearly_and_keeps_serving(site: Path, serve: Any):
    (version,) = versions(site / "registry", MODEL)
    service = serve(site / "registry")
    rows = example(site, version)["rows"]
    missing = [{k: v for k, v in r.items() if k != "mean radius"} for r in rows]
    typed = [dict(r) for r in rows]
    typed[3]["mean area"] = "large"
    cases: list[tuple[str, str, Any, dict[str, str], int, str]] = [
        ("POST", "/predict", {"rows": missing}, {}, 400, "row 0: missing column(s) 'mean radius'"),
        (
            "POST",
            "/predict",
            {"rows": typed},
            {},
            400,
            "'mean area' expects numbers (float64) but row 3 has 'large'",
        ),
        ("POST", "/predict", {"rows": rows, "x": 1}, {}, 400, "unknown key(s) 'x'"),
        ("POST", "/predict", {"rows": []}, {}, 400, "'rows' is empty"),
        ("POST", "/predict", {"data": rows}, {}, 400, "no 'rows'"),
        ("POST", "/predict", b"{not json", {}, 400, "not valid JSON"),
        ("POST", "/predict", None, {}, 400, "the body is not valid JSON"),
        ("POST", "/predict", None, {"Content-Length": str(10**9)}, 413, "the limit is"),
        ("GET", "/predict", None, {}, 405, "use POST /predict"),
        ("POST", "/health", b"{}", {}, 405, "use GET /health"),
        ("GET", "/metrics", None, {}, 404, "POST /predict, GET /health, GET /version"),
    ]
    for method, path, body, headers, code, fragment in cases:
        status, answer = service.request(method, path, body, headers)
        assert status == code, (path, body, answer)
        assert fragment in answer["error"], answer
    with socket.create_connection(("127.0.0.1", service.port), timeout=30) as raw:
        raw.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\n\r\n")  # no Content-Length
        assert raw.recv(4096).startswith(b"HTTP/1.1 411 ")
    status, answer = service.request("POST", "/predict", {"rows": rows})
    assert status == 200 and answer["version"] == version
    assert service.stop() == 0
    assert "stopped" in service.log()


class Hammer:
    """Sends the same rows to POST /predict in a loop and records every answer."""

    def __init__(self, service: Service, body: dict[str, Any], keep_alive: bool) -> None:
        self.service, self.body, self.keep_alive = service, json.dumps(body).encode(), keep_alive
        self.answers: list[tuple[int, Any]] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.service.port, timeout=30)
                conn.request("POST", "/predict", body=self.body)
                response = conn.getresponse()
                self.answers.append((response.status, json.loads(response.read())))
                if not self.keep_alive:
                    conn.close()
                    conn = None
            except Exception as exc:  # a dropped request: reported by the test
                self.failures.append(repr(exc))
                conn = None
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=30)

    def versions_seen(self) -> list[str]:
        seen: list[str] = []
        for _, answer in self.answers:
            if not seen or seen[-1] != answer["version"]:
                seen.append(answer["version"])
        return seen


def retrain_on(site: Path, rows: slice, date: str) -> str:
    source_rows(rows).to_csv(site / "data" / "patients.csv", index=False)
    code, report, err = run_json(site / "pipeline.yaml", date=date)
    assert code == 0, err
    assert "ExtractData" in report["ran"]  # new data: everything ran again
    version = production(site / "registry", MODEL)
    assert version is not None
    return version


def test_service_follows_two_retrains_on_new_data_and_a_rollback_without_a_failed_request(
    site: Path, serve: Any
):
    reg = site / "registry"
    (v1,) = versions(reg, MODEL)
    service = serve(reg)
    body = example(site, v1)
    hammers = [Hammer(service, body, keep_alive=True), Hammer(service, body, keep_alive=False)]

    def serving() -> str:
        status, health = service.request("GET", "/health")
        assert status == 200
        return str(health["version"])

    v2 = retrain_on(site, slice(40, 569), "2026-01-16")
    wait_for(lambda: serving() == v2, f"the service to switch to {v2}")
    v3 = retrain_on(site, slice(0, 569), "2026-01-17")
    assert len({v1, v2, v3}) == 3
    wait_for(lambda: serving() == v3, f"the service to switch to {v3}")

    proc = run_mlcd("models", "rollback", MODEL, "--registry", str(reg), "--reason", "v3 drifts")
    assert proc.returncode == 0, proc.stderr
    assert production(reg, MODEL) == v2
    wait_for(
        lambda: service.request("POST", "/predict", body)[1]["version"] == v2,
        "the service to answer with the rolled-back version",
    )
    wait_for(
        lambda: all(h.answers and h.answers[-1][1]["version"] == v2 for h in hammers),
        "both hammers to get answers from the rolled-back version",
    )
    for hammer in hammers:
        hammer.stop()

    for hammer in hammers:
        assert hammer.failures == []
        assert {status for status, _ in hammer.answers} == {200}
        assert hammer.versions_seen() == [v1, v2, v3, v2]
    # Every answer is what the version it names predicts: no request mixed two models.
    expected = {
        v: scoring.predict_rows(registry.load_version(str(reg), MODEL, v), body)
        for v in (v1, v2, v3)
    }
    assert len({json.dumps(e["probabilities"]) for e in expected.values()}) == 3
    for hammer in hammers:
        for _, answer in hammer.answers:
            assert answer == expected[answer["version"]]
    status, health = service.request("GET", "/health")
    assert health["swaps"] == 3 and health["status"] == "ok"
    assert service.log().count("now serving version") == 3


def test_a_tampered_or_unreadable_production_is_not_served_and_answers_go_on(
    site: Path, serve: Any, tmp_path: Path
):
    """Production pointed (by hand, past mlcd's checks) at a version whose model was replaced,
    then corrupted: the service keeps its verified model, says why on /health, never unpickles
    the replacement, and recovers when production is repaired."""
    reg = site / "registry"
    (v1,) = versions(reg, MODEL)
    marker = tmp_path / "pwned"
    bad = reg / MODEL / "versions" / "badc0ffee0000000"
    shutil.copytree(reg / MODEL / "versions" / v1, bad)
    manifest = json.loads((bad / "manifest.json").read_text())  # renamed whole, model replaced
    (bad / "manifest.json").write_text(json.dumps({**manifest, "version": bad.name}))
    (bad / "model.joblib").write_bytes(evil_pickle(marker))
    service = serve(reg)
    body = example(site, v1)
    pointer_file = reg / MODEL / "production.json"
    pointer = json.loads(pointer_file.read_text())
    pointer_file.write_text(json.dumps({**pointer, "version": bad.name, "model_sha256": None}))

    def health() -> dict[str, Any]:
        return service.request("GET", "/health")[1]

    wait_for(lambda: health()["production_version"] == bad.name, "the service to notice")
    wait_for(lambda: health()["status"] == "degraded", "the service to report the problem")
    state = health()
    assert state["version"] == v1 and "sha256" in state["error"] and v1 in state["error"]
    status, answer = service.request("POST", "/predict", body)
    assert status == 200 and answer["version"] == v1

    pointer_file.write_text("{corrupted")
    wait_for(lambda: "corrupted" in (health()["error"] or ""), "the service to see the pointer")
    status, answer = service.request("POST", "/predict", body)
    assert status == 200 and answer["version"] == v1

    proc = run_mlcd("models", "promote", MODEL, v1, "--registry", str(reg), "--reason", "repair")
    assert proc.returncode == 0, proc.stderr
    wait_for(lambda: health()["status"] == "ok", "the service to recover")
    assert health()["swaps"] == 0 and not marker.exists()


def test_a_pinned_service_ignores_production_and_a_missing_model_fails_to_start(
    site: Path, serve: Any
):
    reg = site / "registry"
    (v1,) = versions(reg, MODEL)
    service = serve(reg, "--version", v1[:6])
    status, described = service.request("GET", "/version")
    assert status == 200 and described["version"] == v1 and described["pinned"] is True
    proc = run_mlcd("serve", "nope", "--registry", str(reg), "--port", "0")
    assert proc.returncode == 8 and "no model 'nope'" in proc.stderr
    proc = run_mlcd("serve", MODEL, "--registry", str(reg), "--port", str(service.port))
    assert proc.returncode == 2 and "cannot listen on 127.0.0.1" in proc.stderr
