"""``mlcd reproduce``, ``lineage``, ``runs`` and ``status`` as real processes, with real
scikit-learn and deepchecks: a published model is rebuilt bit for bit by another process in
another workspace path."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import (
    MLCD,
    NO_SUITES,
    ROOT,
    STEPS,
    csv_config,
    csv_source,
    production,
    run_json,
    run_mlcd,
    set_model_params,
    tree_files,
    versions,
    write_config,
)

pytestmark = pytest.mark.e2e

# Outputs that must be byte-identical; reports carry timestamps and are compared by verdict.
DETERMINISTIC = re.compile(
    r"\.(parquet|joblib|png)$|(metrics|schema|split|plots|input_example)\.json$"
)


def version_dir(folder: Path, model: str, version: str) -> Path:
    return folder / "registry" / model / "versions" / version


def assert_byte_identical(original: Path, reproduced: Path) -> list[str]:
    """Every deterministic file of two version folders is the same, byte for byte, and none
    holds the original's absolute path."""
    names = [n for n in tree_files(original) if DETERMINISTIC.search(n)]
    assert "model.joblib" in names and "predictions.parquet" in names and "metrics.json" in names
    assert [n for n in tree_files(reproduced) if DETERMINISTIC.search(n)] == names
    for name in names:
        blob = (original / name).read_bytes()
        assert blob == (reproduced / name).read_bytes(), name
        assert str(original.parents[3]).encode() not in blob, name
    return names


def reproduce(config: Path, spec: str, *extra: str) -> tuple[int, str, str]:
    proc = run_mlcd("reproduce", spec, "--config", str(config), *extra)
    return proc.returncode, proc.stdout, proc.stderr


def reproduce_in(config: Path, spec: str, workdir: Path) -> dict:
    code, out, err = reproduce(config, spec, "--workdir", str(workdir), "--json")
    assert code == 0, out + err
    result = json.loads(out)
    assert result["identical"] is True and result["first_difference"] is None
    return result


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """config/pipeline.yaml (binary classification) run once; tests copy it before changing it."""
    folder = tmp_path_factory.mktemp("binary")
    code, report, err = run_json(write_config(folder))
    assert code == 0, err
    return folder, report


def test_binary_config_reproduces_byte_identical_in_another_process_and_workspace(binary, tmp_path):
    folder, report = binary
    config = folder / "pipeline.yaml"
    result = reproduce_in(config, report["run_id"], tmp_path / "elsewhere")
    version = report["published"]["version"]
    (copy,) = versions(tmp_path / "elsewhere/registry", "breast-cancer")
    assert_byte_identical(
        version_dir(folder, "breast-cancer", version),
        version_dir(tmp_path / "elsewhere", "breast-cancer", copy),
    )
    manifest = json.loads(
        (folder / "workspace/runs" / report["run_id"] / "manifest.json").read_text()
    )
    snapshot = manifest["snapshot"]["path"]
    assert (folder / "workspace" / snapshot).read_bytes() == (
        tmp_path / "elsewhere/workspace" / snapshot
    ).read_bytes()
    labels = [t["label"] for t in result["tasks"]]
    assert labels == STEPS
    assert all(t["result"] == "identical" for t in result["tasks"])
    verdicts = [o for t in result["tasks"] for o in t["outputs"] if o["compare"] == "verdict"]
    assert len(verdicts) == 4 and all(o["result"] == "identical" for o in verdicts)
    assert result["warnings"] == []


@pytest.mark.parametrize(
    "base, model",
    [("wine.yaml", "wine"), ("diabetes.yaml", "diabetes")],
    ids=["multiclass", "regression"],
)
def test_shipped_config_reproduces_byte_identical(base, model, tmp_path):
    config = write_config(tmp_path / "original", base)
    code, report, err = run_json(config)
    assert code == 0, err
    version = report["published"]["version"]
    reproduce_in(config, version, tmp_path / "elsewhere")
    (copy,) = versions(tmp_path / "elsewhere/registry", model)
    assert_byte_identical(
        version_dir(tmp_path / "original", model, version),
        version_dir(tmp_path / "elsewhere", model, copy),
    )


