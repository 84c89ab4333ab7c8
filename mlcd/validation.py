"""Gates: deepchecks suites, metric thresholds and the comparison with production.

Every gate becomes one entry of a verdict (a plain dict written as JSON): what was checked, its
value, its threshold, its result and whether it blocks. A verdict passes when no blocking gate
failed. deepchecks' own ``passed()`` ignores checks that raised; here a check that raises fails
its gate unless the config lists it as known-broken, and a check that does not apply to the
data or task type is reported as skipped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import pandas as pd

from mlcd.config import ChampionConfig, GatesConfig, PipelineConfig, SuiteConfig
from mlcd.errors import ConfigError
from mlcd.metrics import METRICS, PRIMARY_METRIC

SUITES = ("data_integrity", "train_test", "model_evaluation")

# The checks of each default deepchecks 0.19.1 suite (tests/test_validation.py checks this list
# against deepchecks itself), so a misspelt check name in a config fails at load time without
# importing deepchecks.
SUITE_CHECKS: dict[str, tuple[str, ...]] = {
    "data_integrity": (
        "IsSingleValue",
        "SpecialCharacters",
        "MixedNulls",
        "MixedDataTypes",
        "StringMismatch",
        "DataDuplicates",
        "StringLengthOutOfBounds",
        "ConflictingLabels",
        "OutlierSampleDetection",
        "FeatureLabelCorrelation",
        "FeatureFeatureCorrelation",
        "IdentifierLabelCorrelation",
    ),
    "train_test": (
        "DatasetsSizeComparison",
        "NewLabelTrainTest",
        "NewCategoryTrainTest",
        "StringMismatchComparison",
        "DateTrainTestLeakageDuplicates",
        "DateTrainTestLeakageOverlap",
        "IndexTrainTestLeakage",
        "TrainTestSamplesMix",
        "FeatureLabelCorrelationChange",
        "FeatureDrift",
        "LabelDrift",
        "MultivariateDrift",
    ),
    "model_evaluation": (
        "TrainTestPerformance",
        "RocReport",
        "ConfusionMatrixReport",
        "PredictionDrift",
        "SimpleModelComparison",
        "WeakSegmentsPerformance",
        "CalibrationScore",
        "RegressionErrorDistribution",
        "UnusedFeatures",
        "BoostingOverfit",
        "ModelInferenceTime",
    ),
}

# Conditions that mean the data or the model is broken block by default; the rest advise.
DEFAULT_BLOCKING: dict[str, tuple[str, ...]] = {
    "data_integrity": ("ConflictingLabels", "MixedDataTypes"),
    "train_test": (
        "DatasetsSizeComparison",
        "NewLabelTrainTest",
        "TrainTestSamplesMix",
        "IndexTrainTestLeakage",
        "DateTrainTestLeakageDuplicates",
        "DateTrainTestLeakageOverlap",
    ),
    "model_evaluation": ("SimpleModelComparison",),
}


def check_suite_names(cfg: PipelineConfig) -> None:
    """Every check named in the validation section must exist in its suite."""
    for suite in SUITES:
        section: SuiteConfig = getattr(cfg.validation, suite)
        for key in ("blocking", "known_broken", "skip"):
            for name in getattr(section, key) or []:
                if name not in SUITE_CHECKS[suite]:
                    raise ConfigError(
                        f"validation.{suite}.{key}: unknown check {name!r}; the {suite} suite has: "
                        f"{', '.join(SUITE_CHECKS[suite])}"
                    )


def _not_applicable(exc: BaseException) -> bool:
    from deepchecks.core.errors import (
        DatasetValidationError,
        DeepchecksNotSupportedError,
        ModelValidationError,
    )

    text = str(exc)
    if isinstance(exc, DeepchecksNotSupportedError):  # e.g. no predict_proba for RocReport
        return True
    if isinstance(exc, ModelValidationError):
        return "irrelevant" in text or "is relevant for" in text
    if isinstance(exc, DatasetValidationError):
        return "does not contain" in text
    return False


def _label_type(cfg: PipelineConfig, y: pd.Series) -> str:
    if cfg.task == "regression":
        return "regression"
    return "binary" if y.nunique() <= 2 else "multiclass"


def dataset(frame: pd.DataFrame, cfg: PipelineConfig, label_type: str) -> Any:
    from deepchecks.tabular import Dataset

    features = [c for c in frame.columns if c != cfg.target]
    cat = [
        c
        for c in features
        if isinstance(frame[c].dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(frame[c])
        or pd.api.types.is_bool_dtype(frame[c])
    ]
    return Dataset(frame, label=cfg.target, cat_features=cat, label_type=label_type)


def _build_suite(name: str, section: SuiteConfig, seed: int) -> Any:
    import deepchecks
    from deepchecks.tabular import suites

    deepchecks.set_verbosity(logging.WARNING)  # no progress bars on the terminal
    factory: Callable[..., Any] = {
        "data_integrity": suites.data_integrity,
        "train_test": suites.train_test_validation,
        "model_evaluation": suites.model_evaluation,
    }[name]
    kwargs: dict[str, Any] = {"random_state": seed}
    if section.n_samples is not None:
        kwargs["n_samples"] = section.n_samples
    suite = factory(**kwargs)
    for index, check in list(suite.checks.items()):
        if type(check).__name__ in section.skip:
            suite.remove(index)
    return suite


def verdict_from_result(suite_name: str, result: Any, section: SuiteConfig) -> dict[str, Any]:
    """Turn a deepchecks SuiteResult into verdict gates."""
    from deepchecks.core.check_result import CheckFailure, CheckResult

    blocking = set(
        section.blocking if section.blocking is not None else DEFAULT_BLOCKING[suite_name]
    )
    known_broken = set(section.known_broken)
    gates: list[dict[str, Any]] = []
    for res in result.results:
        check = type(res.check).__name__
        header = res.get_header()
        if isinstance(res, CheckFailure):
            if _not_applicable(res.exception):
                outcome, is_blocking = "skipped", False
            elif check in known_broken:
                outcome, is_blocking = "known_broken", False
            else:
                outcome, is_blocking = "error", True
            gates.append(
                {
                    "kind": "deepchecks",
                    "suite": suite_name,
                    "check": check,
                    "header": header,
                    "condition": None,
                    "result": outcome,
                    "blocking": is_blocking,
                    "details": f"{type(res.exception).__name__}: {res.exception}"[:500],
                }
            )
            continue
        if not isinstance(res, CheckResult):
            continue
        if not res.conditions_results:
            gates.append(
                {
                    "kind": "deepchecks",
                    "suite": suite_name,
                    "check": check,
                    "header": header,
                    "condition": None,
                    "result": "ran",
                    "blocking": False,
                    "details": "",
                }
            )
        for cond in res.conditions_results:
            outcome = cond.category.name.lower()  # pass, warn, fail, error
            gates.append(
                {
                    "kind": "deepchecks",
                    "suite": suite_name,
                    "check": check,
                    "header": header,
                    "condition": cond.name,
                    "result": outcome,
                    "blocking": check in blocking,
                    "details": str(cond.details)[:500],
                }
            )
    for name in section.skip:
        gates.append(
            {
                "kind": "deepchecks",
                "suite": suite_name,
                "check": name,
                "header": name,
                "condition": None,
                "result": "skipped",
                "blocking": False,
                "details": "skipped by validation." + suite_name + ".skip",
            }
        )
    return summarise(suite_name, gates)


def summarise(stage: str, gates: list[dict[str, Any]]) -> dict[str, Any]:
    failed = [g for g in gates if g["blocking"] and g["result"] in ("fail", "error")]
    counts: dict[str, int] = {}
    for gate in gates:
        counts[gate["result"]] = counts.get(gate["result"], 0) + 1
    return {
        "stage": stage,
        "passed": not failed,
        "blocking_failures": [gate_name(g) for g in failed],
        "counts": dict(sorted(counts.items())),
        "gates": gates,
    }


def gate_name(gate: dict[str, Any]) -> str:
    if gate["kind"] == "deepchecks":
        cond = f": {gate['condition']}" if gate.get("condition") else ""
        return f"{gate['check']}{cond} ({gate['result']})"
    return str(gate["name"])


def render_html(result: Any) -> bytes:
    """The suite's self-contained HTML report (deepchecks writes only to a path or real file)."""
    with tempfile.TemporaryDirectory(prefix="mlcd-report-") as tmp:
        path = os.path.join(tmp, "report.html")
        result.save_as_html(path, as_widget=False)
        with open(path, "rb") as handle:
            return handle.read()


