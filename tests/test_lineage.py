"""Run manifests, content-addressed snapshots, status, lineage and reproduction, on pipelines run
in this process with the deepchecks suites switched off (a run takes about a second)."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from luigi.task_register import Register

from mlcd import lineage, storage
from mlcd.app import reproduce, status
from mlcd.app.subjects import locate
from mlcd.cli import main
from mlcd.config import load_config
from mlcd.errors import NotFound, StorageError, UsageError
from mlcd.fingerprint import digest, sha256_file
from tests.conftest import csv_config, csv_source, production, versions

DATE = "2026-01-15"


def run(config: Path, date: str = DATE) -> tuple[int, dict[str, Any]]:
    """``mlcd run --json`` in this process."""
    Register.clear_instance_cache()  # a task's identity is cached on the (cached) instance
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", "--config", str(config), "--date", date, "--json"])
    text = out.getvalue()
    return code, json.loads(text) if text.strip().startswith("{") else {}


def publish_task(config: Path) -> Any:
    import tasks

    Register.clear_instance_cache()
    return tasks.PublishModel(config_path=str(config), date=dt.date.fromisoformat(DATE))


def reasons_by_task(config: Path) -> dict[str, list[str]]:
    return {row["task"]: row["reasons"] for row in status.status(publish_task(config))["tasks"]}


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CSV-sourced pipeline run once and published; tests that change it copy it first."""
    folder = tmp_path_factory.mktemp("published")
    config = csv_config(folder, suites=False)
    code, report = run(config)
    assert code == 0, report
    return folder


def the_version(folder: Path) -> str:
    (version,) = versions(folder / "registry", "breast-cancer")
    return version


def version_manifest(folder: Path) -> dict[str, Any]:
    path = folder / "registry/breast-cancer/versions" / the_version(folder) / "manifest.json"
    return dict(json.loads(path.read_text()))


def run_manifests(folder: Path) -> list[dict[str, Any]]:
    paths = sorted((folder / "workspace/runs").glob("*/manifest.json"))
    return [json.loads(p.read_text()) for p in paths]


# --- pure functions --------------------------------------------------------------------------


def test_run_ids_sort_by_time_and_differ_within_the_same_millisecond():
    early = dt.datetime(2026, 1, 15, 9, 0, 0, 1000, tzinfo=dt.UTC)
    later = dt.datetime(2026, 1, 15, 9, 0, 0, 2000, tzinfo=dt.UTC)
    ids = [lineage.new_run_id(later), lineage.new_run_id(early), lineage.new_run_id(early)]
    assert all(lineage.RUN_ID.fullmatch(i) for i in ids)
    assert sorted(ids)[-1] == ids[0]
    assert ids[1] != ids[2]
    assert ids[1].startswith("20260115T090000.001Z-")


def test_run_id_is_the_one_mlcd_run_sets_or_one_fresh_id_per_process(monkeypatch):
    given = lineage.new_run_id()
    monkeypatch.setenv(lineage.RUN_ID_ENV, given)
    assert lineage.current_run_id() == given
    monkeypatch.setenv(lineage.RUN_ID_ENV, "not-a-run-id")
    fresh = lineage.current_run_id()
    assert fresh != given and lineage.RUN_ID.fullmatch(fresh)
    assert lineage.current_run_id() == fresh


def gate(check: str, result: str, details: str, blocking: bool = False) -> dict[str, Any]:
    return {
        "kind": "deepchecks",
        "check": check,
        "condition": f"{check} holds",
        "result": result,
        "blocking": blocking,
        "details": details,
    }


def test_verdicts_compare_by_gate_results_not_details_nor_wall_time_checks():
    base = {
        "stage": "model_evaluation",
        "passed": True,
        "gates": [
            gate("SimpleModelComparison", "pass", "score 0.91", blocking=True),
            gate("ModelInferenceTime", "pass", "0.0001 s"),
        ],
    }
    slower = json.loads(json.dumps(base))
    slower["gates"][0]["details"] = "score 0.9100001"
    slower["gates"][1].update(result="warn", details="0.2 s")  # wall time, not the model
    assert lineage.verdict_outcomes(base) == lineage.verdict_outcomes(slower)
    failed = json.loads(json.dumps(base))
    failed["gates"][0]["result"] = "fail"
    assert lineage.verdict_outcomes(base) != lineage.verdict_outcomes(failed)


