"""mlcd as it is deployed: a real luigid, several worker processes, cron's environment, the
Luigi web UI in a real headless browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import (
    ALL_TASKS,
    MLCD,
    NO_SUITES,
    ROOT,
    Luigid,
    browser_dom,
    browser_screenshot,
    chromium,
    production,
    run_json,
    versions,
    write_config,
)

pytestmark = pytest.mark.e2e
BIN = Path(MLCD).parent
SLOW = {"PYTHONPATH": str(ROOT / "tests")}  # makes tests/slow_estimator.py importable


@pytest.fixture(scope="module")
def luigid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Luigid]:
    """A real luigid on a free loopback port, with the shipped luigi.cfg except that at most one
    training task may run at once (so the [resources] cap can be seen)."""
    cfg = (ROOT / "luigi.cfg").read_text().replace("training = 2", "training = 1")
    server = Luigid(tmp_path_factory.mktemp("luigid"), cfg)
    server.start()
    yield server
    server.stop()


def _names(tasks: dict[str, Any]) -> set[str]:
    return {t["name"] for t in tasks.values()}


def test_run_through_luigid_lists_every_task_done_with_its_edges(luigid: Luigid, tmp_path: Path):
    config = write_config(tmp_path)
    code, report, err = run_json(config, *luigid.args())
    assert code == 0, err
    assert versions(tmp_path / "registry", "breast-cancer")

    done = luigid.api("task_list", status="DONE", upstream_status="", search=str(config))
    assert _names(done) == set(ALL_TASKS)
    (root_id,) = [tid for tid, t in done.items() if t["name"] == "RetrainPipeline"]
    graph = luigid.api("dep_graph", task_id=root_id)
    edges = {
        (graph[tid]["name"], graph[dep]["name"]) for tid in graph for dep in graph[tid]["deps"]
    }
    for edge in [
        ("RetrainPipeline", "PublishModel"),
        ("PublishModel", "ValidateModel"),
        ("ValidateModel", "EvaluateModel"),
        ("EvaluateModel", "TrainModel"),
        ("TrainModel", "SplitData"),
        ("TrainModel", "ValidateSplit"),
        ("TrainModel", "ValidateData"),
        ("ValidateSplit", "SplitData"),
        ("SplitData", "ExtractData"),
        ("ValidateData", "ExtractData"),
    ]:
        assert edge in edges, edge
    # The split and its validation run beside the data's validation, not after it.
    assert ("SplitData", "ValidateData") not in edges
    assert all(t["status"] == "DONE" for t in graph.values())

    # luigid recorded the task history (SQLAlchemy < 2 makes Luigi 3.8.1's history work).
    db = sqlite3.connect(luigid.folder / ".mlcd" / "luigid" / "task-history.db")
    events = db.execute(
        "select t.name, e.event_name from tasks t join task_events e on e.task_id = t.id"
    ).fetchall()
    assert ("TrainModel", "DONE") in events and ("TrainModel", "RUNNING") in events


def test_running_task_shows_progress_and_status_in_luigid(luigid: Luigid, tmp_path: Path):
    config = write_config(
        tmp_path,
        model={
            "estimator": "slow_estimator.SlowClassifier",
            "params": {"fit_seconds": 8},
        },
    )
    data = yaml.safe_load(config.read_text())
    data["model"]["params"] = {"fit_seconds": 8}  # not merged with the default's forest params
    config.write_text(yaml.safe_dump(data))
    proc = subprocess.Popen(
        [MLCD, "run", "--config", str(config), "--date", "2026-01-15", *luigid.args()],
        cwd=ROOT,
        env={**os.environ, **SLOW},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = None
    deadline = time.monotonic() + 120
    while seen is None and proc.poll() is None and time.monotonic() < deadline:
        running = luigid.api("task_list", status="RUNNING", upstream_status="", search=str(config))
        for task in running.values():
            if task["name"] == "TrainModel" and task.get("progress_percentage"):
                seen = task
        time.sleep(0.5)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert seen is not None, "TrainModel was never seen RUNNING with a progress value"
    assert seen["progress_percentage"] == 10
    assert "fitting slow_estimator.SlowClassifier" in seen["status_message"]


def test_browser_renders_the_pipeline_graph_from_luigid(luigid: Luigid, tmp_path: Path):
    base = chromium(tmp_path, budget_ms=8000)
    config = write_config(tmp_path)
    code, _, err = run_json(config, *luigid.args())
    assert code == 0, err
    done = luigid.api("task_list", status="DONE", upstream_status="", search=str(config))
    (root_id,) = [tid for tid, t in done.items() if t["name"] == "RetrainPipeline"]
    url = (
        f"{luigid.url}/static/visualiser/index.html#tab=graph&taskId={urllib.parse.quote(root_id)}"
    )
    # The dependency graph is an SVG whose nodes carry the task names.
    dom = browser_dom(base, url)
    svg = re.search(r"<svg.*</svg>", dom, re.S)
    assert svg is not None, dom[:2000]
    for name in ALL_TASKS:
        assert name in svg.group(0), name
    browser_screenshot(base, url, tmp_path / "graph.png", size="1400,900")


GRID = [
    {
        "name": f"lr-c{c}",
        "estimator": "slow_estimator.SlowClassifier",
        "params": {"fit_seconds": 2, "C": c},
    }
    for c in (0.01, 0.1, 1.0, 10.0)
]


def _grid_config(folder: Path) -> Path:
    config = write_config(folder, gates={"thresholds": {"accuracy": {"min": 0.85}}})
    data = yaml.safe_load(config.read_text())
    del data["model"]
    data["candidates"] = GRID
    data["selection"] = {"metric": "roc_auc"}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def _events(stderr: str) -> list[tuple[str, str, float]]:
    out = []
    for match in re.finditer(
        r"^mlcd: (\S+) (started|finished).* at (\d+):(\d+):([\d.]+)$", stderr, re.M
    ):
        h, m, s = int(match[3]), int(match[4]), float(match[5])
        out.append((match[1], match[2], h * 3600 + m * 60 + s))
    return out


def test_three_workers_share_a_candidate_grid_each_task_once_like_one_worker(
    luigid: Luigid, tmp_path: Path
):
    single = _grid_config(tmp_path / "single")
    started = time.monotonic()
    proc = subprocess.run(
        [MLCD, "run", "--config", str(single), "--date", "2026-01-15", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **SLOW},
        timeout=600,
    )
    one_worker = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    single_report = json.loads(proc.stdout)

    shared = _grid_config(tmp_path / "shared")
    started = time.monotonic()
    workers = [
        subprocess.Popen(
            [MLCD, "run", "--config", str(shared), "--date", "2026-01-15", *luigid.args()],
            cwd=ROOT,
            env={**os.environ, **SLOW},
            text=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    results = [w.communicate(timeout=600)[1] for w in workers]
    three_workers = time.monotonic() - started
    print(
        f"\ncandidate grid of 4: one worker {one_worker:.1f}s, three workers {three_workers:.1f}s"
    )
    for w, err in zip(workers, results, strict=True):
        assert w.returncode == 0, err[-3000:]

    events = [e for err in results for e in _events(err)]
    starts = [name for name, kind, _ in events if kind == "started"]
    assert sorted(starts) == sorted(set(starts)), "a task ran twice"
    assert len(starts) == 4 + 3 * len(GRID) + 1
    assert sum(1 for err in results if "started" in err) >= 2, "only one worker did any work"

    # [resources] training = 1 in luigid's config: training never overlaps across workers.
    spans: dict[str, list[float]] = {}
    for name, _, at in events:
        if name.startswith("TrainModel["):
            spans.setdefault(name, []).append(at)
    intervals = sorted(tuple(v) for v in spans.values())
    assert len(intervals) == len(GRID)
    for (_, end), (start, _) in zip(intervals, intervals[1:], strict=False):
        assert start >= end - 0.05

    # The same result as one worker: same version, same model bytes, same selected candidate.
    (version,) = versions(tmp_path / "shared" / "registry", "breast-cancer")
    assert versions(tmp_path / "single" / "registry", "breast-cancer") == [version]
    model = "breast-cancer/versions/" + version + "/model.joblib"
    assert (tmp_path / "shared/registry" / model).read_bytes() == (
        tmp_path / "single/registry" / model
    ).read_bytes()
    verdict = json.loads(
        (tmp_path / "shared/registry/breast-cancer/versions" / version / "verdict.json").read_text()
    )
    assert verdict["selected"] == single_report["selected"]
    assert set(verdict["candidates"]) == {c["name"] for c in GRID}


def _fake_checkout(tmp_path: Path) -> Path:
    """A checkout as cron sees it: the venv, luigi.cfg and a config whose outputs stay here."""
    home = tmp_path / "checkout"
    (home / "config").mkdir(parents=True)
    (home / ".venv").symlink_to(BIN.parent)  # the virtualenv these tests run in
    (home / "luigi.cfg").symlink_to(ROOT / "luigi.cfg")
    write_config(home / "config", filename="pipeline.yaml")
    return home


def _cron_job(crontab: str) -> tuple[dict[str, str], str]:
    env, job = {}, None
    for line in crontab.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        assignment = re.match(r"^([A-Z_]+)=(.*)$", line.strip())
        if assignment:
            env[assignment[1]] = assignment[2]
            continue
        fields = line.split(None, 5)
        assert len(fields) == 6, line
        job = fields[5]
    assert job is not None
    return env, job.replace("\\%", "%")  # cron turns \% into %


def test_crontab_line_runs_in_crons_minimal_environment(tmp_path: Path):
    env, job = _cron_job((ROOT / "config" / "crontab").read_text())
    assert "MLCD_HOME" in env and "--date" in job
    home = _fake_checkout(tmp_path)
    cron_env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "SHELL": "/bin/sh",
        "MLCD_HOME": str(home),
    }
    first = subprocess.run(
        ["/bin/sh", "-c", job],
        env=cron_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = home / ".mlcd" / "logs" / "cron.log"
    assert first.returncode == 0, log.read_text()[-3000:] if log.exists() else first.stderr
    assert "SUCCESS" in log.read_text() and "published and promoted" in log.read_text()
    today = time.strftime("%Y-%m-%d")
    assert f"date {today}" in log.read_text()
    registry = home / "config" / "registry"
    (version,) = versions(registry, "breast-cancer")

    second = subprocess.run(
        ["/bin/sh", "-c", job],
        env=cron_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert second.returncode == 0
    assert "ran (0): -" in log.read_text().split("mlcd run:")[-1]
    assert versions(registry, "breast-cancer") == [version]
    assert production(registry, "breast-cancer") == version


def test_second_local_run_of_the_same_date_fails_fast_with_its_own_exit_code(tmp_path: Path):
    config = write_config(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["model"] = {"estimator": "slow_estimator.SlowClassifier", "params": {"fit_seconds": 6}}
    config.write_text(yaml.safe_dump(data))
    first = subprocess.Popen(
        [MLCD, "run", "--config", str(config), "--date", "2026-01-15"],
        cwd=ROOT,
        env={**os.environ, **SLOW},
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert first.stderr is not None
    for line in first.stderr:
        if "mlcd: ExtractData started" in line:
            break
    second = subprocess.run(
        [MLCD, "run", "--config", str(config), "--date", "2026-01-15"],
        cwd=ROOT,
        env={**os.environ, **SLOW},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 6, second.stderr
    assert "already running" in second.stderr and f"pid {first.pid}" in second.stderr
    # Another date is another run and is not blocked by the lock.
    other = subprocess.run(
        [MLCD, "run", "--config", str(config), "--date", "2026-01-16", "--json"],
        cwd=ROOT,
        env={**os.environ, **SLOW},
        capture_output=True,
        text=True,
        timeout=600,
    )
    first.communicate(timeout=600)
    assert first.returncode == 0
    assert other.returncode == 0, other.stderr[-2000:]


def test_two_checkouts_running_the_same_relative_config_on_one_luigid_each_publish(
    luigid: Luigid, tmp_path: Path
):
    # Both run `mlcd run --config config/pipeline.yaml` from their own folder at the same time:
    # the scheduler must see two pipelines, not one run by "another worker".
    folders = [tmp_path / "checkout-a", tmp_path / "checkout-b"]
    for folder in folders:
        write_config(folder / "config", validation=NO_SUITES)
        shutil.copy(ROOT / "luigi.cfg", folder)  # each checkout has its own
    procs = [
        subprocess.Popen(
            [
                MLCD,
                "run",
                "--config",
                "config/pipeline.yaml",
                "--date",
                "2026-01-15",
                "--json",
                *luigid.args(),
            ],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for folder in folders
    ]
    for folder, proc in zip(folders, procs, strict=True):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        report = json.loads(out)
        assert report["ok"] and report["published"], report
        assert versions(folder / "config" / "registry", "breast-cancer"), folder
        assert production(folder / "config" / "registry", "breast-cancer") is not None


def test_unreachable_luigid_is_one_line_naming_it_with_its_own_exit_code_and_a_manifest(
    tmp_path: Path,
):
    from tests.conftest import free_port

    config = write_config(tmp_path, validation=NO_SUITES)
    port = free_port()  # nothing listens there
    code, report, err = run_json(
        config, "--scheduler-host", "127.0.0.1", "--scheduler-port", str(port)
    )
    assert code == 10, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mlcd: scheduler unreachable:"), err
    assert f"127.0.0.1:{port}" in lines[0] and "--local-scheduler" in lines[0]
    (manifest,) = (tmp_path / "workspace" / "runs").glob("*/manifest.json")
    recorded = json.loads(manifest.read_text())
    assert recorded["exit_code"] == 10 and recorded["status"] == "failed"
    assert recorded["scheduler"] == f"127.0.0.1:{port}"
    assert recorded["failures"][0]["kind"] == "scheduler unreachable"
    assert not versions(tmp_path / "registry", "breast-cancer")


def test_finished_tasks_show_their_results_and_a_failed_gate_red_on_its_judge_name_first(
    luigid: Luigid, tmp_path: Path
):
    """The Luigi web UI shows what each finished task found (not its last step's text), and a
    failure as mlcd's one line: the blocking gate's name first, no traceback."""
    config = write_config(tmp_path / "ok", validation=NO_SUITES)
    code, report, err = run_json(config, *luigid.args())
    assert code == 0, err
    done = luigid.api("task_list", status="DONE", upstream_status="", search=str(config))
    status = {t["name"]: (t.get("status_message") or "") for t in done.values()}
    version = report["published"]["version"]
    assert status["ExtractData"].startswith("569 rows\nnumeric: ")
    assert status["SplitData"] == "train 426 rows, test 143 rows (at random)"
    assert status["TrainModel"].startswith("fitted sklearn.ensemble.RandomForestClassifier on 426")
    assert status["EvaluateModel"].startswith("test set, 143 rows: accuracy 0.")
    assert status["ValidateModel"].startswith("model_evaluation: passed (")
    assert status["PublishModel"] == (
        f"version {version} of breast-cancer (candidate model): published, now in production"
    )
    assert all(
        t.get("progress_percentage") == 100 for t in done.values() if t["name"] != "RetrainPipeline"
    )

    failing = write_config(
        tmp_path / "bar", validation=NO_SUITES, gates={"thresholds": {"accuracy": {"min": 1.01}}}
    )
    # Two workers at once: the one that does not run the judge waits for it, and stops when it
    # fails instead of waiting for Luigi's retry (which would find it sealed, and draw it green).
    procs = [
        subprocess.Popen(
            [MLCD, "run", "--config", str(failing), "--date", "2026-01-15", *luigid.args()],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = [(proc.wait(timeout=300), proc.communicate()[1]) for proc in procs]
    for code, err in outcomes:
        assert code == 3, err
        assert "accuracy >= 1.01" in err.strip().splitlines()[-1], err
    tasks = luigid.api("task_list", status="", upstream_status="", search=str(failing))
    (judge_id,) = [tid for tid, t in tasks.items() if t["name"] == "ValidateModel"]
    judge = tasks[judge_id]  # the task that judged it is the one that failed, drawn red
    assert judge["status"] == "FAILED"
    assert not [
        t for t in tasks.values() if t["name"] == "PublishModel" and t["status"] != "PENDING"
    ]
    assert judge["status_message"].startswith("BLOCKED by accuracy >= 1.01; model_evaluation: ")
    error = json.loads(luigid.api("fetch_error", task_id=judge_id)["error"])  # Luigi: JSON
    assert error.startswith(
        "gate failed: model_evaluation: blocking gate(s) failed: accuracy >= 1.01"
    )
    assert "Traceback" not in error
