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
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from mlcd import columns, data, metrics
from mlcd.catalogue import SIZE_ONLY_CHECKS, SUITE_CHECKS
from mlcd.config import PipelineConfig, SuiteConfig
from mlcd.gates.importance import model_importance, one_native_thread, threads_only
from mlcd.gates.verdicts import (
    max_ratios,
    not_run,
    not_run_gates,
    summarise,
    verdict_from_result,
)


def _label_type(cfg: PipelineConfig, y: pd.Series) -> str:
    if cfg.task == "regression":
        return "regression"
    return "binary" if y.nunique() <= 2 else "multiclass"


def dataset(
    frame: pd.DataFrame,
    cfg: PipelineConfig,
    label_type: str,
    roles: Mapping[str, Mapping[str, str]] | None = None,
) -> Any:
    """A deepchecks Dataset of a pipeline frame, told the column roles: the model's features
    (all but the date deepchecks gets as ``datetime_name``), the categoricals, the first id
    column as the index and the split's date column as the datetime."""
    import mlcd.gates.compat  # noqa: F401, I001  (first: mends deepchecks for the current stack)
    from deepchecks.tabular import Dataset

    roles = roles if roles is not None else columns.infer_roles(frame, cfg.target, cfg.columns)
    ids = [c for c in columns.of_role(roles, "id") if c in frame.columns]
    when = data.date_column(cfg, roles)
    when = when if when in frame.columns else None
    features = [c for c in columns.features(roles) if c != when and c in frame.columns]
    cat = [c for c in columns.of_role(roles, "categorical", "boolean") if c in features]
    kept = [*features, *ids[:1], *([when] if when else []), cfg.target]
    return Dataset(
        frame[kept],
        label=cfg.target,
        features=features,
        cat_features=cat,
        label_type=label_type,
        index_name=ids[0] if ids else None,
        datetime_name=when,
        set_index_from_dataframe_index=False,
        set_datetime_from_dataframe_index=False,
    )


class WithWithheld:
    """The model as deepchecks calls it: deepchecks passes only its feature columns, so the
    date it holds as ``datetime_name`` is added back, by row, from the frames it came from."""

    def __init__(self, model: Any, withheld: pd.DataFrame, features: list[str]) -> None:
        self.model = model
        self.withheld = withheld
        self.features = features
        self.classes_ = getattr(model, "classes_", None)
        if hasattr(model, "predict_proba"):
            self.predict_proba = self._predict_proba

    def _full(self, x: pd.DataFrame) -> pd.DataFrame:
        return x.join(self.withheld.loc[x.index])[self.features]

    def predict(self, x: pd.DataFrame) -> Any:
        return self.model.predict(self._full(x))

    def _predict_proba(self, x: pd.DataFrame) -> Any:
        return self.model.predict_proba(self._full(x))


def _for_deepchecks(
    model: Any, cfg: PipelineConfig, roles: Mapping[str, Mapping[str, str]], *frames: Any
) -> Any:
    when = data.date_column(cfg, roles)
    features = columns.features(roles)
    if model is None or when is None or when not in features:
        return model
    withheld = pd.concat([f[[when]] for f in frames if f is not None])
    return WithWithheld(model, withheld, features)


def _build_suite(
    name: str, section: SuiteConfig, cfg: PipelineConfig, rows: int, classes: list[Any] | None
) -> Any:
    """The default deepchecks suite without the checks that do not run, its ratio-judged checks
    at mlcd's ratios and its baseline comparison on the selection metric."""
    import mlcd.gates.compat  # noqa: F401, I001  (first: mends deepchecks for the current stack)
    import deepchecks
    from deepchecks.tabular import suites

    deepchecks.set_verbosity(logging.WARNING)  # no progress bars on the terminal
    factory: Callable[..., Any] = {
        "data_integrity": suites.data_integrity,
        "train_test": suites.train_test_validation,
        "model_evaluation": suites.model_evaluation,
    }[name]
    seed = cfg.split.seed
    kwargs: dict[str, Any] = {"random_state": seed}
    if section.n_samples is not None:
        kwargs["n_samples"] = section.n_samples
    suite = factory(**kwargs)
    ratios = max_ratios(name, section)
    for index, check in list(suite.checks.items()):
        check_name = type(check).__name__
        if not_run(name, check_name, section, rows) is not None:
            suite.remove(index)
        elif check_name == "OutlierSampleDetection":
            # deepchecks aborts it with an error when a timing of its first rows projects more
            # than 10 s: a verdict that followed the machine's load (it failed beside
            # ValidateSplit on 2 cores). Its work is bounded by its n_samples (5,000 rows).
            check.timeout = 0
        elif check_name in ratios:
            check.clean_conditions()
            ratio = ratios[check_name]
            if check_name == "ConflictingLabels":
                check.add_condition_ratio_of_conflicting_labels_less_or_equal(max_ratio=ratio)
            else:
                check.add_condition_duplicates_ratio_less_or_equal(max_ratio=ratio)
        elif check_name == "SimpleModelComparison":
            from deepchecks.tabular.checks import SimpleModelComparison

            metric = cfg.selection_metric()
            scorer = metrics.scorer(
                cfg.task, metric, classes, cfg.evaluation.average, cfg.evaluation.positive_label
            )
            suite.remove(index)
            suite.add(
                SimpleModelComparison(
                    scorers={metric: scorer}, **kwargs
                ).add_condition_gain_greater_than()
            )
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
    roles: Mapping[str, Mapping[str, str]] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[dict[str, Any], bytes]:
    """Run one deepchecks suite; return its verdict and its HTML report. ``progress(done,
    total, check)`` is called as each check starts (the Luigi web UI shows it).

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
        if roles is None:
            roles = columns.infer_roles(train, cfg.target, cfg.columns)
        classes = list(getattr(model, "classes_", [])) or None
        suite = _build_suite(suite_name, section, cfg, rows, classes)
        if progress is not None:
            _report_progress(suite, progress)
        results = []
        for checks, rows_train, rows_test, with_model in _runs(
            suite, section.n_samples, cfg, train, test, model
        ):
            if not checks.checks:
                continue
            kwargs: dict[str, Any] = {"with_display": False}
            train_ds = dataset(rows_train, cfg, label_type, roles)
            test_ds = dataset(rows_test, cfg, label_type, roles) if rows_test is not None else None
            if with_model is not None:
                kwargs["model"] = _for_deepchecks(with_model, cfg, roles, rows_train, rows_test)
                importance = model_importance(
                    checks,
                    with_model,
                    rows_test if rows_test is not None else rows_train,
                    cfg,
                    columns.features(roles),
                )
                if importance is not None:  # over deepchecks' features: not its datetime
                    shown = importance.reindex(train_ds.features).fillna(0.0)
                    if shown.sum() > 0:
                        kwargs["feature_importance"] = shown / shown.sum()
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


def _report_progress(suite: Any, progress: Callable[[int, int, str], None]) -> None:
    """Call ``progress`` when each check of ``suite`` starts (once per check: a single-dataset
    check runs on train, then on test)."""
    checks = list(suite.checks.values())
    started: set[int] = set()

    for index, check in enumerate(checks):
        logic = check.run_logic

        def announced(*args: Any, _index: int = index, _logic: Any = logic, **kwargs: Any) -> Any:
            if _index not in started:
                started.add(_index)
                progress(len(started) - 1, len(checks), type(checks[_index]).__name__)
            return _logic(*args, **kwargs)

        check.run_logic = announced


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