def test_first_version_reproduces_after_the_source_and_a_parameter_changed(tmp_path):
    folder = tmp_path / "project"
    config = csv_config(folder)
    code, first, err = run_json(config)
    assert code == 0, err
    v1 = first["published"]["version"]

    csv_source(folder, rows=539)  # new data at the same path: the last 30 rows are gone
    set_model_params(config, n_estimators=120, max_depth=8, random_state=42, n_jobs=1)
    code, second, err = run_json(config, date="2026-01-16")
    assert code == 0, err
    v2 = second["published"]["version"]
    assert v2 != v1 and production(folder / "registry", "breast-cancer") == v2
    assert len(list((folder / "workspace/snapshots").iterdir())) == 2
    registry_before = {p: p.read_bytes() for p in (folder / "registry").rglob("*") if p.is_file()}

    # Both reproductions at once, each in its own scratch folder. The second version was
    # gated against the first: its reproduction restores the first as the champion in its
    # scratch registry, so that gate is recomputed and compared too.
    first_proc = start_mlcd("reproduce", v1, "--config", str(config))
    result = reproduce_in(config, v2, tmp_path / "second")
    out, err = first_proc.communicate(timeout=600)
    assert first_proc.returncode == 0, out + err
    assert re.search(r"^identical: 8 tasks, \d+ outputs match the manifest", out, re.M), out
    assert "champion none" in out
    assert result["champion"] == v1 and result["champion_compared"] is True
    assert production(tmp_path / "second/registry", "breast-cancer") != v1
    assert registry_before == {
        p: p.read_bytes() for p in (folder / "registry").rglob("*") if p.is_file()
    }


