"""Real-looking tables, generated here (tests/tables.py), each run through the whole pipeline
with the six-line config a new user writes: text categoricals with blanks, ids, dates, NaNs,
text and yes/no labels with missing values, a 2% class, 70 columns, a regression target. Then
the published model scores raw rows, reproduces byte for byte, and bad columns fail early."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests import tables
from tests.conftest import ROOT, production, run_json, run_mlcd, versions
from tests.test_reproduce_e2e import assert_byte_identical, reproduce_in, version_dir
from tests.test_serving import Service

pytestmark = pytest.mark.e2e
NO_SUITES = (
    "validation: {data_integrity: {enabled: false}, train_test: {enabled: false}, "
    "model_evaluation: {enabled: false}}\n"
)

# What a model learnt from each table must clear (the tables have signal: tests/tables.py).
GOOD_ENOUGH = {
    "churn": ("roc_auc", 0.8),
    "passengers": ("accuracy", 0.6),
    "rare_fraud": ("recall", 0.5),
    "wide": ("roc_auc", 0.9),
    "house_prices": ("r2", 0.9),
    "survey": ("f1", 0.6),
}


def model_name(table: str) -> str:
    return table.replace("_", "-")


def publish(folder: Path, table: str) -> tuple[Path, dict[str, Any]]:
    folder.mkdir(parents=True, exist_ok=True)
    _, config = tables.write(folder, table)
    assert len(config.read_text().splitlines()) <= 8
    code, report, err = run_json(config)
    assert code == 0, err[-3000:]
    return config, report


def readme_example(which: int = 0) -> dict[str, Any]:
    """A YAML block of README.md's "Pointing it at your own data": the config (0), the
    overrides added to it (1)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Pointing it at your own data") :]
    blocks = section.split("```yaml\n")[1:]
    return dict(yaml.safe_load(blocks[which][: blocks[which].index("```")]))


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """README.md's own-data example, run as printed: config/churn.yaml on config/data/churn.csv
    (the churn table of tests/tables.py), copied so that .mlcd/ is beside it."""
    folder = tmp_path_factory.mktemp("churn")
    shutil.copytree(ROOT / "config" / "data", folder / "config" / "data")
    config = folder / "config" / "churn.yaml"
    shutil.copy(ROOT / "config" / "churn.yaml", config)
    assert yaml.safe_load(config.read_text()) == readme_example()
    code, report, err = run_json(config)
    assert code == 0, err[-3000:]
    return config, report


def site_of(config: Path) -> Path:
    """The folder of the churn example's registry and workspace."""
    return config.parent.parent / ".mlcd"


@pytest.mark.parametrize("table", ["passengers", "rare_fraud", "wide", "house_prices", "survey"])
def test_each_table_publishes_with_the_minimal_config_and_sensible_metrics(table, tmp_path):
    config, report = publish(tmp_path, table)
    check_published(tmp_path / "registry", table, report)


def test_churn_publishes_with_ids_dates_blanks_and_a_yes_no_target_with_gaps(churn):
    config, report = churn
    check_published(site_of(config) / "registry", "churn", report)
    assert report["dropped_missing_target"] == (tables.churn()["churned"].isna()).sum() > 0
    (train,) = (site_of(config) / "workspace" / "train").iterdir()
    trained = json.loads((train / "train.json").read_text())
    assert trained["preprocessing"] is True  # mlcd built it around the bare default model
    gates = json.loads((Path(report["gates"]["train_test"]["path"])).read_text())["gates"]
    dated = {g["check"]: g["result"] for g in gates if g["check"].startswith("Date")}
    assert dated and all(r in ("pass", "warn", "fail") for r in dated.values()), dated


def check_published(registry: Path, table: str, report: dict[str, Any]) -> None:
    name = model_name(table)
    (version,) = versions(registry, name)
    assert production(registry, name) == version
    metric, floor = GOOD_ENOUGH[table]
    assert report["metrics"][metric] >= floor, report["metrics"]
    if table in tables.ROLES:
        assert report["roles"] == tables.ROLES[table]
    assert all(role != "dropped" for role in report["roles"].values())
    evaluation = report["gates"]["model_evaluation"]["gates"]
    if tables.TABLES[table][1] == "classification":
        (every,) = [g for g in evaluation if g["kind"] == "every_class"]
        assert every["result"] == "pass"
    schema = json.loads((registry / name / "versions" / version / "schema.json").read_text())
    assert set(schema["columns"]) == set(schema["features"])


def score(folder: Path, name: str, rows: pd.DataFrame, out: str = "out.csv") -> Any:
    rows.to_csv(folder / "in.csv", index=False)
    return run_mlcd(
        "predict", name, "--input", str(folder / "in.csv"), "--output", str(folder / out),
        "--registry", str(folder / "registry"),
    )  # fmt: skip


