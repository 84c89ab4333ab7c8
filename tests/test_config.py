"""mlcd.config: the shipped configs load, paths resolve against the file, and every bad config
is one ConfigError that names the key and what is allowed."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlcd.config import load_config
from mlcd.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "config"
BASE: dict[str, Any] = yaml.safe_load((CONFIGS / "pipeline.yaml").read_text())


def write(folder: Path, data: Any, name: str = "pipeline.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def base() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def config_error(tmp_path: Path, data: Any) -> str:
    """Load ``data`` as a config file and return the ConfigError's message."""
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message, "the message should name the config file"
    return message


# --- the shipped configs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "name", "task"),
    [
        ("pipeline.yaml", "breast-cancer", "classification"),
        ("wine.yaml", "wine", "classification"),
        ("diabetes.yaml", "diabetes", "regression"),
    ],
)
def test_shipped_config_loads_with_paths_resolved_beside_the_config_folder(file, name, task):
    cfg = load_config(CONFIGS / file)
    assert (cfg.name, cfg.task) == (name, task)
    assert cfg.workspace == os.path.normpath(CONFIGS.parent / ".mlcd" / "workspace")
    assert cfg.publish == os.path.normpath(CONFIGS.parent / ".mlcd" / "registry")


def test_relative_paths_are_resolved_against_the_config_folder_not_the_cwd(tmp_path, monkeypatch):
    data = base()
    data["source"] = {"path": "data/rows.csv"}
    data["workspace"] = "work"
    data["publish"] = "../published"
    path = write(tmp_path / "configs", data)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    cfg = load_config(os.path.relpath(path, elsewhere))

    assert cfg.source.path == str(tmp_path / "configs" / "data" / "rows.csv")
    assert cfg.source.format == "csv"
    assert cfg.workspace == str(tmp_path / "configs" / "work")
    assert cfg.publish == str(tmp_path / "published")


def test_absolute_and_uri_locations_are_kept_as_given(tmp_path):
    data = base()
    data["workspace"] = str(tmp_path / "abs-work")
    data["publish"] = "s3://bucket/registry"
    cfg = load_config(write(tmp_path, data))
    assert cfg.workspace == str(tmp_path / "abs-work")
    assert cfg.publish == "s3://bucket/registry"


@pytest.mark.parametrize(
    ("suffix", "fmt"), [(".csv", "csv"), (".parquet", "parquet"), (".pq", "parquet")]
)
def test_source_format_follows_the_file_suffix(tmp_path, suffix, fmt):
    data = base()
    data["source"] = {"path": f"rows{suffix}"}
    assert load_config(write(tmp_path, data)).source.format == fmt


def test_explicit_source_format_allows_any_suffix(tmp_path):
    data = base()
    data["source"] = {"path": "rows.txt", "format": "csv"}
    assert load_config(write(tmp_path, data)).source.format == "csv"


def test_editing_a_loaded_config_file_is_seen_by_the_next_load(tmp_path):
    data = base()
    path = write(tmp_path, data)
    assert load_config(path).split.seed == 42
    data["split"]["seed"] = 123456
    write(tmp_path, data)
    assert load_config(path).split.seed == 123456


# --- unknown keys ----------------------------------------------------------------------------


def test_unknown_top_level_key_is_named_with_the_allowed_keys(tmp_path):
    data = base()
    data["colour"] = "red"
    message = config_error(tmp_path, data)
    assert "'colour'" in message
    for allowed in ("name", "task", "source", "target", "model", "gates", "workspace", "publish"):
        assert allowed in message


def test_unknown_nested_key_is_named_by_its_full_path_with_the_allowed_keys(tmp_path):
    data = base()
    data["split"]["sed"] = 1
    message = config_error(tmp_path, data)
    assert "'split.sed'" in message
    for allowed in ("test_size", "seed", "stratify"):
        assert allowed in message