def test_champion_gate_is_compared_with_its_champion_unless_left_out():
    champion = {
        "kind": "champion",
        "name": "not worse than production on f1 by more than 0.01",
        "champion_version": "aaaa",
        "result": "pass",
        "blocking": True,
        "details": "challenger f1 = 0.96",
    }
    verdict = {"stage": "model_evaluation", "passed": True, "gates": [champion]}
    other = json.loads(json.dumps(verdict))
    other["gates"][0].update(champion_version=None, result="no_champion", blocking=False)
    outcomes, others = lineage.verdict_outcomes(verdict), lineage.verdict_outcomes(other)
    assert outcomes != others
    assert lineage.without_champion(outcomes) == lineage.without_champion(others)


def test_published_verdict_outcomes_cover_every_stage_and_candidate():
    stage = {"stage": "data_integrity", "passed": True, "gates": [gate("MixedNulls", "pass", "")]}
    published = {
        "passed": True,
        "selected": "forest",
        "stages": {"data_integrity": stage},
        "candidates": {"forest": {"passed": True}, "logreg": {"passed": False}},
    }
    outcomes = lineage.verdict_outcomes(published)
    assert outcomes["candidates"] == {"forest": True, "logreg": False}
    assert outcomes["stages"]["data_integrity"]["gates"] == [
        ["deepchecks", "MixedNulls: MixedNulls holds", "pass", False]
    ]


def test_records_compare_without_fit_time_but_with_the_model_digest():
    info = {"fit_seconds": 0.31, "model_sha256": "ab", "train_rows": 10}
    assert lineage.record_digest("TrainModel", "train.json", info) == lineage.record_digest(
        "TrainModel", "train.json", {**info, "fit_seconds": 2.5}
    )
    assert lineage.record_digest("TrainModel", "train.json", info) != lineage.record_digest(
        "TrainModel", "train.json", {**info, "model_sha256": "cd"}
    )
    assert lineage.compare_mode("ValidateData", "report.html") == "none"
    assert lineage.compare_mode("EvaluateModel", "predictions.parquet") == "bytes"


def minimal_manifest() -> dict[str, Any]:
    config = {"name": "m", "task": "classification"}
    return {
        "run_date": DATE,
        "config": config,
        "config_digest": digest(config),
        "tasks": {"TrainModel": {"outputs": {"model.joblib": "ab" * 32}}},
    }


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda m: [m], "not a JSON object"),
        (lambda m: {k: v for k, v in m.items() if k != "tasks"}, "no 'tasks'"),
        (lambda m: {**m, "config": {**m["config"], "task": "regression"}}, "does not match"),
        (lambda m: {**m, "tasks": {"TrainModel": ["x"]}}, "task 'TrainModel'"),
    ],
)
def test_a_damaged_manifest_is_refused_naming_the_problem(damage, problem):
    with pytest.raises(StorageError, match=re.escape(problem)):
        lineage.check_manifest(damage(minimal_manifest()), "the manifest of run x")


def test_a_manifest_of_an_older_mlcd_is_read_with_its_output_digests():
    manifest = lineage.check_manifest(minimal_manifest(), "m")
    output = manifest["tasks"]["TrainModel"]["outputs"]["model.joblib"]
    assert output == {"sha256": "ab" * 32, "compare": "bytes"}


def test_changed_parameters_are_named_by_their_config_key():
    old = {"model": {"params": {"n_estimators": 200, "steps": [["a", 1], ["b", 2]]}}, "seed": 1}
    new = {"model": {"params": {"n_estimators": 120, "steps": [["a", 1], ["b", 3]]}}, "seed": 1}
    paths = status.diff_paths(old, new)
    assert [lineage.config_key("TrainModel", "model", False, p) for p in paths] == [
        "model.params.n_estimators",
        "model.params.steps[1][1]",
    ]
    assert lineage.config_key("TrainModel", "forest", True, ("model", "params")) == (
        "candidates[forest].params"
    )
    assert lineage.config_key("ValidateSplit", None, False, ("suite", "skip")) == (
        "validation.train_test.skip"
    )
    assert lineage.config_key("ValidateData", None, False, ("seed",)) == "split.seed"