def start_mlcd(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [MLCD, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture(scope="module")
def unseeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A run without deepchecks suites whose forest has no random_state."""
    folder = tmp_path_factory.mktemp("unseeded")
    config = write_config(folder, validation=NO_SUITES)
    set_model_params(config, n_estimators=30)  # no random_state: every fit differs
    code, report, err = run_json(config)
    assert code == 0, err
    return folder, report


def test_a_run_that_does_not_reproduce_names_the_first_differing_task(unseeded):
    folder, report = unseeded
    config = folder / "pipeline.yaml"
    code, out, err = reproduce(config, report["published"]["version"])
    assert code == 9, out + err
    assert "warning: the model sets no random_state: if its estimator is random" in out
    assert re.search(r"^  TrainModel +different +model\.joblib", out, re.M), out
    assert "DIFFERENT: the first task whose output differs is TrainModel: model bytes differ" in out
    assert err.strip().splitlines()[-1].startswith("mlcd: not reproduced: version ")


def test_lineage_of_a_published_version_as_text_and_dot(binary):
    folder, report = binary
    config = folder / "pipeline.yaml"
    version = report["published"]["version"]
    manifest = json.loads(
        (version_dir(folder, "breast-cancer", version) / "manifest.json").read_text()
    )
    proc = run_mlcd("lineage", version, "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert text.startswith(f"model breast-cancer, version {version} (candidate model)")
    assert f"run          {report['run_id']}" in text
    assert f"sha256 {manifest['config_digest'][:12]}" in text
    assert f"sha256 {manifest['snapshot_sha256'][:12]}" in text and "verified" in text
    assert "bundled dataset breast_cancer" in text
    for label, task in manifest["tasks"].items():
        assert re.search(rf"^  {label} +{task['identity']} ", text, re.M), label

    proc = run_mlcd("lineage", f"breast-cancer:{version[:8]}", "--config", str(config), "--dot")
    assert proc.returncode == 0, proc.stderr
    declared = set(re.findall(r'^  "([^"]+)" \[shape=', proc.stdout, re.M))
    edges = re.findall(r'^  "([^"]+)" -> "([^"]+)"', proc.stdout, re.M)
    assert proc.stdout.startswith("digraph ") and proc.stdout.rstrip().endswith("}")
    assert {"config", "source", "snapshot", "version", *manifest["tasks"]} <= declared
    assert edges and all(a in declared and b in declared for a, b in edges)
    assert ("PublishModel", "version") in edges


def test_runs_list_and_show(binary):
    folder, report = binary
    config = folder / "pipeline.yaml"
    proc = run_mlcd("runs", "list", "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].split() == [
        "run", "model", "date", "status", "ran", "time", "commit", "published"
    ]  # fmt: skip
    assert re.search(
        rf"^{re.escape(report['run_id'])} +breast-cancer +2026-01-15 +success ", proc.stdout, re.M
    )
    proc = run_mlcd("runs", "show", report["run_id"][:15], "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"run {report['run_id']} of model breast-cancer: success")
    assert re.search(r"^TrainModel +[0-9a-f]{16} +ran$", proc.stdout, re.M), proc.stdout
    proc = run_mlcd("runs", "show", report["run_id"], "--config", str(config), "--json")
    manifest = json.loads(proc.stdout)
    assert manifest["run_id"] == report["run_id"] and manifest["kind"] == "run"
    assert "--config" in manifest["command"] and str(config) in manifest["command"]


def test_status_explains_what_a_changed_config_would_run(binary):
    folder, _ = binary
    proc = run_mlcd("status", "--config", str(folder / "pipeline.yaml"))
    assert proc.returncode == 0, proc.stderr
    assert "all 8 tasks are complete" in proc.stdout
    data = yaml.safe_load((folder / "pipeline.yaml").read_text())
    data["gates"]["thresholds"]["accuracy"] = {"min": 0.92}
    changed = folder / "stricter.yaml"
    changed.write_text(yaml.safe_dump(data))
    proc = run_mlcd("status", "--config", str(changed), "--json")
    rows = {r["task"]: r for r in json.loads(proc.stdout)["tasks"]}
    assert rows["TrainModel"]["complete"] and rows["EvaluateModel"]["complete"]
    assert rows["ValidateModel"]["reasons"] == [
        "changed parameter: gates.thresholds.accuracy.min (0.9 -> 0.92)"
    ]
    assert rows["PublishModel"]["reasons"] == ["an upstream task changed: ValidateModel"]


def test_bad_inputs_give_one_line_and_a_non_zero_exit(binary, tmp_path):
    folder, report = binary
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    config = copy / "pipeline.yaml"
    version = report["published"]["version"]

    def fails(code: int, pattern: str, *args: str) -> None:
        proc = run_mlcd(*args, "--config", str(config))
        assert proc.returncode == code, proc.stdout + proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.startswith("mlcd: ")]
        assert len(lines) == 1 and re.search(pattern, lines[0]), proc.stderr

    fails(8, r"not found: 'ffff0000' is neither a run", "reproduce", "ffff0000")
    fails(8, r"not found: no run '20990101'", "runs", "show", "20990101")
    fails(8, r"not found: .*neither a run", "lineage", "20990101")

    run_manifest = copy / "workspace/runs" / report["run_id"] / "manifest.json"
    run_manifest.write_text("{not json")
    fails(7, r"storage error: the manifest of run .* is corrupted", "reproduce", report["run_id"])
    fails(7, r"is corrupted", "runs", "show", report["run_id"])
    version_manifest = version_dir(copy, "breast-cancer", version) / "manifest.json"
    data = json.loads(version_manifest.read_text())
    data["config"]["split"]["seed"] = 1  # edited by hand: no longer what was run
    version_manifest.write_text(json.dumps(data))
    fails(7, r"does not match itself", "lineage", version)


def test_a_deleted_snapshot_cannot_be_reproduced_and_says_so(unseeded):
    folder, report = unseeded
    config = folder / "pipeline.yaml"
    (snapshot,) = (folder / "workspace/snapshots").iterdir()
    aside = folder / "snapshot.aside"
    snapshot.rename(aside)
    try:
        proc = run_mlcd("reproduce", report["run_id"], "--config", str(config))
        lineage = run_mlcd("lineage", report["run_id"], "--config", str(config))
    finally:
        aside.rename(snapshot)
    assert proc.returncode == 7, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"mlcd: storage error: the snapshot of run {report['run_id']} (sha256 "
        f"{snapshot.stem[:12]}) is gone: it is not at '{snapshot}'. It was deleted, so the run "
        "cannot be reproduced; restore it from a backup of the workspace"
    ]
    assert lineage.returncode == 0 and "deleted, the run cannot be reproduced" in lineage.stdout