def test_unknown_key_in_a_validation_suite_lists_the_suite_keys(tmp_path):
    data = base()
    data["validation"]["data_integrity"] = {"blockng": ["ConflictingLabels"]}
    message = config_error(tmp_path, data)
    assert "'validation.data_integrity.blockng'" in message
    for allowed in ("enabled", "blocking", "known_broken", "skip", "n_samples"):
        assert allowed in message


# --- types and required keys -----------------------------------------------------------------


def test_wrong_type_names_the_key_the_value_and_the_expected_type(tmp_path):
    data = base()
    data["split"]["test_size"] = "a quarter"
    message = config_error(tmp_path, data)
    assert "split.test_size" in message
    assert "'a quarter'" in message
    assert "number" in message


def test_out_of_range_value_names_the_key_and_the_bound(tmp_path):
    data = base()
    data["split"]["test_size"] = 1.5
    message = config_error(tmp_path, data)
    assert "split.test_size" in message
    assert "less than 1" in message


def test_unknown_task_type_lists_the_allowed_task_types(tmp_path):
    data = base()
    data["task"] = "clustering"
    message = config_error(tmp_path, data)
    assert "task" in message and "'clustering'" in message
    assert "classification" in message and "regression" in message


@pytest.mark.parametrize("key", ["name", "task", "source", "target", "workspace", "publish"])
def test_missing_required_top_level_key_is_named(tmp_path, key):
    data = base()
    del data[key]
    assert f"missing required key '{key}'" in config_error(tmp_path, data)


@pytest.mark.parametrize(
    ("task", "estimator", "params"),
    [
        (
            "classification",
            "sklearn.ensemble.HistGradientBoostingClassifier",
            {"class_weight": "balanced", "random_state": 0},
        ),
        ("regression", "sklearn.ensemble.HistGradientBoostingRegressor", {"random_state": 0}),
    ],
)
def test_without_model_or_candidates_the_model_is_gradient_boosting(
    tmp_path, task, estimator, params
):
    data = base()
    del data["model"]
    data["task"] = task
    data.pop("gates", None)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = load_config(path)
    assert cfg.model is not None and cfg.candidates is None
    assert (cfg.model.estimator, cfg.model.params) == (estimator, params)


def test_both_model_and_candidates_is_an_error(tmp_path):
    data = base()
    data["candidates"] = [{"name": "lr", "estimator": "sklearn.linear_model.LogisticRegression"}]
    assert "give one of 'model'" in config_error(tmp_path, data)
    assert "not both" in config_error(tmp_path, data)


def test_candidate_grid_loads_in_order_and_names_must_be_unique(tmp_path):
    data = base()
    del data["model"]
    data["candidates"] = [
        {"name": "rf", "estimator": "sklearn.ensemble.RandomForestClassifier"},
        {
            "name": "lr",
            "estimator": "sklearn.linear_model.LogisticRegression",
            "params": {"max_iter": 500},
        },
    ]
    data["selection"] = {"metric": "roc_auc"}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = load_config(path)
    assert list(cfg.models()) == ["rf", "lr"]
    assert cfg.models()["lr"].params == {"max_iter": 500}
    assert cfg.selection_metric() == "roc_auc"
    data["candidates"][1]["name"] = "rf"
    assert "duplicated name(s) rf" in config_error(tmp_path, data)


def test_candidate_with_a_bad_estimator_is_named_by_candidate(tmp_path):
    data = base()
    del data["model"]
    data["candidates"] = [{"name": "typo", "estimator": "sklearn.linear_model.LogisticRegresion"}]
    message = config_error(tmp_path, data)
    assert "candidates[typo].estimator" in message and "cannot import" in message


def test_missing_required_nested_key_is_named_by_its_full_path(tmp_path):
    data = base()
    data["model"] = {"params": {"n_estimators": 10}}
    assert "missing required key 'model.estimator'" in config_error(tmp_path, data)