def test_pipeline_order_is_stage_then_candidate_as_listed():
    labels = ["PublishModel", "TrainModel[b]", "ExtractData", "TrainModel[a]", "ValidateModel[a]"]
    assert lineage.ordered(labels, ["b", "a"]) == [
        "ExtractData",
        "TrainModel[b]",
        "TrainModel[a]",
        "ValidateModel[a]",
        "PublishModel",
    ]


# --- snapshots -------------------------------------------------------------------------------


def test_snapshot_is_kept_by_content_and_the_old_one_stays_when_the_source_changes(tmp_path):
    import tasks

    config = csv_config(tmp_path, suites=False)
    Register.clear_instance_cache()
    import luigi

    def extract() -> Any:
        Register.clear_instance_cache()
        task = tasks.ExtractData(config_path=str(config), date=dt.date(2026, 1, 15))
        assert luigi.build([task], local_scheduler=True, log_level="WARNING")
        return task

    first = extract()
    sha = first.snapshot_sha256()
    snapshots = tmp_path / "workspace/snapshots"
    assert sha256_file(str(snapshots / f"{sha}.parquet")) == sha
    info = json.loads(Path(first.path("extract.json")).read_text())
    assert info["snapshot"] == f"snapshots/{sha}.parquet" and info["snapshot_sha256"] == sha
    assert sorted(p.name for p in Path(first.folder()).iterdir()) == [
        "_SUCCESS.json",
        "extract.json",
    ]

    csv_source(tmp_path, rows=400)
    second = extract()
    assert second.identity != first.identity
    assert sorted(p.name for p in snapshots.iterdir()) == sorted(
        [f"{sha}.parquet", f"{second.snapshot_sha256()}.parquet"]
    )
    assert len(second.snapshot()) == 400


def test_extract_is_incomplete_without_its_snapshot_and_refuses_a_corrupted_one(tmp_path):
    import luigi

    import tasks

    config = csv_config(tmp_path, suites=False)
    Register.clear_instance_cache()
    task = tasks.ExtractData(config_path=str(config), date=dt.date(2026, 1, 15))
    assert luigi.build([task], local_scheduler=True, log_level="WARNING")
    path = Path(str(task.snapshot_path()))
    blob = path.read_bytes()
    path.unlink()
    # A task found complete stays so for its run (its outputs are immutable); the next run's
    # task looks again.
    Register.clear_instance_cache()
    task = tasks.ExtractData(config_path=str(config), date=dt.date(2026, 1, 15))
    assert not task.complete()
    assert luigi.build([task], local_scheduler=True, log_level="WARNING")
    assert path.read_bytes() == blob  # extracted again, the same bytes under the same name
    path.write_bytes(blob[:-10] + b"0123456789")
    with pytest.raises(StorageError, match="does not match its name"):
        task.snapshot()


# --- run manifests ---------------------------------------------------------------------------


