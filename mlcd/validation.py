"""Gates: deepchecks suites, metric thresholds and the comparison with production.

Every gate becomes one entry of a verdict (a plain dict written as JSON): what was checked, its
value, its threshold, its result and whether it blocks. A verdict passes when no blocking gate
failed. deepchecks' own ``passed()`` ignores checks that raised; here a check that raises fails
its gate unless the config lists it as known-broken, and a check that does not apply to the
data or task type is reported as skipped.

What it costs (docs/performance.md, docs/gates.md): with ``n_samples`` the frames are sampled
once, to the rows each check would have drawn itself (``DatasetsSizeComparison`` still counts all
rows); checks that cannot block are not run when listed as known-broken, nor, on large data, when
costly (``COSTLY_CHECKS``), and each of those appears in the verdict with the reason; the feature
importance deepchecks needs is computed the same way on every run.
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


# Advisory checks that take a second or more even on a 10,000-row sample (UnusedFeatures: the
# permutation importance it needs when the model has none of its own), as measured by
# benchmarks/validation_cost.py. On data of more than ``costly_checks_max_rows`` rows they are
# not run, unless they block.
COSTLY_CHECKS: dict[str, tuple[str, ...]] = {
    "data_integrity": ("OutlierSampleDetection", "FeatureLabelCorrelation"),
    "train_test": ("FeatureLabelCorrelationChange", "MultivariateDrift"),
    "model_evaluation": ("WeakSegmentsPerformance", "UnusedFeatures"),
}
# Checks that read only the number of rows of train and test: with n_samples they still see all
# of it (their verdict would change on a sample), the others see the sampled rows.
SIZE_ONLY_CHECKS = ("DatasetsSizeComparison",)
# The checks of model_evaluation that read the model's feature importance.
NEEDS_IMPORTANCE = ("UnusedFeatures", "WeakSegmentsPerformance")
# Rows and repeats of the permutation importance computed for models with no importances of their
# own: deepchecks' own run (10,000 rows x 30 repeats) took 9-36 s here and is cut short by a
# wall-time estimate, which made UnusedFeatures raise (a blocking error) on a loaded machine.
PERMUTATION_ROWS = 1_000
PERMUTATION_REPEATS = 5


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


def blocking_checks(suite_name: str, section: SuiteConfig) -> frozenset[str]:
    return frozenset(
        section.blocking if section.blocking is not None else DEFAULT_BLOCKING[suite_name]
    )


def not_run(
    suite_name: str, check: str, section: SuiteConfig, rows: int | None
) -> tuple[str, str] | None:
    """Why ``check`` is left out of the suite's run, as (result, details); None when it runs.
    Only ``skip`` leaves out a blocking check."""
    where = f"validation.{suite_name}"
    if check in section.skip:
        return "skipped", f"skipped by {where}.skip"
    if check in blocking_checks(suite_name, section):
        return None
    if check in section.known_broken:
        return "known_broken", f"not run: listed under {where}.known_broken"
    limit = section.costly_checks_max_rows
    if check in COSTLY_CHECKS[suite_name] and limit is not None and (rows or 0) > limit:
        return "skipped", (
            f"not run: a costly advisory check, and the data has {rows} rows, more than "
            f"{where}.costly_checks_max_rows ({limit}); raise it, or set it to null, to run it"
        )
    return None


def _build_suite(name: str, section: SuiteConfig, seed: int, rows: int) -> Any:
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
        if not_run(name, type(check).__name__, section, rows) is not None:
            suite.remove(index)
    return suite


def verdict_from_result(
    suite_name: str, result: Any, section: SuiteConfig, rows: int | None = None
) -> dict[str, Any]:
    """Turn a deepchecks SuiteResult into verdict gates; each check of the suite that did not run
    becomes one gate saying why (``rows``: the size of the validated data)."""
    from deepchecks.core.check_result import CheckFailure, CheckResult

    blocking = blocking_checks(suite_name, section)
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
    ran = {type(res.check).__name__ for res in result.results}
    return summarise(suite_name, gates + not_run_gates(suite_name, section, ran, rows))


def not_run_gates(
    suite_name: str, section: SuiteConfig, ran: set[str], rows: int | None
) -> list[dict[str, Any]]:
    """One gate for each check of the suite that is not among those that ran, saying why."""
    gates = []
    for name in SUITE_CHECKS[suite_name]:
        if name in ran:
            continue
        outcome, details = not_run(suite_name, name, section, rows) or ("skipped", "not run")
        gates.append(
            {
                "kind": "deepchecks",
                "suite": suite_name,
                "check": name,
                "header": name,
                "condition": None,
                "result": outcome,
                "blocking": False,
                "details": details,
            }
        )
    return gates


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
) -> tuple[dict[str, Any], bytes]:
    """Run one deepchecks suite; return its verdict and its HTML report.

    No precomputed predictions are passed: deepchecks 0.19.1 reads ``y_pred_*``/``y_proba_*``
    only when it has no model, and predicts with the model it is given (on the sampled rows,
    which is cheap), so predicting the whole train and test sets beforehand was wasted work.
    """
    section: SuiteConfig = getattr(cfg.validation, suite_name)
    if not section.enabled:
        verdict = summarise(suite_name, [])
        verdict["disabled"] = True
        note = (
            f"<html><body><p>validation.{suite_name} is disabled in the config.</p></body></html>"
        )
        return verdict, note.encode()
    rows = len(train) + (len(test) if test is not None else 0)
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        # deepchecks 0.19.1 imports pkg_resources, calls APIs that scikit-learn 1.5 deprecates
        # and casts NaNs in its plots: noise on the terminal, not news. The report and the
        # verdict carry the findings.
        warnings.simplefilter("ignore")
        stack.enter_context(_threads_only())
        stack.enter_context(_one_native_thread())
        from deepchecks.core.suite import SuiteResult

        label_type = _label_type(cfg, train[cfg.target])
        suite = _build_suite(suite_name, section, cfg.split.seed, rows)
        results = []
        for checks, rows_train, rows_test, with_model in _runs(
            suite, section.n_samples, cfg, train, test, model
        ):
            if not checks.checks:
                continue
            kwargs: dict[str, Any] = {"with_display": False}
            if with_model is not None:
                kwargs["model"] = with_model
                importance = model_importance(
                    checks, with_model, rows_test if rows_test is not None else rows_train, cfg
                )
                if importance is not None:
                    kwargs["feature_importance"] = importance
            train_ds = dataset(rows_train, cfg, label_type)
            test_ds = dataset(rows_test, cfg, label_type) if rows_test is not None else None
            results.extend(checks.run(train_ds, test_ds, **kwargs).results)
        order = {name: i for i, name in enumerate(SUITE_CHECKS[suite_name])}
        results.sort(key=lambda res: order[type(res.check).__name__])  # stable: train, then test
        ran = {type(res.check).__name__ for res in results}
        notes = [
            f"{g['check']}: {g['details']}" for g in not_run_gates(suite_name, section, ran, rows)
        ]
        if section.n_samples is not None:
            counted = [name for name in SIZE_ONLY_CHECKS if name in ran]
            sizes = f"{len(train)} train" + (f" and {len(test)} test" if test is not None else "")
            notes.insert(
                0,
                f"The checks sampled at most {section.n_samples} of the {sizes} rows "
                f"(validation.{suite_name}.n_samples, seed {cfg.split.seed})"
                + (f"; {', '.join(counted)} counted all of them." if counted else "."),
            )
        result = SuiteResult(suite.name, results, extra_info=notes)
        verdict = verdict_from_result(suite_name, result, section, rows)
        html = render_html(result)
    return verdict, html


def _runs(
    suite: Any,
    n: int | None,
    cfg: PipelineConfig,
    train: pd.DataFrame,
    test: pd.DataFrame | None,
    model: Any,
) -> list[tuple[Any, pd.DataFrame, pd.DataFrame | None, Any]]:
    """The suite's checks as (suite, train, test, model) runs: all of them on the frames, or
    when a frame has more than ``n`` rows (``n_samples``), the checks on the sampled rows and the
    checks that read the sizes on the label columns."""
    from deepchecks.tabular import Suite

    seed = cfg.split.seed
    if n is None or max(len(train), len(test) if test is not None else 0) <= n:
        return [(suite, train, test, model)]
    runs = []
    sizes = [i for i, c in suite.checks.items() if type(c).__name__ in SIZE_ONLY_CHECKS]
    if sizes:
        label = [cfg.target]
        whole = Suite(suite.name, *(suite.checks[i] for i in sizes))
        runs.append((whole, train[label], test[label] if test is not None else None, None))
        for index in sizes:
            suite.remove(index)
    if suite.checks:
        sampled_test = sample_rows(test, n, seed) if test is not None else None
        runs.insert(0, (suite, sample_rows(train, n, seed), sampled_test, model))
    return runs


def sample_rows(frame: pd.DataFrame, n_samples: int, seed: int) -> pd.DataFrame:
    """The ``n_samples`` rows that a deepchecks check draws for itself
    (``Dataset.sample(n_samples, random_state=seed)``), drawn once: the checks that sample first,
    as every blocking one but DatasetsSizeComparison does, see the same rows (in another order),
    and deepchecks never copies, nor the model predicts, the whole frame."""
    if len(frame) <= n_samples:
        return frame
    return frame.sample(n_samples, random_state=seed)


def model_importance(
    suite: Any, model: Any, frame: pd.DataFrame, cfg: PipelineConfig
) -> pd.Series | None:
    """The feature importance to give deepchecks: the model's own, else (only when a check of
    ``suite`` reads it) a permutation importance that is the same on every run."""
    features = [c for c in frame.columns if c != cfg.target]
    importance = feature_importance(model, features)
    if importance is None and any(
        type(check).__name__ in NEEDS_IMPORTANCE for check in suite.checks.values()
    ):
        importance = permutation_importance(model, frame, cfg.target, cfg.split.seed)
    return importance


def _threads_only() -> Any:
    """deepchecks' own parallel work (permutation importance, n_jobs=-1) on threads: loky worker
    processes started inside a forked Luigi worker keep it from exiting (docs/decisions.md)."""
    import joblib

    return joblib.parallel_config(backend="threading")


def _one_native_thread() -> Any:
    """One OpenMP/BLAS thread for the models the checks call. They predict on samples, and on two
    cores shared with another task OpenMP's threads contend: 20 predictions of 10,000 rows by
    HistGradientBoosting took 7.5 s with the default threads and 1.8 s with one, a
    2,000-row permutation importance 19.8 s and 2.1 s; on 750,000 rows one thread took 6.7-6.8 s
    against 4.3-7.4 s (docs/performance.md). Predictions do not depend on it."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


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


def permutation_importance(
    model: Any, frame: pd.DataFrame, target: str, seed: int
) -> pd.Series | None:
    """Permutation importance on at most PERMUTATION_ROWS rows of ``frame`` (fixed rows and seed:
    the same on every run), normalised to sum to 1; None when no feature matters or the model
    cannot score these rows (deepchecks' checks then report the problem)."""
    import numpy as np
    from sklearn.inspection import permutation_importance as permute

    rows = frame.dropna(subset=[target])
    if len(rows) > PERMUTATION_ROWS:
        rows = rows.sample(PERMUTATION_ROWS, random_state=seed)
    x, y = rows.drop(columns=[target]), rows[target]
    try:
        result = permute(model, x, y, n_repeats=PERMUTATION_REPEATS, random_state=seed)
    except Exception:  # a model that cannot score its own features
        return None
    series = pd.Series(np.clip(result.importances_mean, 0, None), index=x.columns, dtype=float)
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