def test_threshold_without_min_or_max_is_refused(tmp_path):
    data = base()
    data["gates"]["thresholds"] = {"accuracy": {}}
    message = config_error(tmp_path, data)
    assert "gates.thresholds.accuracy" in message
    assert "'min', 'max'" in message


# --- the data source -------------------------------------------------------------------------


def test_unknown_bundled_dataset_lists_the_bundled_datasets(tmp_path):
    data = base()
    data["source"] = {"dataset": "titanic"}
    message = config_error(tmp_path, data)
    assert "source.dataset" in message and "'titanic'" in message
    for allowed in ("breast_cancer", "wine", "iris", "diabetes", "digits"):
        assert allowed in message


@pytest.mark.parametrize(
    "source",
    [{"dataset": "wine", "path": "rows.csv"}, {}, {"format": "csv"}],
    ids=["both", "neither", "format-only"],
)
def test_source_needs_exactly_one_of_dataset_and_path(tmp_path, source):
    data = base()
    data["source"] = source
    message = config_error(tmp_path, data)
    assert "source" in message
    assert "exactly one of 'dataset'" in message and "'path'" in message


def test_source_path_with_unknown_suffix_asks_for_source_format(tmp_path):
    data = base()
    data["source"] = {"path": "rows.xlsx"}
    message = config_error(tmp_path, data)
    assert "rows.xlsx" in message
    assert "source.format" in message and "'csv' or 'parquet'" in message


# --- the model -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "estimator",
    ["sklearn.ensemble.RandomForrestClassifier", "sklearn.nosuchmodule.Model", "RandomForest"],
)
def test_estimator_that_cannot_be_imported_is_named(tmp_path, estimator):
    data = base()
    data["model"] = {"estimator": estimator}
    message = config_error(tmp_path, data)
    assert "model.estimator" in message
    assert repr(estimator) in message
    assert "import path" in message


def test_estimator_parameter_it_does_not_accept_is_named(tmp_path):
    data = base()
    data["model"]["params"]["n_trees"] = 10
    message = config_error(tmp_path, data)
    assert "model.params" in message
    assert "n_trees" in message


def test_estimator_parameter_with_an_invalid_value_is_refused_at_load_time(tmp_path):
    data = base()
    data["model"]["params"]["n_estimators"] = -3
    message = config_error(tmp_path, data)
    assert "model.params" in message
    assert "n_estimators" in message


def test_estimator_that_is_not_a_model_is_refused(tmp_path):
    data = base()
    data["model"] = {"estimator": "sklearn.preprocessing.StandardScaler"}
    message = config_error(tmp_path, data)
    assert "model.estimator" in message and "StandardScaler" in message
    assert "predict" in message


# --- gates -----------------------------------------------------------------------------------


def test_threshold_on_an_unknown_metric_lists_the_metrics_of_the_task(tmp_path):
    data = base()
    data["gates"]["thresholds"] = {"acuracy": {"min": 0.9}}
    message = config_error(tmp_path, data)
    assert "gates.thresholds" in message and "'acuracy'" in message
    for allowed in (
        "accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "log_loss",
    ):
        assert allowed in message


def test_regression_metric_threshold_on_a_classification_pipeline_is_refused(tmp_path):
    data = base()
    data["gates"]["thresholds"] = {"rmse": {"max": 10}}
    message = config_error(tmp_path, data)
    assert "'rmse'" in message and "classification pipeline" in message
    assert "accuracy" in message


def test_classification_metric_threshold_on_a_regression_pipeline_is_refused(tmp_path):
    data = yaml.safe_load((CONFIGS / "diabetes.yaml").read_text())
    data["gates"]["thresholds"] = {"accuracy": {"min": 0.5}}
    message = config_error(tmp_path, data)
    assert "'accuracy'" in message and "regression pipeline" in message
    for allowed in ("mae", "rmse", "r2", "median_ae"):
        assert allowed in message