def test_every_run_writes_a_manifest_and_the_version_carries_the_same_one(published):
    (manifest,) = run_manifests(published)
    version = version_manifest(published)
    assert manifest["kind"] == "run" and version["kind"] == "version"
    assert manifest["run_id"] == version["run_id"]
    assert manifest["status"] == "success" and manifest["exit_code"] == 0
    assert manifest["published"]["version"] == the_version(published)
    for m in (manifest, version):
        assert m["run_date"] == DATE
        assert m["command"] == sys.argv  # this process's command line (pytest, here)
        assert m["config_digest"] == digest(m["config"])
        assert m["source_fingerprint"]["sha256"] == sha256_file(str(published / "data.csv"))
        assert m["seeds"] == {
            "split": 42,
            "deepchecks": 42,
            "models": {"model": {"random_state": 42}},
        }
        packages = m["environment"]["packages"]
        for name in ("luigi", "numpy", "pandas", "scikit-learn", "scipy", "deepchecks", "joblib"):
            assert packages[name], name
        assert {"python", "platform", "git_commit", "git_dirty", "mlcd"} <= set(m["environment"])
    snapshot = published / "workspace" / manifest["snapshot"]["path"]
    assert sha256_file(str(snapshot)) == manifest["snapshot_sha256"]
    roots = {"workspace": published / "workspace", "publish": published / "registry"}
    for label, task in manifest["tasks"].items():
        assert task["complete"], label
        assert task["identity"] and isinstance(task["params"], dict)
        for name, output in task["outputs"].items():
            assert not Path(output["path"]).is_absolute(), (label, name)
            assert sha256_file(str(roots[output["root"]] / output["path"])) == output["sha256"]
    assert set(version["tasks"]) == set(manifest["tasks"]) - {"PublishModel"}
    assert version["tasks"]["TrainModel"] == manifest["tasks"]["TrainModel"]


def test_published_marker_holds_no_absolute_path(published):
    (marker,) = (published / "workspace/publish").glob("*/published.json")
    info = json.loads(marker.read_text())
    assert info["path"] == f"breast-cancer/versions/{the_version(published)}"
    assert str(published) not in marker.read_text()