def run_suite(
    suite_name: str,
    cfg: PipelineConfig,
    train: pd.DataFrame,
    test: pd.DataFrame | None = None,
    model: Any = None,
    predictions: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], bytes]:
    """Run one deepchecks suite; return its verdict and its HTML report."""
    section: SuiteConfig = getattr(cfg.validation, suite_name)
    if not section.enabled:
        verdict = summarise(suite_name, [])
        verdict["disabled"] = True
        note = (
            f"<html><body><p>validation.{suite_name} is disabled in the config.</p></body></html>"
        )
        return verdict, note.encode()
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        # deepchecks 0.19.1 imports pkg_resources, calls APIs that scikit-learn 1.5 deprecates
        # and casts NaNs in its plots: noise on the terminal, not news. The report and the
        # verdict carry the findings.
        warnings.simplefilter("ignore")
        stack.enter_context(_threads_only())
        label_type = _label_type(cfg, train[cfg.target])
        suite = _build_suite(suite_name, section, cfg.split.seed)
        train_ds = dataset(train, cfg, label_type)
        test_ds = dataset(test, cfg, label_type) if test is not None else None
        kwargs: dict[str, Any] = {"with_display": False}
        if model is not None:
            kwargs["model"] = model
            kwargs.update(predictions or {})
            importance = feature_importance(model, [c for c in train.columns if c != cfg.target])
            if importance is not None:
                kwargs["feature_importance"] = importance
        result = suite.run(train_ds, test_ds, **kwargs)
        verdict = verdict_from_result(suite_name, result, section)
        html = render_html(result)
    return verdict, html


