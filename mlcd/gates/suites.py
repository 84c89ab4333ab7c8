"""The deepchecks adapter: runs a suite on pipeline frames and turns its result into a verdict.

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

from mlcd.catalogue import SIZE_ONLY_CHECKS, SUITE_CHECKS
from mlcd.config import PipelineConfig, SuiteConfig
from mlcd.gates.importance import model_importance, one_native_thread, threads_only
from mlcd.gates.verdicts import not_run, not_run_gates, summarise, verdict_from_result


def _label_type(cfg: PipelineConfig, y: pd.Series) -> str:
    if cfg.task == "regression":
        return "regression"
    return "binary" if y.nunique() <= 2 else "multiclass"


def dataset(frame: pd.DataFrame, cfg: PipelineConfig, label_type: str) -> Any:
    import mlcd.gates.compat  # noqa: F401, I001  (first: mends deepchecks for the current stack)
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


def _build_suite(name: str, section: SuiteConfig, seed: int, rows: int) -> Any:
    import mlcd.gates.compat  # noqa: F401, I001  (first: mends deepchecks for the current stack)
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
        stack.enter_context(threads_only())
        stack.enter_context(one_native_thread())
        import mlcd.gates.compat  # noqa: F401, I001  (first: mends deepchecks for the current stack)
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
    import mlcd.gates.compat  # noqa: F401, I001  (first: mends deepchecks for the current stack)
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
