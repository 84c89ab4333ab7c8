"""The registry and its commands: versions in creation order, the production alias, the
append-only promotion log, promotion and rollback (locked, verified, forced), scoring a file,
and what each kind of damage does (a clear error, and a registry that stays consistent).

The first half builds small registries in-process with real scikit-learn models (fast); the
second runs the real pipeline once and drives ``mlcd`` as a real process (marked e2e).
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from mlcd import registry, storage
from mlcd.errors import AlreadyRunning, NotFound, PromotionRefused, StorageError, UsageError
from mlcd.training import dump
from tests.conftest import (
    evil_pickle,
    production,
    run_json,
    run_mlcd,
    versions,
    write_config,
)

NAME = "iris"
e2e = pytest.mark.e2e


@functools.cache
def iris() -> tuple[pd.DataFrame, pd.Series]:
    frame = load_iris(as_frame=True).frame
    return frame.drop(columns=["target"]), frame["target"]


def tree(depth: int) -> DecisionTreeClassifier:
    return DecisionTreeClassifier(max_depth=depth, random_state=0).fit(*iris())


@functools.cache
def fitted(depth: int) -> tuple[bytes, float]:
    x, y = iris()
    model = tree(depth)
    return dump(model), float((model.predict(x) == y).mean())


def add_version(root: Path, version: str, *, depth: int = 3, passed: bool = True) -> None:
    """A version as PublishModel writes it, with a real fitted model."""
    x, _ = iris()
    model_bytes, accuracy = fitted(depth)
    verdict = {
        "passed": passed,
        "stages": {
            "model_evaluation": {
                "stage": "model_evaluation",
                "passed": passed,
                "blocking_failures": [] if passed else ["accuracy >= 0.99"],
                "gates": [{"kind": "champion", "metric": "accuracy"}],
            }
        },
    }
    files = {
        "model.joblib": model_bytes,
        "metrics.json": storage.dumps_json({"task": "classification", "accuracy": accuracy}),
        "verdict.json": storage.dumps_json(verdict),
        "schema.json": storage.dumps_json(
            {
                "features": list(x.columns),
                "dtypes": {c: str(t) for c, t in x.dtypes.items()},
                "target": "target",
                "task": "classification",
            }
        ),
        "input_example.json": registry.input_example(x, list(x.columns)),
    }
    manifest = {"model": NAME, "version": version, "metrics": {"accuracy": accuracy}}
    assert registry.publish_version(str(root), NAME, version, files, manifest)


def log_lines(root: Path) -> list[str]:
    return (root / NAME / "promotions.jsonl").read_text().splitlines()


def snapshot(root: Path) -> tuple[bytes, bytes]:
    """The pointer and the log, byte for byte."""
    model = root / NAME
    return (model / "production.json").read_bytes(), (model / "promotions.jsonl").read_bytes()


def assert_chain_consistent(root: Path) -> None:
    """Each record's 'previous' is the record before it, and the pointer is the last record."""
    records = registry.promotions(str(root), NAME)
    for before, after in zip(records, records[1:], strict=False):
        assert after["previous"] == before["version"], (before, after)
    pointer = registry.production(str(root), NAME)
    assert pointer is not None and pointer["version"] == records[-1]["version"]
    assert pointer["promotion_id"] == records[-1]["id"]


@pytest.fixture(scope="module")
def three_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("three")
    for i, version in enumerate(("v1", "v2", "v3")):
        add_version(root, version, depth=i + 1)
        registry.set_production(str(root), NAME, version, actor="run", reason=f"run {i}", extra={})
    return root


@pytest.fixture
def three(three_built: Path, tmp_path: Path) -> Path:
    """v1, v2, v3 published; each promoted by a run in turn (a fresh copy per test)."""
    root = tmp_path / "registry"
    shutil.copytree(three_built, root)
    return root


# --- versions, prefixes, unknown names -------------------------------------------------------


def test_versions_are_listed_in_creation_order_with_time_and_production(three: Path):
    infos = registry.list_versions(str(three), NAME)
    assert [i["version"] for i in infos] == ["v1", "v2", "v3"]
    assert [i["production"] for i in infos] == [False, False, True]
    stamps = [i["created_at"] for i in infos]
    assert stamps == sorted(stamps) and all(s.endswith("+00:00") for s in stamps)
    assert infos[0]["headline_metric"] == "accuracy" and infos[0]["gates"]["passed"]