def _threads_only() -> Any:
    """deepchecks' own parallel work (permutation importance, n_jobs=-1) on threads: loky worker
    processes started inside a forked Luigi worker keep it from exiting (docs/decisions.md)."""
    import joblib

    return joblib.parallel_config(backend="threading")


def feature_importance(model: Any, features: list[str]) -> pd.Series | None:
    """The model's own importances when it has them (saves deepchecks a permutation run)."""
    import numpy as np

    values = getattr(model, "feature_importances_", None)
    if values is None:
        coef = getattr(model, "coef_", None)
        if coef is None:
            return None
        values = np.abs(np.atleast_2d(coef)).mean(axis=0)
    if len(values) != len(features):
        return None
    series = pd.Series(values, index=features, dtype=float)
    total = series.sum()
    return series / total if total > 0 else None


def threshold_gates(metrics: dict[str, Any], gates: GatesConfig) -> list[dict[str, Any]]:
    out = []
    for metric, bound in sorted(gates.thresholds.items()):
        value = metrics.get(metric)
        parts = []
        if bound.min is not None:
            parts.append(f">= {bound.min:g}")
        if bound.max is not None:
            parts.append(f"<= {bound.max:g}")
        name = f"{metric} {' and '.join(parts)}"
        if value is None:
            result, details = "error", f"{metric} could not be computed for this model"
        else:
            ok = (bound.min is None or value >= bound.min) and (
                bound.max is None or value <= bound.max
            )
            result, details = ("pass" if ok else "fail"), f"{metric} = {value:.6g}"
        out.append(
            {
                "kind": "threshold",
                "name": name,
                "metric": metric,
                "value": value,
                "threshold": bound.model_dump(exclude_none=True),
                "result": result,
                "blocking": True,
                "details": details,
            }
        )
    return out


def champion_metric(cfg: PipelineConfig) -> ChampionConfig:
    return cfg.gates.champion or ChampionConfig(metric=PRIMARY_METRIC[cfg.task], tolerance=0.0)


def champion_gate(
    cfg: PipelineConfig,
    challenger: dict[str, Any],
    champion: dict[str, Any] | None,
    champion_version: str | None,
    basis: str,
) -> dict[str, Any]:
    """The challenger may be worse than the champion by at most the tolerance."""
    spec = champion_metric(cfg)
    metric, tol = spec.metric, spec.tolerance
    gate: dict[str, Any] = {
        "kind": "champion",
        "name": f"not worse than production on {metric} by more than {tol:g}",
        "metric": metric,
        "value": challenger.get(metric),
        "tolerance": tol,
        "champion_version": champion_version,
        "champion_value": None,
        "basis": basis,
        "blocking": True,
    }
    if champion is None:
        gate.update(
            result="no_champion",
            blocking=False,
            details="no model in production yet: nothing to compare with",
        )
        return gate
    ours, theirs = challenger.get(metric), champion.get(metric)
    gate["champion_value"] = theirs
    if ours is None or theirs is None:
        gate.update(result="error", details=f"{metric} is missing for the challenger or champion")
        return gate
    higher_better = METRICS[cfg.task][metric] == "max"
    delta = ours - theirs if higher_better else theirs - ours  # > 0: challenger better
    gate["delta"] = float(f"{delta:.12g}")
    ok = gate["delta"] >= -tol  # rounded: 0.89 vs 0.90 is exactly 0.01 worse, not 0.0100...09
    gate.update(
        result="pass" if ok else "fail",
        details=f"challenger {metric} = {ours:.6g}, production ({champion_version}) = {theirs:.6g}",
    )
    return gate


def select_candidate(cfg: PipelineConfig, outcomes: dict[str, dict[str, Any]]) -> str | None:
    """The best candidate whose model verdict passed, on the selection metric (ties: the first
    listed); None when no candidate passed."""
    metric = cfg.selection_metric()
    higher_better = METRICS[cfg.task][metric] == "max"
    best: tuple[float, int] | None = None
    chosen = None
    for order, (name, outcome) in enumerate(outcomes.items()):
        if not outcome["verdict"]["passed"]:
            continue
        value = outcome["metrics"].get(metric)
        value = float("-inf") if value is None else (value if higher_better else -value)
        key = (value, -order)
        if best is None or key > best:
            best, chosen = key, name
    return chosen
