"""End-to-end runs of ``mlcd run`` as a real process: real scikit-learn, real deepchecks, the
local scheduler, files on local disk."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import (
    ALL_TASKS,
    MLCD,
    ROOT,
    STEPS,
    VERSION_FILES,
    production,
    run_json,
    run_mlcd,
    tree_files,
    versions,
    write_config,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default pipeline run once, uninterrupted; tests copy it before changing anything."""
    folder = tmp_path_factory.mktemp("baseline")
    config = write_config(folder)
    code, report, err = run_json(config)
    assert code == 0, err
    assert sorted(report["ran"]) == ALL_TASKS
    return folder


def clone(baseline: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(baseline, target)
    return target


def test_default_pipeline_publishes_model_metrics_plots_reports_and_manifest(baseline: Path):
    registry = baseline / "registry"
    (version,) = versions(registry, "breast-cancer")
    assert production(registry, "breast-cancer") == version
    folder = registry / "breast-cancer" / "versions" / version
    assert tree_files(folder) == VERSION_FILES
    metrics = json.loads((folder / "metrics.json").read_text())
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"):
        assert 0 <= metrics[name] <= 1 or name == "log_loss"
    assert metrics["accuracy"] >= 0.9
    assert len(metrics["confusion_matrix"]["matrix"]) == 2
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["version"] == version
    import sklearn

    assert manifest["environment"]["packages"]["scikit-learn"] == sklearn.__version__
    assert set(manifest["tasks"]) == set(STEPS) - {"PublishModel"}
    from mlcd.fingerprint import sha256_file

    for rel, info in manifest["artifacts"].items():
        assert sha256_file(str(folder / rel)) == info["sha256"], rel
    verdict = json.loads((folder / "verdict.json").read_text())
    assert verdict["passed"] is True
    assert set(verdict["stages"]) == {"data_integrity", "train_test", "model_evaluation"}
    champion = [
        g for g in verdict["stages"]["model_evaluation"]["gates"] if g["kind"] == "champion"
    ]
    assert champion[0]["result"] == "no_champion"
    log = (registry / "breast-cancer" / "promotions.jsonl").read_text().splitlines()
    assert len(log) == 1 and json.loads(log[0])["version"] == version


def test_second_run_runs_no_task_and_publishes_nothing(baseline: Path, tmp_path: Path):
    folder = clone(baseline, tmp_path)
    before = tree_files(folder)
    code, report, err = run_json(folder / "pipeline.yaml", date="2026-01-16")
    assert code == 0, err
    assert report["ran"] == []
    assert report["already_complete"] == ALL_TASKS
    # Only the run's own manifest is new (every run records one, also a run with nothing to do).
    assert tree_files(folder) == sorted(
        [*before, f"workspace/runs/{report['run_id']}/manifest.json"]
    )
    assert len((folder / "registry/breast-cancer/promotions.jsonl").read_text().splitlines()) == 1


def test_changed_model_parameter_reruns_only_training_and_downstream(
    baseline: Path, tmp_path: Path
):
    folder = clone(baseline, tmp_path)
    old = production(folder / "registry", "breast-cancer")
    write_config(folder, model={"params": {"n_estimators": 50}})
    code, report, err = run_json(folder / "pipeline.yaml")
    assert code == 0, err
    assert sorted(report["ran"]) == [
        "EvaluateModel",
        "PublishModel",
        "RetrainPipeline",
        "TrainModel",
        "ValidateModel",
    ]
    assert sorted(report["already_complete"]) == [
        "ExtractData",
        "SplitData",
        "ValidateData",
        "ValidateSplit",
    ]
    new = production(folder / "registry", "breast-cancer")
    assert new != old and sorted(versions(folder / "registry", "breast-cancer")) == sorted(
        [old, new]
    )
    champion = [g for g in report["gates"]["model_evaluation"]["gates"] if g["kind"] == "champion"]
    assert champion[0]["champion_version"] == old
    assert champion[0]["result"] == "pass"


def test_failing_threshold_publishes_nothing_and_leaves_production(baseline: Path, tmp_path: Path):
    folder = clone(baseline, tmp_path)
    registry = folder / "registry"
    old_versions, old_prod = (
        versions(registry, "breast-cancer"),
        production(registry, "breast-cancer"),
    )
    pointer_bytes = (registry / "breast-cancer/production.json").read_bytes()
    write_config(
        folder,
        model={"params": {"n_estimators": 3, "max_depth": 1}},
        gates={"thresholds": {"accuracy": {"min": 0.999}}},
    )
    code, report, err = run_json(folder / "pipeline.yaml")
    assert code == 3, err
    assert "accuracy >= 0.999" in err and "gate failed" in err
    assert report["failed"] == ["ValidateModel"]  # the task that judged it fails, once sealed
    assert not report["gates"]["model_evaluation"]["passed"]
    assert versions(registry, "breast-cancer") == old_versions
    assert production(registry, "breast-cancer") == old_prod
    assert (registry / "breast-cancer/production.json").read_bytes() == pointer_bytes
    # Deterministic: the same failing run fails the same way, and still publishes nothing.
    code, again, err = run_json(folder / "pipeline.yaml")
    assert code == 3 and "accuracy >= 0.999" in err
    assert again["failed"] == ["PublishModel"] and "ValidateModel" not in again["ran"]


@pytest.mark.parametrize(
    ("config", "model", "plots", "metric"),
    [
        ("wine.yaml", "wine", ["confusion_matrix.png", "roc_curve.png"], "f1"),
        ("diabetes.yaml", "diabetes", ["predicted_vs_actual.png"], "rmse"),
    ],
)
def test_multiclass_and_regression_configs_publish_and_rerun_as_noop(
    tmp_path: Path, config: str, model: str, plots: list[str], metric: str
):
    path = write_config(tmp_path, config)
    code, report, err = run_json(path)
    assert code == 0, err
    (version,) = versions(tmp_path / "registry", model)
    folder = tmp_path / "registry" / model / "versions" / version
    assert sorted(p.name for p in (folder / "plots").iterdir()) == plots
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics[metric] is not None
    if model == "wine":
        assert len(metrics["confusion_matrix"]["labels"]) == 3
        assert metrics["averaging"] == "macro"
    code, report, err = run_json(path)
    assert code == 0 and report["ran"] == [], err


def _start_and_kill(config: Path, task: str, delay: float) -> None:
    proc = subprocess.Popen(
        [MLCD, "run", "--config", str(config), "--date", "2026-01-15"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if f"mlcd: {task} started" in line:
            break
    else:
        pytest.fail(f"the run ended before {task} started")
    if delay:
        import time

        time.sleep(delay)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


# Killed mid-computation (a deepchecks suite, a fit); kills at every write of every task, on
# local disk and S3, are tests/test_crash_e2e.py's matrix.
@pytest.mark.parametrize(("task", "delay"), [("ValidateData", 1.0), ("TrainModel", 0.1)])
def test_run_killed_inside_a_task_resumes_and_publishes_identical_model(
    baseline: Path, tmp_path: Path, task: str, delay: float
):
    config = write_config(tmp_path)
    _start_and_kill(config, task, delay)
    registry = tmp_path / "registry"
    # Whatever the kill interrupted, nothing half-written is visible as a version.
    for version in versions(registry, "breast-cancer"):
        assert (registry / "breast-cancer/versions" / version / "manifest.json").exists()
    code, report, err = run_json(config)
    assert code == 0, err
    assert "ExtractData" in report["already_complete"]
    (version,) = versions(registry, "breast-cancer")
    (expected,) = versions(baseline / "registry", "breast-cancer")
    assert version == expected
    ours = registry / "breast-cancer/versions" / version
    theirs = baseline / "registry/breast-cancer/versions" / version
    for name in ("model.joblib", "metrics.json", "predictions.parquet", "schema.json"):
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name
    assert production(registry, "breast-cancer") == version


def _luigi(config: Path) -> subprocess.CompletedProcess[str]:
    """Luigi's own command, from the checkout so that luigi.cfg is read."""
    command = [
        str(Path(MLCD).parent / "luigi"),
        "--module",
        "tasks",
        "RetrainPipeline",
        "--config-path",
        str(config),
        "--date",
        "2026-01-15",
        "--local-scheduler",
    ]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_luigi_command_runs_the_same_pipeline(baseline: Path, tmp_path: Path):
    config = write_config(tmp_path)
    proc = _luigi(config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert versions(tmp_path / "registry", "breast-cancer") == versions(
        baseline / "registry", "breast-cancer"
    )
    # luigi.cfg's [retcode] makes a failed task a non-zero exit under `luigi` too.
    write_config(tmp_path, gates={"thresholds": {"accuracy": {"min": 1.01}}})
    proc = _luigi(config)
    assert proc.returncode == 5, proc.stderr[-3000:]


def test_own_csv_source_is_fingerprinted_and_a_change_publishes_a_new_version(tmp_path: Path):
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "malignant"})
    csv = tmp_path / "data" / "patients.csv"
    csv.parent.mkdir()
    frame.iloc[:500].to_csv(csv, index=False)
    config = write_config(
        tmp_path,
        source={"path": "data/patients.csv"},
        target="malignant",
        gates={"champion": {"metric": "f1", "tolerance": 0.05}},
    )
    config.write_text(config.read_text().replace("dataset: breast_cancer\n", ""))
    code, report, err = run_json(config)
    assert code == 0, err
    first = production(tmp_path / "registry", "breast-cancer")
    code, report, err = run_json(config)
    assert code == 0 and report["ran"] == [], err
    frame.to_csv(csv, index=False)  # new rows arrive
    code, report, err = run_json(config)
    assert code == 0, err
    assert "ExtractData" in report["ran"]
    second = production(tmp_path / "registry", "breast-cancer")
    assert second != first
    assert sorted(versions(tmp_path / "registry", "breast-cancer")) == sorted([first, second])


def test_single_class_data_is_a_data_error_and_writes_no_model(tmp_path: Path):
    csv = tmp_path / "one_class.csv"
    csv.write_text("a,b,label\n1,2,yes\n3,4,yes\n5,6,yes\n")
    config = write_config(tmp_path, source={"path": str(csv)}, target="label")
    config.write_text(config.read_text().replace("dataset: breast_cancer\n", ""))
    code, report, err = run_json(config)
    assert code == 4, err
    assert "single class" in err
    assert not (tmp_path / "registry").exists()
    assert not (tmp_path / "workspace" / "extract").exists() or not any(
        (tmp_path / "workspace" / "extract").rglob("*.parquet")
    )
    assert not (tmp_path / "workspace" / "snapshots").exists()  # no snapshot of bad data


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"modle": {}}, "unknown key 'modle'"),
        ({"split": {"test_size": "a lot"}}, "'split.test_size'"),
        ({"model": {"estimator": "sklearn.ensemble.RandomForestClassifer"}}, "cannot import"),
        ({"gates": {"thresholds": {"acuracy": {"min": 0.9}}}}, "unknown metric 'acuracy'"),
        ({"target": "diagnosis"}, "column 'diagnosis' is not in the source data"),
        ({"name": "../escape"}, "model name '../escape'"),
    ],
)
def test_bad_config_exits_2_with_one_clear_line_and_writes_nothing(
    tmp_path: Path, changes: dict, expected: str
):
    config = write_config(tmp_path, **changes)
    proc = run_mlcd("run", "--config", str(config))
    assert proc.returncode == 2
    assert expected in proc.stderr
    assert proc.stderr.startswith("mlcd: config error: ")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipeline.yaml"]