def test_a_unique_prefix_names_a_version_and_an_ambiguous_one_is_refused(tmp_path: Path):
    for version in ("ab12", "ab34", "cd56"):
        add_version(tmp_path, version)
    assert registry.resolve_version(str(tmp_path), NAME, "c") == "cd56"
    assert registry.resolve_version(str(tmp_path), NAME, "ab3") == "ab34"
    with pytest.raises(UsageError, match="ambiguous.*ab12, ab34"):
        registry.resolve_version(str(tmp_path), NAME, "ab")
    with pytest.raises(NotFound, match="no version 'ef'"):
        registry.resolve_version(str(tmp_path), NAME, "ef")
    with pytest.raises(UsageError, match="not valid"):
        registry.resolve_version(str(tmp_path), NAME, "../v1")


def test_an_unknown_model_names_the_models_there_are(three: Path):
    with pytest.raises(NotFound, match="no model 'irsi'.*it has: iris"):
        registry.require_model(str(three), "irsi")
    with pytest.raises(NotFound, match="has no models"):
        registry.require_model(str(three / "elsewhere"), "iris")


# --- promotion, force, rollback --------------------------------------------------------------


def test_promotion_moves_the_pointer_and_logs_who_why_gates_and_metric_deltas(three: Path):
    root = str(three)
    record = registry.promote(root, NAME, "v1", reason="v3 misbehaves", user="alice")
    assert record is not None
    pointer = registry.production(root, NAME)
    assert pointer is not None and pointer["version"] == "v1"
    assert (record["previous"], record["action"], record["actor"], record["user"]) == (
        "v3",
        "promote",
        "person",
        "alice",
    )
    assert record["reason"] == "v3 misbehaves" and record["forced"] is False
    assert record["gates_passed"] is True
    assert record["gates"]["model_evaluation"]["passed"] is True
    v1 = registry.read_manifest(root, NAME, "v1")["metrics"]["accuracy"]
    v3 = registry.read_manifest(root, NAME, "v3")["metrics"]["accuracy"]
    delta = record["metric_deltas"]["accuracy"]
    assert (delta["from"], delta["to"]) == (v3, v1)
    assert delta["delta"] == pytest.approx(v1 - v3)
    assert (
        record["model_sha256"]
        == hashlib.sha256((three / NAME / "versions/v1/model.joblib").read_bytes()).hexdigest()
    )
    assert json.loads(log_lines(three)[-1]) == record
    assert_chain_consistent(three)


def test_promoting_the_version_in_production_changes_nothing(three: Path):
    before = snapshot(three)
    assert registry.promote(str(three), NAME, "v3", reason="again") is None
    assert snapshot(three) == before


def test_a_reason_is_required(three: Path):
    before = snapshot(three)
    with pytest.raises(UsageError, match="needs a reason"):
        registry.promote(str(three), NAME, "v1", reason="  ")
    assert snapshot(three) == before


def test_a_version_whose_gates_failed_needs_force_and_is_logged_as_forced(three: Path):
    add_version(three, "v4", passed=False)
    before = snapshot(three)
    with pytest.raises(PromotionRefused, match="did not pass its gates.*accuracy >= 0.99.*--force"):
        registry.promote(str(three), NAME, "v4", reason="try it")
    assert snapshot(three) == before
    record = registry.promote(str(three), NAME, "v4", reason="try it", force=True)
    assert record is not None and record["forced"] is True and record["gates_passed"] is False
    # --force on a version that passed is not a forced promotion.
    record = registry.promote(str(three), NAME, "v1", reason="back", force=True)
    assert record is not None and record["forced"] is False


def test_successive_rollbacks_walk_back_through_production_history(three: Path):
    root = str(three)
    assert registry.rollback(root, NAME, reason="v3 is bad")["version"] == "v2"
    assert registry.rollback(root, NAME, reason="v2 too")["version"] == "v1"
    with pytest.raises(NotFound, match="no earlier version to roll back to"):
        registry.rollback(root, NAME, reason="and v1?")
    # A rollback to a named version, and the log says who did what.
    record = registry.rollback(root, NAME, to="v3", reason="it was fine", user="bob")
    assert (record["version"], record["previous"], record["action"]) == ("v3", "v1", "rollback")
    assert record["actor"] == "person" and record["user"] == "bob"
    assert_chain_consistent(three)
    with pytest.raises(UsageError, match="already in production"):
        registry.rollback(root, NAME, to="v3", reason="again")


