"""mlcd.gates: deepchecks results become verdict gates (errors fail unless known-broken,
inapplicable checks are skipped), plus metric thresholds and the comparison with production;
what runs on which rows (known-broken and, on large data, costly advisory checks are left out and
say why; sampling once keeps the blocking verdicts; the same inputs give the same verdict)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge

from mlcd.catalogue import COSTLY_CHECKS, DEFAULT_BLOCKING, SUITE_CHECKS
from mlcd.config import GatesConfig, PipelineConfig, SuiteConfig, parse_config
from mlcd.errors import ConfigError
from mlcd.gates import (
    champion_gate,
    dataset,
    feature_importance,
    permutation_importance,
    run_suite,
    summarise,
    threshold_gates,
    verdict_from_result,
)
from mlcd.gates.suites import _build_suite


def make_cfg(task: str = "classification", **changes: Any) -> PipelineConfig:
    raw: dict[str, Any] = {
        "name": "t",
        "task": task,
        "source": {"dataset": "breast_cancer" if task == "classification" else "diabetes"},
        "target": "target",
        "model": {
            "estimator": "sklearn.linear_model.LogisticRegression"
            if task == "classification"
            else "sklearn.linear_model.Ridge"
        },
        "workspace": "ws",
        "publish": "reg",
    }
    raw.update(changes)
    return parse_config(raw, "test.yaml", Path("/nonexistent"))


def by_check(verdict: dict[str, Any], check: str) -> list[dict[str, Any]]:
    return [g for g in verdict["gates"] if g["check"] == check]


# --- the hard-coded check list ---------------------------------------------------------------


def test_suite_checks_are_exactly_the_checks_of_the_deepchecks_default_suites():
    import mlcd.gates.compat  # noqa: F401, I001  (first: mends deepchecks for the current stack)
    from deepchecks.tabular import suites

    factories = {
        "data_integrity": suites.data_integrity,
        "train_test": suites.train_test_validation,
        "model_evaluation": suites.model_evaluation,
    }
    for name, factory in factories.items():
        actual = tuple(type(check).__name__ for check in factory().checks.values())
        assert SUITE_CHECKS[name] == actual, name


def test_default_blocking_checks_belong_to_their_suites():
    for suite, checks in DEFAULT_BLOCKING.items():
        assert set(checks) <= set(SUITE_CHECKS[suite]), suite


# --- real deepchecks runs --------------------------------------------------------------------


def classification_frame() -> pd.DataFrame:
    x, y = make_classification(
        n_samples=240, n_features=4, n_informative=3, n_redundant=0, random_state=0
    )
    frame = pd.DataFrame(x, columns=["f1", "f2", "f3", "f4"])
    frame["target"] = y
    return frame


def with_conflicting_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """The first 20 rows again, with the other label: same features, two answers."""
    flipped = frame.iloc[:20].copy()
    flipped["target"] = 1 - flipped["target"]
    return pd.concat([frame, flipped], ignore_index=True)


def run_deepchecks(suite: Any, *datasets: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return suite.run(*datasets, with_display=False, **kwargs)


@pytest.fixture(scope="module")
def integrity_results() -> dict[str, Any]:
    """The default data_integrity suite on clean data and on data with conflicting labels."""
    import mlcd.gates.compat  # noqa: F401, I001  (first: mends deepchecks for the current stack)
    from deepchecks.tabular import suites

    cfg = make_cfg()
    clean = classification_frame()
    return {
        name: run_deepchecks(suites.data_integrity(random_state=0), dataset(frame, cfg, "binary"))
        for name, frame in (("clean", clean), ("conflicting", with_conflicting_labels(clean)))
    }


@pytest.fixture(scope="module")
def regression_evaluation() -> Any:
    """The default model_evaluation suite on a regressor, where deepchecks 0.19.1 has checks
    that do not apply (ROC, calibration) and one that raises (WeakSegmentsPerformance).

    With scikit-learn 1.5 WeakSegmentsPerformance raises by itself on a regressor (deepchecks'
    _DummyModel is not one); on scikit-learn 1.8+ mlcd/gates/compat.py tags that model and the
    check runs. So that these tests see a check that raised on every stack, the check is made to
    raise that same error here."""
    import mlcd.gates.compat  # noqa: F401, I001  (first: mends deepchecks for the current stack)
    from deepchecks.tabular import suites

    cfg = make_cfg("regression")
    frame = load_diabetes(as_frame=True).frame.iloc[:300]
    train, test = frame.iloc[:200], frame.iloc[200:]
    features = [c for c in frame.columns if c != "target"]
    model = Ridge().fit(train[features], train["target"])
    suite = suites.model_evaluation(random_state=0)

    def raise_as_on_scikit_learn_1_5(*args: Any, **kwargs: Any) -> Any:
        raise ValueError(
            "_DummyModel should either be a classifier to be used with response_method=predict "
            "or the response_method should be 'predict'. Got a regressor with "
            "response_method=predict instead."
        )

    def raise_as_a_broken_check(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("a check that broke on this stack")

    for check in suite.checks.values():
        if type(check).__name__ == "WeakSegmentsPerformance":
            check.run_logic = raise_as_on_scikit_learn_1_5
        if type(check).__name__ == "UnusedFeatures":  # not known-broken by default
            check.run_logic = raise_as_a_broken_check
    return run_deepchecks(
        suite,
        dataset(train, cfg, "regression"),
        dataset(test, cfg, "regression"),
        model=model,
    )


def test_conflicting_labels_are_a_blocking_failure(integrity_results):
    verdict = verdict_from_result("data_integrity", integrity_results["conflicting"], SuiteConfig())
    gates = by_check(verdict, "ConflictingLabels")
    assert [(g["result"], g["blocking"]) for g in gates] == [("fail", True)]
    assert verdict["passed"] is False
    assert len(verdict["blocking_failures"]) == 1
    assert verdict["blocking_failures"][0].startswith("ConflictingLabels")


def test_clean_data_passes_the_conflicting_labels_gate(integrity_results):
    verdict = verdict_from_result("data_integrity", integrity_results["clean"], SuiteConfig())
    assert [g["result"] for g in by_check(verdict, "ConflictingLabels")] == ["pass"]
    assert verdict["passed"] is True and verdict["blocking_failures"] == []


def test_a_failing_check_that_is_not_blocking_only_advises(integrity_results):
    section = SuiteConfig(blocking=["MixedDataTypes"])
    verdict = verdict_from_result("data_integrity", integrity_results["conflicting"], section)
    assert [(g["result"], g["blocking"]) for g in by_check(verdict, "ConflictingLabels")] == [
        ("fail", False)
    ]
    assert verdict["passed"] is True


def test_a_check_that_does_not_apply_to_the_data_is_skipped(integrity_results):
    # no index or date column: deepchecks cannot run IdentifierLabelCorrelation
    verdict = verdict_from_result("data_integrity", integrity_results["clean"], SuiteConfig())
    [gate] = by_check(verdict, "IdentifierLabelCorrelation")
    assert (gate["result"], gate["blocking"]) == ("skipped", False)


def test_checks_irrelevant_for_the_task_type_are_skipped_not_failed(regression_evaluation):
    verdict = verdict_from_result(
        "model_evaluation",
        regression_evaluation,
        SuiteConfig(known_broken=["WeakSegmentsPerformance"]),
    )
    for check in ("RocReport", "ConfusionMatrixReport", "CalibrationScore"):
        gates = by_check(verdict, check)
        assert gates and all(g["result"] == "skipped" and not g["blocking"] for g in gates), check
        assert "irrelevant" in gates[0]["details"]


def test_a_known_broken_check_that_raises_does_not_block(regression_evaluation):
    # the config's list adds to the default one (WeakSegmentsPerformance), not replaces it
    verdict = verdict_from_result(
        "model_evaluation", regression_evaluation, SuiteConfig(known_broken=["UnusedFeatures"])
    )
    for check, says in (("WeakSegmentsPerformance", "_DummyModel"), ("UnusedFeatures", "broke")):
        gates = by_check(verdict, check)
        assert gates and all(g["result"] == "known_broken" and not g["blocking"] for g in gates)
        assert says in gates[0]["details"]
    assert verdict["passed"] is True


def test_a_check_that_raises_blocks_unless_listed_as_known_broken(regression_evaluation):
    # deepchecks' own passed() ignores checks that raised; mlcd's verdict must not
    verdict = verdict_from_result("model_evaluation", regression_evaluation, SuiteConfig())
    gates = by_check(verdict, "UnusedFeatures")
    assert gates and all(g["result"] == "error" and g["blocking"] for g in gates)
    assert verdict["passed"] is False
    assert all(name.startswith("UnusedFeatures") for name in verdict["blocking_failures"])
    weak = by_check(verdict, "WeakSegmentsPerformance")  # known broken by default
    assert weak and all(g["result"] == "known_broken" for g in weak)


def test_run_suite_gives_a_verdict_and_an_html_report_and_honours_skip():
    cfg = make_cfg(validation={"data_integrity": {"skip": ["OutlierSampleDetection"]}})
    verdict, html = run_suite(
        "data_integrity", cfg, with_conflicting_labels(classification_frame())
    )
    assert verdict["stage"] == "data_integrity" and verdict["passed"] is False
    assert [g["result"] for g in by_check(verdict, "ConflictingLabels")] == ["fail"]
    [skipped] = by_check(verdict, "OutlierSampleDetection")
    assert skipped["result"] == "skipped" and "validation.data_integrity.skip" in skipped["details"]
    assert b"<html" in html[:200].lower()


def test_disabled_suite_passes_without_running_and_says_so():
    cfg = make_cfg(validation={"train_test": {"enabled": False}})
    verdict, html = run_suite("train_test", cfg, classification_frame(), classification_frame())
    assert verdict["disabled"] is True and verdict["passed"] is True and verdict["gates"] == []
    assert b"validation.train_test is disabled" in html


# --- what runs: known-broken, costly and sampled checks ---------------------------------------


def test_costly_checks_max_rows_defaults_to_100000_per_suite_and_null_turns_it_off():
    cfg = make_cfg(validation={"train_test": {"costly_checks_max_rows": None}})
    assert cfg.validation.data_integrity.costly_checks_max_rows == 100_000
    assert cfg.validation.model_evaluation.costly_checks_max_rows == 100_000
    assert cfg.validation.train_test.costly_checks_max_rows is None
    with pytest.raises(ConfigError, match="costly_checks_max_rows"):
        make_cfg(validation={"train_test": {"costly_checks_max_rows": -1}})


def test_costly_checks_belong_to_their_suites_and_none_blocks_by_default():
    for suite, checks in COSTLY_CHECKS.items():
        assert set(checks) <= set(SUITE_CHECKS[suite]), suite
        assert not set(checks) & set(DEFAULT_BLOCKING[suite]), suite


def test_above_the_row_limit_costly_advisory_checks_do_not_run_and_the_verdict_says_why():
    frame = classification_frame()  # 240 rows
    cfg = make_cfg(validation={"data_integrity": {"costly_checks_max_rows": 239}})
    verdict, html = run_suite("data_integrity", cfg, frame)
    for check in COSTLY_CHECKS["data_integrity"]:
        [gate] = by_check(verdict, check)
        assert (gate["result"], gate["blocking"]) == ("skipped", False), check
        assert "the data has 240 rows" in gate["details"]
        assert "validation.data_integrity.costly_checks_max_rows (239)" in gate["details"]
    assert verdict["passed"] is True
    assert [g["result"] for g in by_check(verdict, "ConflictingLabels")] == ["pass"]
    assert b"costly_checks_max_rows" in html  # the report names them too


@pytest.mark.parametrize("limit", [240, None], ids=["at-the-limit", "no-limit"])
def test_costly_checks_run_up_to_the_row_limit_or_when_it_is_null(limit):
    cfg = make_cfg(validation={"data_integrity": {"costly_checks_max_rows": limit}})
    verdict, _ = run_suite("data_integrity", cfg, classification_frame())
    assert [g["result"] for g in by_check(verdict, "OutlierSampleDetection")] == ["ran"]
    assert [g["result"] for g in by_check(verdict, "FeatureLabelCorrelation")] == ["pass"]


def test_a_costly_check_made_blocking_runs_above_the_row_limit():
    cfg = make_cfg(
        validation={
            "data_integrity": {
                "costly_checks_max_rows": 10,
                "blocking": ["ConflictingLabels", "FeatureLabelCorrelation"],
            }
        }
    )
    verdict, _ = run_suite("data_integrity", cfg, with_conflicting_labels(classification_frame()))
    assert [(g["result"], g["blocking"]) for g in by_check(verdict, "FeatureLabelCorrelation")] == [
        ("pass", True)
    ]
    assert [g["result"] for g in by_check(verdict, "OutlierSampleDetection")] == ["skipped"]
    assert verdict["passed"] is False  # ConflictingLabels still fails and blocks


def split_frame() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = classification_frame()
    return frame.iloc[:180], frame.iloc[180:]


def test_a_known_broken_advisory_check_is_not_run_and_does_not_block():
    train, test = split_frame()
    features = ["f1", "f2", "f3", "f4"]
    model = LogisticRegression().fit(train[features], train["target"])
    # model_evaluation.known_broken is [WeakSegmentsPerformance] by default, and a section
    # that says something else (skip) keeps it
    cfg = make_cfg(validation={"model_evaluation": {"skip": ["ModelInferenceTime"]}})
    verdict, _ = run_suite("model_evaluation", cfg, train, test, model)
    [gate] = by_check(verdict, "WeakSegmentsPerformance")
    assert (gate["result"], gate["blocking"]) == ("known_broken", False)
    assert gate["details"] == "not run: by default in validation.model_evaluation.known_broken"
    assert not any("WeakSegments" in name for name in verdict["blocking_failures"])
    [skipped] = by_check(verdict, "ModelInferenceTime")
    assert skipped["result"] == "skipped"


def test_a_known_broken_check_that_also_blocks_still_runs():
    # its failed conditions would block, so leaving it out would change the gate
    train, test = split_frame()
    features = ["f1", "f2", "f3", "f4"]
    model = LogisticRegression().fit(train[features], train["target"])
    cfg = make_cfg(
        validation={
            "model_evaluation": {
                "known_broken": ["WeakSegmentsPerformance"],
                "blocking": ["SimpleModelComparison", "WeakSegmentsPerformance"],
            }
        }
    )
    verdict, _ = run_suite("model_evaluation", cfg, train, test, model)
    gates = by_check(verdict, "WeakSegmentsPerformance")
    assert gates and all("not run" not in g["details"] for g in gates)


def leaky_split() -> tuple[pd.DataFrame, pd.DataFrame]:
    """3,000 train rows (60 distinct ones, 50 times each) and a test set of 25, too small next to
    the train set, of which 10 are copies of train rows: leakage that any sample of train shows."""
    x, y = make_classification(n_samples=75, n_features=4, n_redundant=0, random_state=1)
    frame = pd.DataFrame(x, columns=["f1", "f2", "f3", "f4"])
    frame["target"] = y
    train = pd.concat([frame.iloc[:60]] * 50, ignore_index=True)
    test = pd.concat([frame.iloc[60:], frame.iloc[:10]])
    test.index = range(5000, 5000 + len(test))
    return train, test


def test_sampling_once_keeps_the_blocking_verdicts_of_sampling_in_every_check():
    import mlcd.gates.compat  # noqa: F401, I001  (first: mends deepchecks for the current stack)

    train, test = leaky_split()
    cfg = make_cfg(
        validation={"train_test": {"n_samples": 500, "costly_checks_max_rows": 0}},
        split={"seed": 3},
    )
    section = cfg.validation.train_test
    verdict, _ = run_suite("train_test", cfg, train, test)
    # what deepchecks does on the whole frames: every check samples 500 rows itself (with
    # mlcd's conditions: its ratios)
    suite = _build_suite("train_test", section, cfg, len(train) + len(test), None)
    for index, check in list(suite.checks.items()):
        if type(check).__name__ not in DEFAULT_BLOCKING["train_test"]:
            suite.remove(index)
    each = run_deepchecks(suite, dataset(train, cfg, "binary"), dataset(test, cfg, "binary"))
    expected = verdict_from_result("train_test", each, section)
    for check in DEFAULT_BLOCKING["train_test"]:
        assert by_check(verdict, check) == by_check(expected, check), check
    # the test set is too small next to all 3,000 train rows, not next to 500 of them
    [size] = by_check(verdict, "DatasetsSizeComparison")
    assert (size["result"], size["blocking"]) == ("fail", True)
    [mix] = by_check(verdict, "TrainTestSamplesMix")
    assert mix["result"] == "fail"
    assert verdict["passed"] is False


def test_sampling_once_keeps_the_blocking_verdicts_of_data_and_model_checks():
    import mlcd.gates.compat  # noqa: F401, I001  (first: mends deepchecks for the current stack)

    x, y = make_classification(n_samples=2400, n_features=4, n_redundant=0, random_state=4)
    frame = pd.DataFrame(x, columns=["f1", "f2", "f3", "f4"])
    frame["target"] = y
    flipped = frame.iloc[:600].copy()  # 600 rows again with the other label: conflicts
    flipped["target"] = 1 - flipped["target"]
    frame = pd.concat([frame, flipped], ignore_index=True)
    train, test = frame.iloc[:2500], frame.iloc[2500:]
    features = ["f1", "f2", "f3", "f4"]
    model = LogisticRegression().fit(train[features], train["target"])
    cfg = make_cfg(
        validation={"data_integrity": {"n_samples": 400}, "model_evaluation": {"n_samples": 400}},
        split={"seed": 5},
    )
    cases = {
        "data_integrity": ((frame,), {}),
        "model_evaluation": ((train, test), {"model": model}),
    }
    verdicts = {}
    for suite_name, (frames, kwargs) in cases.items():
        verdicts[suite_name], _ = run_suite(suite_name, cfg, *frames, **kwargs)
        section = getattr(cfg.validation, suite_name)
        suite = _build_suite(suite_name, section, cfg, 0, [0, 1])  # each check samples itself
        for index, check in list(suite.checks.items()):
            if type(check).__name__ not in DEFAULT_BLOCKING[suite_name]:
                suite.remove(index)  # the advisory ones do not matter here, and take time
        each = run_deepchecks(suite, *(dataset(f, cfg, "binary") for f in frames), **kwargs)
        expected = verdict_from_result(suite_name, each, getattr(cfg.validation, suite_name))
        for check in DEFAULT_BLOCKING[suite_name]:
            assert by_check(verdicts[suite_name], check) == by_check(expected, check), check
    [conflicts] = by_check(verdicts["data_integrity"], "ConflictingLabels")
    assert (conflicts["result"], conflicts["blocking"]) == ("fail", True)


def test_the_same_inputs_give_byte_identical_verdicts():
    # HistGradientBoosting has no feature_importances_: mlcd's permutation importance feeds
    # UnusedFeatures, where deepchecks' own would depend on a wall-time estimate
    x, y = make_classification(n_samples=3000, n_features=4, n_redundant=0, random_state=2)
    frame = pd.DataFrame(x, columns=["f1", "f2", "f3", "f4"])
    frame["target"] = y
    train, test = frame.iloc[:2000], frame.iloc[2000:]
    features = ["f1", "f2", "f3", "f4"]
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0)
    model.fit(train[features], train["target"])
    cfg = make_cfg(validation={"model_evaluation": {"n_samples": 500}})

    def verdict_json() -> str:
        verdict, _ = run_suite("model_evaluation", cfg, train, test, model)
        gates = [g for g in verdict["gates"] if g["check"] != "ModelInferenceTime"]  # wall time
        return json.dumps({**verdict, "gates": gates}, sort_keys=True)

    first = verdict_json()
    assert verdict_json() == first
    unused = [g for g in json.loads(first)["gates"] if g["check"] == "UnusedFeatures"]
    assert unused and all(g["result"] in ("pass", "warn") for g in unused)


# --- feature importance ----------------------------------------------------------------------


def test_feature_importance_is_normalised_from_the_models_own_importances():
    frame = classification_frame()
    features = ["f1", "f2", "f3", "f4"]
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(
        frame[features], frame["target"]
    )
    linear = LogisticRegression().fit(frame[features], frame["target"])
    for model in (forest, linear):
        importance = feature_importance(model, features)
        assert list(importance.index) == features
        assert importance.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(
        feature_importance(forest, features),
        forest.feature_importances_ / forest.feature_importances_.sum(),
    )
    assert feature_importance(forest, features[:3]) is None


def test_permutation_importance_is_normalised_and_the_same_on_every_run():
    frame = classification_frame()
    features = ["f1", "f2", "f3", "f4"]
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0)
    model.fit(frame[features], frame["target"])
    assert feature_importance(model, features) is None  # nothing of its own
    first = permutation_importance(model, frame, "target", seed=0)
    assert list(first.index) == features
    assert first.sum() == pytest.approx(1.0) and (first >= 0).all()
    pd.testing.assert_series_equal(permutation_importance(model, frame, "target", seed=0), first)


# --- metric thresholds -----------------------------------------------------------------------


def gates_config(**thresholds: dict[str, float]) -> GatesConfig:
    return GatesConfig.model_validate({"thresholds": thresholds})


@pytest.mark.parametrize(
    ("bound", "value", "result"),
    [
        ({"min": 0.9}, 0.95, "pass"),
        ({"min": 0.9}, 0.9, "pass"),
        ({"min": 0.9}, 0.85, "fail"),
        ({"max": 65}, 50.0, "pass"),
        ({"max": 65}, 65.0, "pass"),
        ({"max": 65}, 70.0, "fail"),
        ({"min": 0.2, "max": 0.4}, 0.3, "pass"),
        ({"min": 0.2, "max": 0.4}, 0.1, "fail"),
        ({"min": 0.2, "max": 0.4}, 0.5, "fail"),
    ],
)
def test_threshold_gate_passes_inside_its_bounds_and_fails_outside(bound, value, result):
    [gate] = threshold_gates({"m": value}, gates_config(m=bound))
    assert gate["result"] == result
    assert gate["blocking"] is True
    assert gate["value"] == value and gate["threshold"] == bound


def test_threshold_gate_on_a_metric_that_could_not_be_computed_is_an_error():
    gates = threshold_gates(
        {"roc_auc": None}, gates_config(roc_auc={"min": 0.9}, log_loss={"max": 1})
    )
    assert [(g["metric"], g["result"]) for g in gates] == [
        ("log_loss", "error"),
        ("roc_auc", "error"),
    ]
    assert summarise("gates", gates)["passed"] is False


def test_threshold_gate_names_say_the_bound():
    [gate] = threshold_gates({"r2": 0.5}, gates_config(r2={"min": 0.3, "max": 0.9}))
    assert gate["name"] == "r2 >= 0.3 and <= 0.9"


# --- champion comparison ---------------------------------------------------------------------

F1 = make_cfg(gates={"champion": {"metric": "f1", "tolerance": 0.01}})
RMSE = make_cfg("regression", gates={"champion": {"metric": "rmse", "tolerance": 2.0}})


@pytest.mark.parametrize("cfg", [F1, RMSE], ids=["f1", "rmse"])
def test_without_a_champion_the_gate_does_not_block(cfg):
    gate = champion_gate(cfg, {"f1": 0.5, "rmse": 99.0}, None, None, basis="this run's test set")
    assert (gate["result"], gate["blocking"]) == ("no_champion", False)
    assert summarise("champion", [gate])["passed"] is True


@pytest.mark.parametrize(
    ("cfg", "challenger", "champion", "result"),
    [
        (F1, 0.95, 0.90, "pass"),  # better
        (F1, 0.895, 0.90, "pass"),  # worse, within tolerance
        (F1, 0.88, 0.90, "fail"),  # worse beyond tolerance
        (RMSE, 45.0, 50.0, "pass"),  # lower error is better
        (RMSE, 51.5, 50.0, "pass"),  # worse, within tolerance
        (RMSE, 53.0, 50.0, "fail"),  # worse beyond tolerance
        (RMSE, 47.0, 50.0, "pass"),  # a lower rmse must never fail
    ],
    ids=[
        "f1-better",
        "f1-within",
        "f1-worse",
        "rmse-better",
        "rmse-within",
        "rmse-worse",
        "rmse-lower",
    ],
)
def test_challenger_may_be_worse_than_the_champion_only_within_tolerance(
    cfg, challenger, champion, result
):
    metric = cfg.gates.champion.metric
    gate = champion_gate(cfg, {metric: challenger}, {metric: champion}, "v1", basis="test set")
    assert gate["result"] == result
    assert gate["blocking"] is True
    assert (gate["value"], gate["champion_value"], gate["champion_version"]) == (
        challenger,
        champion,
        "v1",
    )
    improvement = challenger - champion if metric == "f1" else champion - challenger
    assert gate["delta"] == pytest.approx(improvement)


def test_challenger_worse_by_exactly_the_tolerance_passes():
    gate = champion_gate(F1, {"f1": 0.89}, {"f1": 0.90}, "v1", basis="test set")
    assert gate["result"] == "pass"


def test_champion_gate_with_the_metric_missing_is_a_blocking_error():
    gate = champion_gate(F1, {"f1": 0.9}, {"accuracy": 0.9}, "v1", basis="test set")
    assert (gate["result"], gate["blocking"]) == ("error", True)


def test_champion_gate_defaults_to_f1_for_classification_with_no_tolerance():
    cfg = make_cfg()
    assert cfg.gates.champion is None
    gate = champion_gate(cfg, {"f1": 0.899}, {"f1": 0.9}, "v1", basis="test set")
    assert (gate["metric"], gate["tolerance"], gate["result"]) == ("f1", 0.0, "fail")


# --- summaries -------------------------------------------------------------------------------


def gate(result: str, blocking: bool, name: str) -> dict[str, Any]:
    return {"kind": "threshold", "name": name, "result": result, "blocking": blocking}


def test_summary_counts_results_and_fails_only_on_blocking_fail_or_error():
    gates = [
        gate("pass", True, "a"),
        gate("warn", True, "b"),
        gate("fail", False, "c"),
        gate("skipped", False, "d"),
        gate("known_broken", False, "e"),
        gate("pass", False, "f"),
    ]
    summary = summarise("stage", gates)
    assert summary["passed"] is True
    assert summary["counts"] == {"fail": 1, "known_broken": 1, "pass": 2, "skipped": 1, "warn": 1}
    assert summary["blocking_failures"] == [] and summary["gates"] == gates

    failing = summarise("stage", [*gates, gate("fail", True, "g"), gate("error", True, "h")])
    assert failing["passed"] is False
    assert failing["blocking_failures"] == ["g", "h"]
    assert failing["counts"]["fail"] == 2 and failing["counts"]["error"] == 1


def test_summary_of_no_gates_passes():
    assert summarise("empty", []) == {
        "stage": "empty",
        "passed": True,
        "blocking_failures": [],
        "counts": {},
        "gates": [],
    }


def test_run_suite_reports_progress_once_per_check_in_order():
    cfg = make_cfg(validation={"data_integrity": {"skip": ["OutlierSampleDetection"]}})
    calls: list[tuple[int, int, str]] = []
    verdict, _ = run_suite(
        "data_integrity",
        cfg,
        classification_frame(),
        progress=lambda done, total, check: calls.append((done, total, check)),
    )
    ran = [c for c in SUITE_CHECKS["data_integrity"] if c != "OutlierSampleDetection"]
    assert [check for _, _, check in calls] == ran
    assert [done for done, _, _ in calls] == list(range(len(ran)))
    assert {total for _, total, _ in calls} == {len(ran)}
    assert verdict["passed"] is True


def test_no_check_is_aborted_by_a_projection_of_its_wall_time():
    """deepchecks' OutlierSampleDetection errors when a timing of its first rows projects over
    10 s, so its verdict (an error blocks) followed the machine's load: it failed when
    ValidateData ran beside ValidateSplit on 2 cores. mlcd runs it to the end; its n_samples
    bounds the work."""
    cfg = make_cfg()
    suite = _build_suite("data_integrity", cfg.validation.data_integrity, cfg, 1_000, [0, 1])
    (outliers,) = [c for c in suite.checks.values() if type(c).__name__ == "OutlierSampleDetection"]
    assert outliers.timeout == 0
    assert outliers.n_samples == (cfg.validation.data_integrity.n_samples or 5_000)