def test_a_no_op_run_and_a_failed_run_are_recorded_with_their_status(published, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(published, folder)
    code, report = run(folder / "pipeline.yaml", date="2026-01-16")
    assert code == 0 and report["ran"] == []
    noop = lineage.read_run(str(folder / "workspace"), report["run_id"])
    assert noop["status"] == "success" and noop["ran"] == []
    assert noop["published"]["by_this_run"] is False
    assert all(t["complete"] for t in noop["tasks"].values())
    assert noop["run_date"] == "2026-01-16"

    strict = csv_config(folder, suites=False, gates={"thresholds": {"accuracy": {"min": 0.999}}})
    code, report = run(strict)
    assert code == 3
    failed = lineage.read_run(str(folder / "workspace"), report["run_id"])
    assert failed["status"] == "failed" and failed["exit_code"] == 3
    assert failed["failures"][0]["task"] == "ValidateModel"  # the judge fails, once sealed
    assert failed["published"] is None
    assert failed["tasks"]["ValidateModel"]["complete"] is True
    assert failed["tasks"]["PublishModel"]["complete"] is False
    listed = list(lineage.run_summaries(str(folder / "workspace"), "breast-cancer"))
    assert [r["status"] for r in listed] == ["failed", "success", "success"]

    # Reproducing the failed run fails at the same gate: the same outcome, task for task.
    cfg = load_config(strict)
    Register.clear_instance_cache()
    result = reproduce.reproduce(cfg, locate(cfg, report["run_id"]))
    assert result.identical, reproduce.render(result)
    assert [t.result for t in result.tasks][-2:] == ["identical", "not run"]


# --- status ----------------------------------------------------------------------------------


def test_status_says_no_output_yet_before_the_first_run(tmp_path):
    config = csv_config(tmp_path, suites=False)
    reasons = reasons_by_task(config)
    assert reasons["ExtractData"] == ["no output yet"]
    assert all(r == ["no output yet"] for r in reasons.values())


def test_status_names_the_changed_parameter_the_new_source_and_the_upstream_task(
    published, tmp_path
):
    folder = tmp_path / "copy"
    shutil.copytree(published, folder)
    config = folder / "pipeline.yaml"
    assert all(r == [] for r in reasons_by_task(config).values())

    changed = csv_config(folder, suites=False, split={"test_size": 0.3})
    reasons = reasons_by_task(changed)
    assert reasons["ExtractData"] == [] and reasons["ValidateData"] == []
    assert reasons["SplitData"] == ["changed parameter: split.test_size (0.25 -> 0.3)"]
    assert reasons["TrainModel"] == ["an upstream task changed: SplitData"]
    assert reasons["PublishModel"][-1].startswith("an upstream task changed: SplitData")

    csv_source(folder, rows=500)
    reasons = reasons_by_task(config)
    old_sha = run_manifests(folder)[0]["source_fingerprint"]["sha256"]
    new_sha = sha256_file(str(folder / "data.csv"))
    assert reasons["ExtractData"] == [
        f"new source fingerprint (sha256 {old_sha[:12]} -> {new_sha[:12]})"
    ]
    assert reasons["ValidateData"] == ["an upstream task changed: ExtractData"]


def test_status_says_which_output_is_missing(published, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(published, folder)
    (model,) = (folder / "workspace/train").glob("*/model.joblib")
    model.unlink()
    (run_id,) = [m["run_id"] for m in run_manifests(folder)]
    reasons = reasons_by_task(folder / "pipeline.yaml")
    assert reasons["TrainModel"] == [
        f"output missing: model.joblib (present after run {run_id}; deleted since)"
    ]
    assert reasons["EvaluateModel"] == []  # complete: it only reruns if its own output is gone


# --- lineage ---------------------------------------------------------------------------------


def parse_dot(text: str) -> tuple[set[str], list[tuple[str, str]]]:
    """The nodes declared and the edges of a DOT digraph as lineage_dot writes it."""
    assert re.match(r'digraph "[^"]+" \{\n', text) and text.rstrip().endswith("}")
    assert text.count("{") == text.count("}") == 1
    nodes, edges = set(), []
    for line in text.splitlines()[1:-1]:
        line = line.strip()
        edge = re.fullmatch(r'"((?:[^"\\]|\\.)+)" -> "((?:[^"\\]|\\.)+)"( \[.*\])?;', line)
        node = re.fullmatch(r'"((?:[^"\\]|\\.)+)" \[shape=\w+, label="[^"]*"\];', line)
        if edge:
            edges.append((edge.group(1), edge.group(2)))
        elif node:
            nodes.add(node.group(1))
        else:
            assert re.fullmatch(r"(rankdir=LR|node \[.*\]|edge \[.*\]);", line), line
    return nodes, edges


def test_lineage_of_a_version_leads_from_config_and_snapshot_through_every_task(published):
    manifest = version_manifest(published)
    version = the_version(published)
    folder = str(published / "registry/breast-cancer/versions" / version)
    nodes, edges = parse_dot(lineage.lineage_dot(manifest, folder))
    labels = set(manifest["tasks"]) | {"PublishModel"}
    assert nodes == labels | {"config", "source", "snapshot", "version"}
    assert {a for a, _ in edges} | {b for _, b in edges} <= nodes
    assert ("source", "ExtractData") in edges and ("ExtractData", "snapshot") in edges
    assert ("snapshot", "SplitData") in edges and ("SplitData", "TrainModel") in edges
    assert ("TrainModel", "EvaluateModel") in edges and ("PublishModel", "version") in edges
    reached, frontier = {"version"}, ["version"]
    while frontier:  # every task and the snapshot lie upstream of the version
        here = frontier.pop()
        for a, b in edges:
            if b == here and a not in reached:
                reached.add(a)
                frontier.append(a)
    assert labels | {"snapshot", "source", "config"} <= reached

    text = lineage.lineage_text(manifest, folder, "verified")
    assert f"version {version}" in text
    assert manifest["config_digest"][:12] in text and manifest["snapshot_sha256"][:12] in text
    for label, task in manifest["tasks"].items():
        assert re.search(rf"^  {re.escape(label)} +{task['identity']} ", text, re.M), label
    model_sha = manifest["artifacts"]["model.joblib"]["sha256"]
    assert f"model.joblib {model_sha[:12]}" in text


# --- reproduce -------------------------------------------------------------------------------


def test_reproduce_is_identical_and_leaves_the_real_registry_alone(published):
    cfg = load_config(published / "pipeline.yaml")
    registry = published / "registry/breast-cancer"
    before = {p: p.read_bytes() for p in registry.rglob("*") if p.is_file()}
    Register.clear_instance_cache()
    result = reproduce.reproduce(cfg, locate(cfg, the_version(published)[:6]))
    assert result.identical, reproduce.render(result)
    assert [t.label for t in result.tasks][0] == "ExtractData"
    assert result.tasks[-1].label == "PublishModel"
    model = next(o for o in result.tasks[-1].outputs if o.name == "model.joblib")
    assert model.result == "identical"
    assert {p: p.read_bytes() for p in registry.rglob("*") if p.is_file()} == before
    assert not Path(result.scratch).exists()


def test_reproduce_names_the_first_task_that_differs_and_how(published, monkeypatch, tmp_path):
    from mlcd import training

    real_fit = training.fit

    def other_seed(spec: Any, x: Any, y: Any, *rest: Any) -> Any:  # as if the code had changed
        return real_fit(
            spec.model_copy(update={"params": {**spec.params, "random_state": 7}}), x, y, *rest
        )

    monkeypatch.setattr(training, "fit", other_seed)
    cfg = load_config(published / "pipeline.yaml")
    (run_id,) = [m["run_id"] for m in run_manifests(published)]
    Register.clear_instance_cache()
    result = reproduce.reproduce(
        cfg, locate(cfg, run_id), workdir=str(tmp_path / "scratch")
    )
    assert not result.identical
    first = result.first_difference
    assert first is not None and first.label == "TrainModel"
    assert "model bytes differ" in reproduce.first_detail(first)
    by_label = {t.label: t for t in result.tasks}
    assert by_label["SplitData"].result == "identical"
    evaluate = {o.name: o for o in by_label["EvaluateModel"].outputs}
    assert evaluate["predictions.parquet"].result == "different"
    assert "test-set predictions differ" in evaluate["predictions.parquet"].detail
    assert (tmp_path / "scratch/workspace/runs" / result.run_id / "manifest.json").exists()


def test_reproduce_refuses_unknown_names_a_busy_workdir_and_a_deleted_snapshot(tmp_path):
    config = csv_config(tmp_path, suites=False)
    code, report = run(config)
    assert code == 0
    cfg = load_config(config)
    with pytest.raises(NotFound, match="neither a run .* nor a version"):
        locate(cfg, "0123456789")
    with pytest.raises(NotFound, match="no run"):
        lineage.require_run(cfg.workspace, "2020")
    subject = locate(cfg, report["run_id"])
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "file").write_text("x")
    with pytest.raises(UsageError, match="not empty"):
        reproduce.reproduce(cfg, subject, workdir=str(busy))
    snapshot = tmp_path / "workspace" / subject.manifest["snapshot"]["path"]
    snapshot.unlink()
    with pytest.raises(StorageError, match="It was deleted"):
        reproduce.reproduce(cfg, subject)
    manifest = tmp_path / "workspace/runs" / report["run_id"] / "manifest.json"
    manifest.write_text(manifest.read_text()[:100])
    with pytest.raises(StorageError, match="corrupted"):
        locate(cfg, report["run_id"])


def test_status_and_lineage_commands_read_nothing_but_the_config(tmp_path, capsys):
    config = csv_config(tmp_path, suites=False)
    assert main(["status", "--config", str(config), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["to_run"] == 8 and not (tmp_path / "workspace").exists()
    assert main(["lineage", "abc", "--config", str(config)]) == 8
    assert "neither a run" in capsys.readouterr().err
    data = yaml.safe_load(config.read_text())
    assert data["workspace"] == "workspace"
    assert storage.list_dir(str(tmp_path / "registry")) == []
    assert production(tmp_path / "registry", "breast-cancer") is None


@pytest.mark.e2e
@pytest.mark.parametrize("command", [["lineage"], ["lineage", "--dot"], ["runs", "list"]])
def test_output_cut_short_by_its_reader_ends_quietly_with_exit_0(published, command):
    import subprocess

    from tests.conftest import MLCD

    config = str(published / "pipeline.yaml")
    spec = [the_version(published)] if command[0] == "lineage" else []
    argv = [MLCD, *command, *spec, "--config", config]
    # The reader is gone before mlcd writes anything (as `| head -0` would be).
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