def test_rollback_after_a_new_publish_returns_to_the_version_it_replaced(three: Path):
    root = str(three)
    registry.rollback(root, NAME, reason="v3 is bad")  # v2
    add_version(three, "v4")
    registry.set_production(root, NAME, "v4", actor="run", reason="run", extra={})
    assert registry.rollback_target(root, NAME) == "v2"


def test_rollback_with_nothing_in_production_is_not_found(tmp_path: Path):
    add_version(tmp_path, "v1")
    with pytest.raises(NotFound, match="nothing to roll back"):
        registry.rollback(str(tmp_path), NAME, reason="x")


# --- the lock --------------------------------------------------------------------------------


def _hold_lock(root: Path) -> Any:
    return storage.exclusive_lock(
        registry.lock_path(str(root), NAME), {"pid": 4242, "doing": "a test"}, wait=0
    )


def test_a_promotion_while_another_holds_the_lock_fails_clearly_and_changes_nothing(three: Path):
    before = snapshot(three)
    with _hold_lock(three):
        with pytest.raises(AlreadyRunning) as err:
            registry.promote(str(three), NAME, "v1", reason="r", wait=0.2)
    assert "in progress" in str(err.value) and "pid 4242" in str(err.value)
    assert "--wait" in str(err.value)
    assert snapshot(three) == before


def test_a_promotion_waits_for_the_lock_and_then_goes_ahead(three: Path):
    done = threading.Event()
    results: list[Any] = []

    def promote() -> None:
        results.append(registry.promote(str(three), NAME, "v1", reason="r", wait=30))
        done.set()

    with _hold_lock(three):
        thread = threading.Thread(target=promote)
        thread.start()
        assert not done.wait(0.5), "the promotion went ahead while the lock was held"
    thread.join(timeout=30)
    assert done.is_set() and results[0]["version"] == "v1"
    assert_chain_consistent(three)


def test_concurrent_promotions_keep_the_log_a_chain_and_the_pointer_its_last_link(three: Path):
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(5):
                registry.promote(
                    str(three), NAME, ["v1", "v2", "v3"][(i + j) % 3], reason=f"{i}/{j}", wait=30
                )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert len(log_lines(three)) >= 4
    assert_chain_consistent(three)


# --- damage: pointer, log, artifacts ---------------------------------------------------------


def test_a_change_whose_log_line_was_lost_is_logged_at_the_next_change(three: Path):
    root = str(three)
    registry.promote(root, NAME, "v1", reason="r")
    lines = log_lines(three)
    (three / NAME / "promotions.jsonl").write_text("\n".join(lines[:-1]) + "\n")  # killed
    registry.promote(root, NAME, "v2", reason="next")
    records = registry.promotions(root, NAME)
    assert records[-2]["version"] == "v1" and records[-2]["recovered"] is True
    assert records[-1]["previous"] == "v1"
    assert_chain_consistent(three)


def test_a_torn_last_log_line_is_reported_and_never_glued_to_the_next_record(three: Path):
    root = str(three)
    with (three / NAME / "promotions.jsonl").open("ab") as handle:
        handle.write(b'{"version": "v1", "ac')  # a writer killed mid-line
    records, problems = registry.read_log(root, NAME)
    assert len(records) == 3 and problems == ["line 4 is not valid JSON"]
    registry.promote(root, NAME, "v1", reason="after the crash")
    records, problems = registry.read_log(root, NAME)
    assert [r["version"] for r in records] == ["v1", "v2", "v3", "v1"]
    assert problems == ["line 4 is not valid JSON"]  # kept: the log is only appended to
    assert log_lines(three)[3] == '{"version": "v1", "ac'


