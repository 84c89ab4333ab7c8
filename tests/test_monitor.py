"""``mlcd monitor``: a model published by the real pipeline, served by a real ``mlcd serve``
that logs what it scores, receives a stream whose distribution shifts halfway (monthly charges
up, a new plan mix, the other columns unchanged); monitor flags the shifted columns and only
those, in the shifted half only. Also: the profile a version keeps, the statistics against
scipy's on the raw rows, a version without a profile, too few rows, bad ``monitor`` keys,
per-column overrides, realised metrics from a labels file, the report, a retrain, and the Luigi
task."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import http.server
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from mlcd import notify
from mlcd.config.model import MonitorConfig
from mlcd.monitoring import drift, predlog
from mlcd.monitoring import profile as prof
from tests import tables
from tests.conftest import MLCD, ROOT, production, run_mlcd, serving_port, stop_server

pytestmark = pytest.mark.e2e

STREAM_ROWS = 800  # 400 before the shift, 400 after
MIN_ROWS = 150
OFF = {"enabled": False}


def write_monitor_config(folder: Path, filename: str, monitor: Any = None) -> Path:
    """The churn table's six-line config (suites off: these tests are about monitoring), with
    a ``monitor`` section when given; every config of the module shares one registry."""
    data: dict[str, Any] = {
        "name": "churn",
        "task": "classification",
        "source": {"path": "churn.csv"},
        "target": "churned",
        "workspace": "ws",
        "publish": "registry",
        "validation": {s: OFF for s in ("data_integrity", "train_test", "model_evaluation")},
    }
    if monitor is not None:
        data["monitor"] = monitor
    path = folder / filename
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def stream() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows production receives: the first half as in training, the second with monthly
    charges 25 higher and a plan mix training never saw (a new 'enterprise' plan)."""
    rows = tables.churn(STREAM_ROWS, seed=11)
    half = STREAM_ROWS // 2
    before, after = rows.iloc[:half].copy(), rows.iloc[half:].copy()
    rng = np.random.default_rng(5)
    after["monthly_charges"] = after["monthly_charges"] + 25
    after["plan"] = rng.choice(
        ["basic", "pro", "team", "enterprise"], len(after), p=[0.15, 0.25, 0.2, 0.4]
    )
    return before, after


def post(port: int, frame: pd.DataFrame) -> dict[str, Any]:
    body = {"rows": json.loads(frame.to_json(orient="records"))}  # NaN -> null
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/predict", body=json.dumps(body).encode())
        response = conn.getresponse()
        answer = json.loads(response.read())
        assert response.status == 200, answer
        return dict(answer)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The churn model published once by ``mlcd run``, then ``mlcd serve`` answering the
    stream in batches of 100 rows (ids and labels-to-be included, as callers send them), the
    time of the shift noted between the halves; stopped with SIGTERM, which flushes the log."""
    folder = tmp_path_factory.mktemp("monitor")
    tables.write(folder, "churn")
    config = write_monitor_config(folder, "churn.yaml", {"min_rows": MIN_ROWS})
    proc = run_mlcd("run", "--config", str(config), "--date", "2026-01-15")
    assert proc.returncode == 0, proc.stderr
    log = folder / "serve.log"
    with log.open("w") as err:
        server = subprocess.Popen(
            [MLCD, "serve", "churn", "--config", str(config), "--port", "0"]
            + ["--log-flush-seconds", "0.2"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        try:
            port = serving_port(server, log, "mlcd serve")
            before, after = stream()
            for start in range(0, len(before), 100):
                post(port, before.drop(columns=["churned"]).iloc[start : start + 100])
            time.sleep(0.05)
            shift = dt.datetime.now(dt.UTC).isoformat()
            time.sleep(0.05)
            for start in range(0, len(after), 100):
                post(port, after.drop(columns=["churned"]).iloc[start : start + 100])
        finally:
            assert stop_server(server) == 0, log.read_text()
    return {
        "folder": folder,
        "config": config,
        "shift": shift,
        "rows": pd.concat([before, after]),
        "version": production(folder / "registry", "churn"),
    }


@contextlib.contextmanager
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP receiver on 127.0.0.1: its URL and the JSON bodies POSTed to it."""
    received: list[dict[str, Any]] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server API)
            length = int(self.headers.get("Content-Length", 0))
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def monitor(
    config: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], str]:
    """``mlcd monitor churn --json``: exit code, the verdict, stderr."""
    proc = run_mlcd("monitor", "churn", "--config", str(config), "--json", *args, env=env)
    verdict = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
    return proc.returncode, verdict, proc.stderr