def test_unknown_champion_metric_lists_the_metrics_of_the_task(tmp_path):
    data = base()
    data["gates"]["champion"] = {"metric": "auc", "tolerance": 0.01}
    message = config_error(tmp_path, data)
    assert "gates.champion.metric" in message and "'auc'" in message
    assert "roc_auc" in message and "f1" in message


def test_negative_champion_tolerance_is_refused(tmp_path):
    data = base()
    data["gates"]["champion"] = {"metric": "f1", "tolerance": -0.1}
    message = config_error(tmp_path, data)
    assert "gates.champion.tolerance" in message


# --- validation sections ---------------------------------------------------------------------


@pytest.mark.parametrize("key", ["blocking", "known_broken", "skip"])
@pytest.mark.parametrize(
    ("suite", "real_check"),
    [
        ("data_integrity", "ConflictingLabels"),
        ("train_test", "FeatureDrift"),
        ("model_evaluation", "SimpleModelComparison"),
    ],
)
def test_unknown_deepchecks_check_name_lists_the_checks_of_its_suite(
    tmp_path, suite, key, real_check
):
    data = base()
    data["validation"][suite] = {key: ["ConflictingLabel"]}
    message = config_error(tmp_path, data)
    assert f"validation.{suite}.{key}" in message
    assert "'ConflictingLabel'" in message
    assert real_check in message


def test_check_name_from_another_suite_is_refused(tmp_path):
    data = base()
    data["validation"]["train_test"] = {"blocking": ["ConflictingLabels"]}
    message = config_error(tmp_path, data)
    assert "validation.train_test.blocking" in message and "'ConflictingLabels'" in message


def test_known_check_names_in_every_validation_list_are_accepted(tmp_path):
    data = base()
    data["validation"]["data_integrity"] = {
        "blocking": ["ConflictingLabels", "DataDuplicates"],
        "skip": ["OutlierSampleDetection"],
    }
    data["validation"]["model_evaluation"] = {"known_broken": ["WeakSegmentsPerformance"]}
    cfg = load_config(write(tmp_path, data))
    assert cfg.validation.data_integrity.blocking == ["ConflictingLabels", "DataDuplicates"]
    assert cfg.validation.data_integrity.skip == ["OutlierSampleDetection"]


# --- the model name --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["../x", "a/b", "..", ".hidden", "bad name", "naïve", "", "x" * 101]
)
def test_model_name_that_could_escape_the_registry_or_is_odd_is_refused(tmp_path, name):
    data = base()
    data["name"] = name
    message = config_error(tmp_path, data)
    assert "'name'" in message
    assert "letters, digits" in message


@pytest.mark.parametrize("name", ["breast-cancer", "wine_v2", "model.1", "X"])
def test_plain_model_names_are_accepted(tmp_path, name):
    data = base()
    data["name"] = name
    assert load_config(write(tmp_path, data)).name == name


# --- the file itself -------------------------------------------------------------------------


def test_invalid_yaml_is_a_config_error_on_one_line(tmp_path):
    message = config_error(tmp_path, "name: [unclosed\ntask: classification\n")
    assert "not valid YAML" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "kind"), [("- a\n- b\n", "list"), ("just words\n", "str"), ("", "NoneType")]
)
def test_yaml_that_is_not_a_mapping_is_refused(tmp_path, text, kind):
    message = config_error(tmp_path, text)
    assert "mapping" in message and kind in message


def test_config_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(path)


def test_missing_config_file_is_named_with_the_fix(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert str(missing) in str(info.value)
    assert "--config" in str(info.value)


def test_config_path_that_is_a_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        load_config(tmp_path)


def test_only_the_first_problem_is_described_and_the_rest_are_counted(tmp_path):
    data = base()
    data["colour"] = "red"
    data["split"]["seed"] = "x"
    message = config_error(tmp_path, data)
    assert "(and 1 more problem(s))" in message