def test_a_corrupted_pointer_is_an_error_until_a_promotion_repairs_it(three: Path):
    root = str(three)
    (three / NAME / "production.json").write_text('{"version": ')
    with pytest.raises(StorageError, match="production.json.*corrupted.*mlcd models promote"):
        registry.production_version(root, NAME)
    record = registry.promote(root, NAME, "v1", reason="repair")
    assert record is not None and record["previous"] == "v3"  # the log's last word
    assert "corrupted" in record["replaced_corrupted_pointer"]
    assert registry.production_version(root, NAME) == "v1"
    assert_chain_consistent(three)


def test_a_pointer_to_a_missing_version_is_an_error(three: Path):
    shutil.rmtree(three / NAME / "versions" / "v3")
    with pytest.raises(StorageError, match="names version 'v3', which is not in the registry"):
        registry.production_version(str(three), NAME)


def test_a_tampered_model_is_never_unpickled_nor_promoted(three: Path, tmp_path: Path):
    marker = tmp_path / "pwned"
    model = three / NAME / "versions" / "v1" / "model.joblib"
    model.write_bytes(evil_pickle(marker))
    before = snapshot(three)
    with pytest.raises(StorageError, match="does not match its recorded sha256"):
        registry.load_version(str(three), NAME, "v1")
    with pytest.raises(StorageError, match="v1 of model 'iris' is damaged.*model.joblib"):
        registry.promote(str(three), NAME, "v1", reason="r", force=True)
    assert registry.verify_version(str(three), NAME, "v1")[0].startswith("model.joblib does not")
    assert snapshot(three) == before
    assert not marker.exists()


def test_a_model_swapped_together_with_its_manifest_is_refused_for_production(
    three: Path, tmp_path: Path
):
    """The pointer keeps the model digest it was promoted with: rewriting the manifest to
    match a new model file does not make production load it."""
    marker = tmp_path / "pwned"
    folder = three / NAME / "versions" / "v3"
    evil = evil_pickle(marker)
    (folder / "model.joblib").write_bytes(evil)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["artifacts"]["model.joblib"]["sha256"] = hashlib.sha256(evil).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    pointer = registry.production(str(three), NAME)
    assert pointer is not None
    with pytest.raises(StorageError, match="changed after its promotion"):
        registry.load_version(str(three), NAME, "v3", expected_sha256=pointer["model_sha256"])
    assert not marker.exists()


def test_a_verified_version_loads_with_its_schema_and_example(three: Path):
    loaded = registry.load_version(str(three), NAME, "v2")
    x, _ = iris()
    assert loaded.schema.features == tuple(x.columns)
    assert loaded.example is not None and len(loaded.example) == 5
    assert loaded.model.get_params()["max_depth"] == 2
    assert list(loaded.model.predict(x)) == list(tree(2).predict(x))


# --- end to end: the real pipeline and the mlcd command --------------------------------------