def test_predict_takes_raw_rows_with_unseen_categories_extra_columns_and_missing_numbers(
    churn, tmp_path
):
    config, _ = churn
    shutil.copytree(site_of(config) / "registry", tmp_path / "registry")
    rows = tables.churn(n=20, seed=9).drop(columns=["churned"])
    rows.loc[0:4, "plan"] = "enterprise"  # a plan training never saw
    rows.loc[5, "region"] = "moon"
    rows.loc[6:7, "tenure"] = None  # an integer column with gaps
    rows["note"] = "exported by crm"  # a column the model does not take
    proc = score(tmp_path, "churn", rows)
    assert proc.returncode == 0, proc.stderr
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == 20 and set(out["prediction"]) <= {"yes", "no"}
    assert "note: ignored 2 column(s) the model does not take: 'customer_id', 'note'" in proc.stdout
    assert "scored as unknown categories: plan: 5, region: 1" in proc.stdout

    missing = rows.drop(columns=["plan"])
    proc = score(tmp_path, "churn", missing)
    assert proc.returncode != 0
    assert "missing column(s) 'plan'" in proc.stderr
    assert not (tmp_path / "out.csv").read_text() == ""  # the earlier output is left whole


def test_serve_answers_raw_rows_and_reports_unseen_categories_and_ignored_keys(churn, tmp_path):
    config, _ = churn
    shutil.copytree(site_of(config) / "registry", tmp_path / "registry")
    service = Service(tmp_path / "registry", tmp_path / "serve.log", model="churn")
    service_model = "churn"
    try:
        rows = tables.churn(n=4, seed=3).drop(columns=["churned"]).astype(object)
        rows = rows.where(rows.notna(), None)
        body = rows.to_dict(orient="records")
        body[0]["plan"] = "enterprise"
        body[1]["tenure"] = None
        body[2]["source"] = "web"
        status, answer = service.request(
            "POST", "/predict", {"rows": body}, {"Content-Type": "application/json"}
        )
        assert status == 200, answer
        assert answer["model"] == service_model and answer["n"] == 4
        assert answer["unseen_categories"] == {"plan": 1}
        assert any("'source'" in note for note in answer["notes"])
        del body[3]["plan"]
        status, answer = service.request("POST", "/predict", {"rows": body})
        assert status == 400 and "row 3: missing column(s) 'plan'" in json.dumps(answer)
    finally:
        service.stop()


def test_a_table_with_roles_and_preprocessing_reproduces_byte_identical(churn, tmp_path):
    config, report = churn
    reproduce_in(config, report["run_id"], tmp_path / "again")
    (copy,) = versions(tmp_path / "again" / "registry", "churn")
    assert_byte_identical(
        version_dir(site_of(config), "churn", report["published"]["version"]),
        version_dir(tmp_path / "again", "churn", copy),
    )


def with_config(folder: Path, table: str, extra: str) -> Path:
    _, config = tables.write(folder, table)
    config.write_text(config.read_text() + extra)
    return config


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "model:\n  estimator: sklearn.pipeline.Pipeline\n  params:\n    steps:\n"
            "      - [scale, {estimator: sklearn.preprocessing.StandardScaler}]\n"
            "      - [classify, {estimator: sklearn.linear_model.LogisticRegression}]\n",
            "column 'signup_date' holds text ('2023-10-31') that model.estimator",
        ),
        ("columns: {plan: numeric}\n", "columns.plan is numeric, but the column holds text"),
        ("columns: {plna: categorical}\n", "columns: 'plna' not in the data"),
    ],
    ids=["own-pipeline-on-text", "override-does-not-fit", "override-of-no-column"],
)
def test_a_column_nothing_can_take_fails_at_extraction_in_one_line(extra, expected, tmp_path):
    config = with_config(tmp_path, "churn", extra)
    code, report, err = run_json(config)
    assert code == 4, err[-2000:]
    (line,) = [x for x in err.splitlines() if x.startswith("mlcd: data error: ExtractData: ")]
    assert expected in line
    assert "Traceback" not in err
    assert report["ran"] == [] and not (tmp_path / "registry").exists()
    assert not (tmp_path / "ws" / "train").exists()


def test_an_unknown_role_is_a_config_error(tmp_path):
    config = with_config(tmp_path, "churn", "columns: {plan: category}\n")
    code, _, err = run_json(config)
    assert code == 2
    assert "columns.plan: unknown role 'category'; allowed: numeric, categorical" in err