def features_drifted(verdict: dict[str, Any]) -> set[str]:
    return {c for c in verdict["drifted"] if not c.startswith("(")}


# --- the profile ---------------------------------------------------------------------------


def test_published_version_keeps_a_profile_covered_by_its_manifest(
    served: dict[str, Any],
) -> None:
    folder, version = served["folder"], served["version"]
    home = folder / "registry" / "churn" / "versions" / version
    manifest = json.loads((home / "manifest.json").read_text())
    assert "profile.json" in manifest["artifacts"]
    profile = prof.read(str(folder / "registry"), "churn", version)
    assert profile is not None
    # Features only, each with its role; the id and the label are not features.
    features = {c: r for c, r in tables.ROLES["churn"].items() if r != "id"}
    assert {c: v["role"] for c, v in profile["columns"].items()} == features
    # The training split: the snapshot's rows that the split's mask does not mark as test.
    split = manifest["tasks"]["SplitData"]["outputs"]
    snapshot = pd.read_parquet(folder / "ws" / manifest["snapshot"]["path"])
    tested = pd.read_parquet(folder / "ws" / split["split.parquet"]["path"])["test"]
    train = snapshot[~tested.to_numpy()]
    charges = profile["columns"]["monthly_charges"]
    assert charges["rows"] == len(train) == profile["rows"]
    assert charges["null_rate"] == pytest.approx(train["monthly_charges"].isna().mean())
    assert charges["numeric"]["mean"] == pytest.approx(train["monthly_charges"].mean())
    assert charges["numeric"]["max"] == train["monthly_charges"].max()
    plan = profile["columns"]["plan"]["categories"]
    assert set(plan["shares"]) == {"basic", "pro", "team"} and plan["complete"]
    assert set(profile["label"]["categories"]["shares"]) == {"yes", "no"}
    assert (
        profile["prediction"]["rows"] == json.loads((home / "metrics.json").read_text())["n_test"]
    )
    # The manifest's digest guards it like every other file of the version.
    original = (home / "profile.json").read_bytes()
    (home / "profile.json").write_bytes(original.replace(b'"rows": ', b'"rows": 1', 1))
    try:
        code, _, err = monitor(served["config"])
        assert code == 7 and "profile.json" in err and "sha256" in err, err
    finally:
        (home / "profile.json").write_bytes(original)


def test_statistics_from_the_profile_match_scipy_on_the_raw_rows() -> None:
    rng = np.random.default_rng(3)
    train = pd.Series(np.round(rng.normal(60, 20, 3000), 2))
    summary = prof.numeric_summary(train)
    for shift in (0.0, 4.0, 25.0):
        logged = np.round(rng.normal(60 + shift, 20, 500), 2)
        ks = drift.ks_distance(summary["percents"], summary["quantiles"], logged)
        assert ks == pytest.approx(stats.ks_2samp(train, logged).statistic, abs=0.01)
        w = drift.wasserstein(summary["percents"], summary["quantiles"], logged)
        assert w == pytest.approx(stats.wasserstein_distance(train, logged), rel=0.05, abs=0.3)
    assert drift.chi_square_p([0.5, 0.3, 0.2], [40, 35, 25]) == pytest.approx(
        stats.chisquare([40, 35, 25], [50, 30, 20]).pvalue
    )
    # Chance is not drift: 200 rows of the training distribution, drawn 100 times, almost never
    # pass a test, while half a standard deviation of shift always does.
    ref = prof.column_profile(train, "numeric")
    limits = drift.thresholds_for(MonitorConfig(), "x")
    alarms = [
        bool(drift.drifted(drift.column_findings("x", ref, pd.Series(sample), limits)))
        for sample in rng.normal(60, 20, (100, 200))
    ]
    assert sum(alarms) <= 2
    moved = pd.Series(rng.normal(70, 20, 200))
    assert drift.drifted(drift.column_findings("x", ref, moved, limits)) == ["x"]
    # A discrete column: the distance the quantiles allow, not an artefact of interpolation.
    small = pd.Series(rng.integers(0, 3, 3000).astype(float))
    same = rng.integers(0, 3, 500).astype(float)
    low = prof.numeric_summary(small)
    assert drift.ks_distance(low["percents"], low["quantiles"], same) == pytest.approx(
        stats.ks_2samp(small, same).statistic, abs=0.01
    )