def test_missing_config_file_exits_2():
    proc = run_mlcd("run", "--config", "/nonexistent/pipeline.yaml")
    assert proc.returncode == 2
    assert "cannot read config" in proc.stderr


def test_help_lists_exit_codes():
    proc = run_mlcd("--help")
    assert proc.returncode == 0
    assert "3 gate failed" in proc.stdout


def test_two_workers_with_a_process_parallel_estimator_finish_and_match_one_worker(
    baseline: Path, tmp_path: Path
):
    """Luigi forks a process per task with --workers 2; loky workers started inside one (here by
    BaggingClassifier's n_jobs) must not keep the run from ending."""
    import yaml

    config = write_config(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["model"] = {
        "estimator": "sklearn.ensemble.BaggingClassifier",
        "params": {"n_estimators": 8, "n_jobs": 2, "random_state": 0},
    }
    config.write_text(yaml.safe_dump(data))
    proc = run_mlcd(
        "run",
        "--config",
        str(config),
        "--date",
        "2026-01-15",
        "--workers",
        "2",
        "--json",
        timeout=180,  # liveness bound: a hang waits out loky's idle timeout (minutes)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert sorted(report["ran"]) == ALL_TASKS
    # Upstream of training, two workers produce the very same outputs as one.
    ours = sorted((tmp_path / "workspace" / "split").rglob("*.parquet"))
    theirs = sorted((baseline / "workspace" / "split").rglob("*.parquet"))
    assert [p.read_bytes() for p in ours] == [p.read_bytes() for p in theirs]