MODEL = "breast-cancer"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default pipeline run twice (200, then 50 trees): two versions, the second in
    production. Tests copy it before changing anything."""
    folder = tmp_path_factory.mktemp("registry")
    config = write_config(folder)
    code, _, err = run_json(config)
    assert code == 0, err
    write_config(folder, model={"params": {"n_estimators": 50}})
    code, _, err = run_json(config, date="2026-01-16")
    assert code == 0, err
    assert len(versions(folder / "registry", MODEL)) == 2
    return folder


@pytest.fixture
def site(built: Path, tmp_path: Path) -> Path:
    target = tmp_path / "site"
    shutil.copytree(built, target)
    return target


def mlcd_json(*args: str) -> Any:
    proc = run_mlcd(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def one_line_error(proc: Any, code: int, *fragments: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("mlcd: ")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def order(site: Path) -> tuple[str, str]:
    """(first, second) version ids, in the order the runs published them."""
    infos = registry.list_versions(str(site / "registry"), MODEL)
    return infos[0]["version"], infos[1]["version"]


@e2e
def test_list_shows_versions_in_creation_order_and_production_by_config(site: Path):
    first, second = order(site)
    assert production(site / "registry", MODEL) == second
    listing = mlcd_json("models", "list", MODEL, "--config", str(site / "pipeline.yaml"))
    assert [v["version"] for v in listing["versions"]] == [first, second]
    assert [v["production"] for v in listing["versions"]] == [False, True]
    created = [v["created_at"] for v in listing["versions"]]
    assert created == sorted(created)
    text = run_mlcd("models", "list", MODEL, "--registry", str(site / "registry")).stdout
    assert f"* {second}" in text and "was in production" in text and "F1" in text
    models = mlcd_json("models", "list", "--registry", str(site / "registry"))
    assert models == [
        {
            "model": MODEL,
            "versions": 2,
            "production": second,
            "since": listing["production"]["updated_at"],
            "by": "run",
            "problem": None,
        }
    ]


@e2e
def test_show_puts_metrics_beside_production_and_verifies_every_artifact(site: Path):
    first, second = order(site)
    reg = str(site / "registry")
    shown = mlcd_json("models", "show", f"{MODEL}:{first[:6]}", "--registry", reg)
    assert shown["version"] == first and shown["production_version"] == second
    assert shown["integrity"] == {"ok": True, "problems": []}
    ours = json.loads((site / "registry" / MODEL / "versions" / first / "metrics.json").read_text())
    theirs = json.loads(
        (site / "registry" / MODEL / "versions" / second / "metrics.json").read_text()
    )
    rows = {c["metric"]: c for c in shown["comparison"]}
    assert set(rows) >= {"accuracy", "f1", "roc_auc", "log_loss"}
    for metric, row in rows.items():
        assert (row["version"], row["production"]) == (ours[metric], theirs[metric])
        assert row["delta"] == pytest.approx(ours[metric] - theirs[metric])
    assert shown["schema"]["input_example"].endswith("input_example.json")
    text = run_mlcd("models", "show", MODEL, "--registry", reg).stdout  # production by default
    assert f"version {second} (in production)" in text and "integrity   ok" in text


@e2e
def test_promote_rollback_and_history_through_the_command(site: Path, tmp_path: Path):
    first, second = order(site)
    reg = str(site / "registry")
    proc = run_mlcd("models", "promote", MODEL, first[:5], "--registry", reg, "--reason", "why")
    assert proc.returncode == 0, proc.stderr
    assert f"production is now version {first} (was {second})" in proc.stdout
    assert production(site / "registry", MODEL) == first
    record = mlcd_json("models", "rollback", MODEL, "--registry", reg, "--reason", "undo")
    assert (record["version"], record["previous"], record["action"]) == (second, first, "rollback")
    assert record["actor"] == "person" and record["user"]
    plot = tmp_path / "history.png"
    history = run_mlcd("models", "history", MODEL, "--registry", reg, "--plot", str(plot))
    assert history.returncode == 0, history.stderr
    rows = [line.split() for line in history.stdout.splitlines() if line[:4].isdigit()]
    assert [(r[2], r[3]) for r in rows] == [
        ("publish", first),
        ("publish", second),
        ("promote", first),
        ("rollback", second),
    ]
    data = plot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000
    log = mlcd_json("models", "history", MODEL, "--registry", reg)
    assert log["metric"] == "f1" and [r["version"] for r in log["records"]] == [
        first,
        second,
        first,
        second,
    ]


@e2e
def test_predict_scores_a_file_as_the_pipeline_did(site: Path, tmp_path: Path):
    """The production model's predictions for the test set equal the ones the pipeline
    recorded in predictions.parquet; --keep carries an id through; --version picks another."""
    first, second = order(site)
    reg = str(site / "registry")
    folder = site / "registry" / MODEL / "versions"
    recorded = pd.read_parquet(folder / second / "predictions.parquet")
    (split,) = (site / "workspace" / "split").iterdir()
    snapshot = json.loads((split / "split.json").read_text())["snapshot_sha256"]
    rows = pd.read_parquet(site / "workspace" / "snapshots" / f"{snapshot}.parquet")
    tested = pd.read_parquet(split / "split.parquet")["test"].to_numpy()
    test = rows[tested].drop(columns=["target"])
    frame = test.reset_index().rename(columns={"index": "row"})
    frame.to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "out.csv"
    proc = run_mlcd(
        "predict", MODEL, "--input", str(tmp_path / "in.csv"), "--output", str(out),
        "--registry", reg, "--keep", "row",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"version {second} (production)" in proc.stdout
    preds = pd.read_csv(out).set_index("row")
    assert list(preds.columns) == ["prediction", "proba_0", "proba_1"]
    assert preds["prediction"].tolist() == recorded.loc[preds.index, "predicted"].tolist()
    assert preds["proba_1"].to_numpy() == pytest.approx(recorded.loc[preds.index, "proba_1"])

    older = tmp_path / "older.parquet"
    proc = run_mlcd(
        "predict", MODEL, "--input", str(tmp_path / "in.csv"), "--output", str(older),
        "--registry", reg, "--keep", "row", "--version", first[:4],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    theirs = pd.read_parquet(folder / first / "predictions.parquet")
    assert pd.read_parquet(older)["proba_1"].to_numpy() == pytest.approx(
        theirs.loc[preds.index, "proba_1"].to_numpy()
    )


@e2e
def test_predict_refuses_input_that_does_not_match_the_schema(site: Path, tmp_path: Path):
    reg = str(site / "registry")
    example = json.loads(
        next((site / "registry" / MODEL / "versions").glob("*/input_example.json")).read_text()
    )
    frame = pd.DataFrame(example["rows"])
    bad = frame.drop(columns=["mean radius"]).assign(patient=range(len(frame)))
    bad["mean area"] = bad["mean area"].astype(object)
    bad.loc[2, "mean area"] = "large"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    out = tmp_path / "out.csv"
    proc = run_mlcd(
        "predict", MODEL, "--input", str(tmp_path / "bad.csv"), "--output", str(out),
        "--registry", reg,
    )  # fmt: skip
    one_line_error(
        proc,
        4,
        "missing column(s) 'mean radius'",
        "extra column(s) 'patient'",
        "--keep COLUMN",
    )
    assert not out.exists()
    frame.to_csv(tmp_path / "typed.csv", index=False)
    frame["mean area"] = frame["mean area"].astype(object)
    frame.loc[2, "mean area"] = "large"
    frame.to_csv(tmp_path / "typed.csv", index=False)
    proc = run_mlcd(
        "predict", MODEL, "--input", str(tmp_path / "typed.csv"), "--output", str(out),
        "--registry", reg,
    )  # fmt: skip
    one_line_error(proc, 4, "column 'mean area' expects numbers (float64) but row 2 has 'large'")
    assert not out.exists()


def _damage_pointer(site: Path) -> None:
    (site / "registry" / MODEL / "production.json").write_text("{not json")


def _damage_model(site: Path) -> None:
    folder = site / "registry" / MODEL / "versions"
    for model in folder.glob("*/model.joblib"):
        model.write_bytes(evil_pickle(site / "pwned"))


def _damage_log(site: Path) -> None:
    with (site / "registry" / MODEL / "promotions.jsonl").open("a") as handle:
        handle.write("{this is not a record\n")


BAD_INPUT = [
    (
        "unknown model",
        None,
        ["models", "show", "breast-cancre"],
        8,
        ["no model 'breast-cancre'", "it has: breast-cancer"],
    ),
    (
        "unknown version",
        None,
        ["models", "show", f"{MODEL}:ffff"],
        8,
        ["no version 'ffff'", "mlcd models list"],
    ),
    (
        "promote a missing version",
        None,
        ["models", "promote", MODEL, "0000", "--reason", "r"],
        8,
        ["no version '0000'"],
    ),
    ("promote without a reason", None, ["models", "promote", MODEL, "{first}"], 2, ["--reason"]),
    (
        "predict an unknown version",
        None,
        ["predict", MODEL, "--version", "zz", "--input", "x.csv", "--output", "y.csv"],
        8,
        ["no version 'zz'"],
    ),
    (
        "corrupted pointer: predict",
        _damage_pointer,
        ["predict", MODEL, "--input", "x.csv", "--output", "y.csv"],
        7,
        ["production.json", "corrupted", "mlcd models promote"],
    ),
    ("corrupted pointer: list", _damage_pointer, ["models", "list", MODEL], 7, ["corrupted"]),
    (
        "tampered artifact: promote",
        _damage_model,
        ["models", "promote", MODEL, "{first}", "--reason", "r", "--force"],
        7,
        [
            "is damaged",
            "model.joblib does not match its recorded sha256",
            "production is unchanged",
        ],
    ),
    (
        "tampered artifact: predict",
        _damage_model,
        ["predict", MODEL, "--input", "x.csv", "--output", "y.csv"],
        7,
        ["does not match its recorded sha256", "refuses"],
    ),
    ("tampered artifact: show", _damage_model, ["models", "show", MODEL], 7, ["is damaged"]),
    (
        "corrupted log line: history",
        _damage_log,
        ["models", "history", MODEL],
        7,
        ["line 3 is not valid JSON", "production is unaffected", "by hand"],
    ),
]


@e2e
@pytest.mark.parametrize(
    ("case", "damage", "command", "code", "fragments"),
    [pytest.param(*case, id=case[0]) for case in BAD_INPUT],
)
def test_bad_input_is_one_clear_error_and_leaves_the_registry_as_it_was(
    site: Path, case: str, damage: Any, command: list[str], code: int, fragments: list[str]
):
    first, _ = order(site)
    if damage is not None:
        damage(site)
    model = site / "registry" / MODEL
    before = {p: p.read_bytes() for p in model.rglob("*") if p.is_file() and p.name != ".lock"}
    args = [a.replace("{first}", first) for a in command]
    proc = run_mlcd(*args, "--registry", str(site / "registry"), cwd=site)
    one_line_error(proc, code, *fragments)
    after = {p: p.read_bytes() for p in model.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before
    assert not (site / "pwned").exists()
    assert not (site / "y.csv").exists()


@e2e
def test_the_registry_recovers_from_a_corrupted_pointer_and_log_line_by_promotion(site: Path):
    first, second = order(site)
    reg = str(site / "registry")
    _damage_pointer(site)
    _damage_log(site)
    proc = run_mlcd("models", "promote", MODEL, first, "--registry", reg, "--reason", "repair")
    assert proc.returncode == 0, proc.stderr
    assert "repaired" in proc.stdout and "line 3 is not valid JSON" in proc.stderr
    assert production(site / "registry", MODEL) == first
    records = registry.promotions(reg, MODEL)
    assert records[-1]["previous"] == second and records[-1]["replaced_corrupted_pointer"]


@e2e
def test_a_promotion_while_the_registry_is_locked_exits_6_and_changes_nothing(site: Path):
    first, _ = order(site)
    reg = str(site / "registry")
    model = site / "registry" / MODEL
    before = (model / "production.json").read_bytes(), (model / "promotions.jsonl").read_bytes()
    holder = {"pid": 999, "doing": "promote by a colleague"}
    with storage.exclusive_lock(registry.lock_path(reg, MODEL), holder, wait=0):
        proc = run_mlcd(
            "models", "promote", MODEL, first, "--registry", reg, "--reason", "r", "--wait", "0.3"
        )
    one_line_error(proc, 6, "in progress", "promote by a colleague", "--wait")
    assert (
        (model / "production.json").read_bytes(),
        (model / "promotions.jsonl").read_bytes(),
    ) == before


@e2e
def test_a_gate_failed_version_needs_force_through_the_command(site: Path):
    """A version published with a failed verdict (by another tool): refused with exit 3, then
    promoted with --force and logged as forced."""
    first, second = order(site)
    reg = str(site / "registry")
    folder = site / "registry" / MODEL / "versions" / first
    files = {
        str(p.relative_to(folder)): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }
    verdict = json.loads(files["verdict.json"])
    verdict["passed"] = False
    verdict["stages"]["model_evaluation"]["passed"] = False
    verdict["stages"]["model_evaluation"]["blocking_failures"] = ["accuracy >= 0.99"]
    files["verdict.json"] = storage.dumps_json(verdict)
    registry.publish_version(reg, MODEL, "feedc0de00000000", files, {"model": MODEL})
    proc = run_mlcd("models", "promote", MODEL, "feedc0de", "--registry", reg, "--reason", "r")
    one_line_error(proc, 3, "did not pass its gates", "accuracy >= 0.99", "--force")
    assert production(site / "registry", MODEL) == second
    record = mlcd_json(
        "models", "promote", MODEL, "feedc0de", "--registry", reg, "--reason", "hotfix", "--force"
    )
    assert record["forced"] is True and record["gates_passed"] is False
    history = run_mlcd("models", "history", MODEL, "--registry", reg).stdout
    assert "promote (forced)" in history