# --- the shifted stream, through mlcd serve -------------------------------------------------


def test_monitor_flags_the_shifted_columns_in_the_shifted_half_only(
    served: dict[str, Any], tmp_path: Path
) -> None:
    config, shift = served["config"], served["shift"]
    logged = predlog.read(str(served["folder"] / "registry" / "churn" / "predictions"))
    assert len(logged) == STREAM_ROWS and set(logged["_mlcd_source"]) == {"serve"}

    code, calm, err = monitor(config, "--until", shift)
    assert code == 0, err
    assert calm["status"] == "ok" and calm["drifted"] == [] and calm["rows"] == STREAM_ROWS // 2

    report = tmp_path / "report"
    with webhook() as (url, received):
        code, shifted, err = monitor(
            config, "--since", shift, "--report", str(report), env={notify.WEBHOOK_ENV: url}
        )
    assert code == 11, err
    # The drift event reached the webhook, naming what drifted and where the report is.
    (event,) = received
    assert event["event"] == "drift" and event["model"] == "churn"
    assert event["details"]["drifted"] == shifted["drifted"]
    assert event["details"]["report"] == str(report / "report.html")
    assert "drift detected" in err and "monthly_charges, plan" in err
    assert shifted["rows"] == STREAM_ROWS // 2
    assert features_drifted(shifted) == {"monthly_charges", "plan"}
    by_test = {(f["column"], f["test"]): f for f in shifted["findings"]}
    assert by_test[("plan", "unseen")]["verdict"] == "drift"
    assert "'enterprise'" in by_test[("plan", "unseen")]["detail"]
    for test in ("psi", "ks", "wasserstein"):
        assert by_test[("monthly_charges", test)]["verdict"] == "drift"
        assert by_test[("tenure", test)]["verdict"] == "ok"
    # The report: the verdict, a page, and a plot of each drifted column.
    assert json.loads((report / "drift.json").read_text())["drifted"] == shifted["drifted"]
    page = (report / "report.html").read_text()
    assert "plots/monthly_charges.png" in page and "plots/plan.png" in page
    for name in ("monthly_charges", "plan"):
        assert (report / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (report / "plots" / "tenure.png").exists()


def test_the_table_the_report_in_the_registry_and_deepchecks_opinion(
    served: dict[str, Any],
) -> None:
    config = str(served["config"])
    proc = run_mlcd("monitor", "churn", "--config", config, "--since", "1d", "--deep")
    assert proc.returncode == 11, proc.stderr
    lines = proc.stdout.splitlines()
    # deepchecks, on the recorded training split, agrees; its opinion does not set the verdict.
    assert any(
        line.startswith("deepchecks: FeatureDrift FAILED") and "split.parquet" in line
        for line in lines
    ), proc.stdout
    assert lines[1].split() == ["COLUMN", "TEST", "STATISTIC", "THRESHOLD", "VERDICT"]
    row = next(line.split() for line in lines if line.startswith("monthly_charges  psi"))
    assert row[3:] == [">", "0.2", "DRIFT"]
    folder = Path(lines[-1].removeprefix("report: ")).parent
    assert folder.parent == served["folder"] / "registry" / "churn" / "monitoring"
    assert {p.name for p in folder.iterdir()} == {"drift.json", "report.html", "plots"}


def test_per_column_overrides_and_the_prediction_log_location(served: dict[str, Any]) -> None:
    config = write_monitor_config(
        served["folder"],
        "overrides.yaml",
        {
            "min_rows": MIN_ROWS,
            "columns": {
                "plan": {"psi": None, "chi_square_p": None, "unseen": 0.5},
                "monthly_charges": {"psi": 5, "ks": 0.9, "wasserstein": 5},
            },
        },
    )
    code, verdict, err = monitor(config, "--since", served["shift"])
    assert code == 0, err
    by_test = {(f["column"], f["test"]): f for f in verdict["findings"]}
    assert by_test[("plan", "psi")]["verdict"] == "info"  # reported, not judged
    assert by_test[("plan", "unseen")]["threshold"] == 0.5
    assert by_test[("region", "psi")]["threshold"] == 0.2  # the defaults elsewhere
    # An empty log elsewhere: nothing to judge.
    code, verdict, err = monitor(config, "--log", str(served["folder"] / "nowhere"))
    assert code == 0 and verdict["status"] == "not enough data" and verdict["rows"] == 0


def test_too_few_rows_is_not_enough_data_and_exit_0(served: dict[str, Any]) -> None:
    config = write_monitor_config(served["folder"], "few.yaml", {"min_rows": 100000})
    proc = run_mlcd("monitor", "churn", "--config", str(config), "--since", served["shift"])
    assert proc.returncode == 0, proc.stderr
    assert "NOT ENOUGH DATA: 400 logged row(s) in the window, fewer than monitor.min_rows" in (
        proc.stdout
    )


def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The mlcd command line in this process (for refusals, which end before any work): its
    exit code, stdout and stderr."""
    from mlcd.cli import main

    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_bad_monitor_key_exits_2_naming_it(served: dict[str, Any]) -> None:
    config = write_monitor_config(served["folder"], "bad.yaml", {"thresholds": {"psii": 0.3}})
    proc = run_mlcd("monitor", "churn", "--config", str(config))
    assert proc.returncode == 2, proc.stderr
    assert "'monitor.thresholds.psii'" in proc.stderr and "allowed keys here: psi, ks" in (
        proc.stderr
    )
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""


@pytest.mark.parametrize(
    ("monitor_section", "named"),
    [
        ({"min_row": 10}, "'monitor.min_row'"),
        ({"thresholds": {"ks": 2}}, "'monitor.thresholds.ks'"),
        ({"columns": {"charges": {"psi": 0.3}}}, "'monitor.columns.charges'"),
        ({"labels": {"path": "labels.csv"}}, "'monitor.labels.id'"),
    ],
)
def test_bad_monitor_values_exit_2_naming_the_key(
    served: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monitor_section: dict[str, Any],
    named: str,
) -> None:
    config = write_monitor_config(served["folder"], "bad.yaml", monitor_section)
    code, out, err = in_process(capsys, "monitor", "churn", "--config", str(config))
    assert code == 2, err
    assert named in err and len(err.strip().splitlines()) == 1 and out == "", err


def test_bad_window_wrong_model_and_used_report_folder_exit_2(
    served: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(served["config"])
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = in_process(
        capsys, "monitor", "churn", "--config", config, "--report", str(tmp_path)
    )
    assert code == 2 and "is not empty" in err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    code, _, err = in_process(
        capsys, "monitor", "churn", "--config", config, "--since", "yesterday"
    )
    assert code == 2 and "--since 'yesterday'" in err
    code, _, err = in_process(
        capsys, "monitor", "churn", "--config", config, "--since", "1h", "--until", "2h"
    )
    assert code == 2 and "not before" in err
    code, _, err = in_process(capsys, "monitor", "wine", "--config", config)
    assert code == 2 and "describes model 'churn'" in err


def test_realised_metrics_from_a_labels_file(served: dict[str, Any]) -> None:
    folder, rows = served["folder"], served["rows"]
    labelled = rows[rows["churned"].notna()][["customer_id", "churned"]]
    labelled.to_csv(folder / "labels.csv", index=False)
    config = write_monitor_config(
        folder,
        "labels.yaml",
        {"min_rows": MIN_ROWS, "labels": {"path": "labels.csv", "id": "customer_id"}},
    )
    code, verdict, err = monitor(config, "--until", served["shift"])
    assert code == 0, err
    metrics = {f["column"]: f for f in verdict["findings"] if f["role"] == "metric"}
    assert {"(metric accuracy)", "(metric f1)"} <= set(metrics)
    assert all(f["verdict"] == "ok" for f in metrics.values()), metrics
    assert "labelled logged rows" in metrics["(metric accuracy)"]["detail"]
    # The outcomes turn: the same rows, every label the other way.
    flipped = labelled.assign(churned=labelled["churned"].map({"yes": "no", "no": "yes"}))
    flipped.to_csv(folder / "labels.csv", index=False)
    code, verdict, err = monitor(config, "--until", served["shift"])
    assert code == 11, err
    assert "(metric accuracy)" in verdict["drifted"] and features_drifted(verdict) == set()
    (folder / "labels.csv").unlink()
    code, _, err = monitor(config, "--until", served["shift"])
    assert code == 4 and "monitor.labels.path" in err and "labels.csv" in err


def test_a_version_without_a_profile_says_so_and_how_to_fix_it(
    served: dict[str, Any], tmp_path: Path
) -> None:
    """A version published before mlcd kept profiles: its folder without profile.json."""
    registry = tmp_path / "registry"
    shutil.copytree(served["folder"] / "registry" / "churn", registry / "churn")
    home = registry / "churn" / "versions" / served["version"]
    manifest = json.loads((home / "manifest.json").read_text())
    del manifest["artifacts"]["profile.json"]
    (home / "manifest.json").write_text(json.dumps(manifest))
    (home / "profile.json").unlink()
    shutil.copy(served["folder"] / "churn.csv", tmp_path / "churn.csv")
    config = write_monitor_config(tmp_path, "old.yaml")
    proc = run_mlcd("monitor", "churn", "--config", str(config))
    assert proc.returncode == 8, proc.stderr
    assert "published before mlcd kept a profile" in proc.stderr
    assert f"mlcd run --config {config}" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_retrain_on_drift_runs_the_pipeline(served: dict[str, Any]) -> None:
    proc = run_mlcd(
        "monitor",
        "churn",
        "--config",
        str(served["config"]),
        "--since",
        served["shift"],
        "--retrain",
    )
    assert proc.returncode == 11, proc.stderr
    assert "mlcd run: model churn" in proc.stdout  # the retrain's summary
    # Same data, same config: the pipeline is complete, nothing new is published.
    assert "retrained: nothing new was published" in proc.stderr
    assert production(served["folder"] / "registry", "churn") == served["version"]


def test_luigi_task_fails_with_exit_11_on_drift(served: dict[str, Any]) -> None:
    import tasks
    from mlcd import lineage
    from mlcd.app.run import execute

    config = str(served["config"])
    today = dt.date.today()
    task = tasks.MonitorDrift(config_path=config, date=today, since=served["shift"])
    result, failures = execute(
        task, workers=1, scheduler={"local_scheduler": True}, run_id=lineage.new_run_id()
    )
    assert [(f["task"], f["exit_code"], f["kind"]) for f in failures] == [
        ("MonitorDrift", 11, "drift detected")
    ]
    verdict = json.loads(Path(task.path("drift.json")).read_text())
    assert features_drifted(verdict) == {"monthly_charges", "plan"}
    assert not task.complete()  # not sealed: the next run judges again
    # Too few rows to judge: the task completes, and its output follows from the window.
    few = write_monitor_config(served["folder"], "few-task.yaml", {"min_rows": 100000})
    calm = tasks.MonitorDrift(config_path=str(few), date=today, since=served["shift"])
    result, failures = execute(
        calm, workers=1, scheduler={"local_scheduler": True}, run_id=lineage.new_run_id()
    )
    assert failures == [] and calm.complete()
    assert json.loads(Path(calm.path("drift.json")).read_text())["status"] == "not enough data"
    assert calm.identity != tasks.MonitorDrift(config_path=str(few), date=today).identity