def test_a_classifier_that_never_predicts_the_rare_class_is_not_published(tmp_path):
    """The 2%-positive table with a model that always answers the majority class: accuracy
    0.98, recall 0. The default every_class gate blocks it."""
    config = with_config(  # the gate is mlcd's own: the deepchecks suites are not needed
        tmp_path, "rare_fraud", "model: {estimator: sklearn.dummy.DummyClassifier}\n" + NO_SUITES
    )
    code, report, err = run_json(config)
    assert code == 3, err[-2000:]
    assert report["metrics"]["accuracy"] >= 0.97 and report["metrics"]["recall"] == 0
    gate = report["gates"]["model_evaluation"]
    (every,) = [g for g in gate["gates"] if g["kind"] == "every_class"]
    assert every["result"] == "fail" and "never predicts 1" in every["details"]
    assert "predicts every class of the test set" in " ".join(gate["blocking_failures"])
    assert versions(tmp_path / "registry", "rare-fraud") == []


def test_a_retrain_on_changed_data_reports_the_contract_changes_against_production(churn, tmp_path):
    config, report = churn
    shutil.copytree(config.parent.parent, tmp_path / "site")
    config = tmp_path / "site" / "config" / "churn.yaml"
    frame = pd.read_csv(config.parent / "data" / "churn.csv")
    frame.loc[frame.index[:40], "plan"] = "enterprise"  # a new plan is sold
    frame.loc[frame.index[::5], "tenure"] = None  # and an export loses tenures
    frame.to_csv(config.parent / "data" / "churn.csv", index=False)
    config.write_text(config.read_text() + NO_SUITES)  # about the contract, not the suites
    code, again, err = run_json(config)
    assert code in (0, 5), err[-2000:]
    contract = again["contract"]
    assert contract["version"] == report["published"]["version"]
    assert "plan: 1 new category ('enterprise')" in contract["changes"]
    assert "tenure: null rate 0% -> 20%" in contract["changes"]


def test_the_readmes_overrides_load_and_fit_on_the_example_as_printed(churn, tmp_path):
    """README's overrides block, added to its config: the config loads, the roles it sets hold
    on the example's data and its model is built from them and fits (the run that follows is
    the one the churn fixture makes, with another estimator)."""
    from mlcd import columns, data, training
    from mlcd.config import load_config

    config, _ = churn
    shutil.copytree(config.parent, tmp_path / "config")
    config = tmp_path / "config" / "churn.yaml"
    overrides = readme_example(1)
    config.write_text(yaml.safe_dump({**readme_example(0), **overrides}))
    cfg = load_config(config)
    assert cfg.model is not None and cfg.model.estimator == overrides["model"]["estimator"]
    snap = data.make_snapshot(data.load_source(cfg.source), cfg)
    roles = columns.infer_roles(snap, cfg.target, cfg.columns)
    assert roles["region"]["role"] == "dropped" and roles["customer_id"]["role"] == "id"
    training.check_fits(cfg.model, roles, snap, cfg.target)
    x = snap[columns.features(roles)]
    model = training.fit(cfg.model, x, snap[cfg.target], roles)
    assert "region" not in x.columns and (model.predict(x) == snap[cfg.target]).mean() > 0.7


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_failed_data_gate_stops_the_run_before_any_model_is_fitted(workers, tmp_path):
    """ValidateData runs beside the split, not before it: TrainModel checks its gate. The churn
    table with 150 customers exported twice, with the other answer: deepchecks' ConflictingLabels
    finds about 10% of the rows ambiguous, above the blocking 5%. One worker judges the data
    first and starts nothing after the failed gate; two workers may split meanwhile, but never
    fit."""
    csv, config = tables.write(tmp_path, "churn")
    frame = pd.read_csv(csv)
    twice = frame.iloc[:150].copy()
    twice["churned"] = twice["churned"].map({"yes": "no", "no": "yes"})
    twice["customer_id"] = [f"again-{i}" for i in range(150)]  # an id is not a feature
    pd.concat([frame, twice], ignore_index=True).to_csv(csv, index=False)
    config.write_text(config.read_text() + "validation: {train_test: {enabled: false}}\n")
    code, report, err = run_json(config, "--workers", workers)
    assert code == 3, err[-2000:]
    assert "ConflictingLabels" in err.splitlines()[-1]
    assert report["failed"] == ["ValidateData"]
    assert not {"TrainModel", "EvaluateModel", "PublishModel"} & set(report["ran"])
    assert not (tmp_path / "ws" / "train").exists()
    assert versions(tmp_path / "registry", "churn") == []
    if workers == "1":
        assert not {"SplitData", "ValidateSplit"} & set(report["ran"]), report["ran"]
