"""deepchecks 0.19.1 (its last release) on numpy 2, pandas 3, scikit-learn 1.6-1.9, setuptools 81+.

Importing this module imports ``deepchecks.tabular.suites`` with eight mends, each guarded so that
it does nothing on the stack deepchecks was released for (numpy 1.26, pandas 2, scikit-learn 1.5,
setuptools < 81). Every mlcd module that imports deepchecks imports this first. Outside deepchecks
it only adds back names that were removed (``np.Inf``/``np.NaN``/``np.NINF``,
``DataFrame.applymap``). Why a mend and not a separate environment: docs/decisions.md;
tests/test_deepchecks_stack.py checks that every verdict matches the old stack's.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import sklearn.metrics
import sklearn.utils

PANDAS_3 = int(pd.__version__.split(".")[0]) >= 3

# 1. setuptools >= 81 has no pkg_resources; deepchecks reads only parse_version and
#    working_set[].key from it.
if importlib.util.find_spec("pkg_resources") is None:
    from packaging.version import parse as _parse_version

    _shim = types.ModuleType("pkg_resources")
    _shim.parse_version = _parse_version  # type: ignore[attr-defined]
    _shim.working_set = [  # type: ignore[attr-defined]
        types.SimpleNamespace(key=d.metadata["Name"].lower())
        for d in importlib.metadata.distributions()
        if d.metadata["Name"]
    ]
    sys.modules["pkg_resources"] = _shim

# 2. numpy 2 removed these aliases; deepchecks uses them in default arguments and check bodies.
for _name, _value in (("Inf", np.inf), ("NaN", np.nan), ("NINF", -np.inf)):
    if not hasattr(np, _name):
        setattr(np, _name, _value)

# 6. pandas 3 removed DataFrame.applymap (TrainTestSamplesMix); DataFrame.map is the same method.
if not hasattr(pd.DataFrame, "applymap"):
    setattr(pd.DataFrame, "applymap", pd.DataFrame.map)  # noqa: B010


@contextlib.contextmanager
def _old_sklearn_names() -> Iterator[None]:
    """4, 5: what deepchecks binds at import by ``from sklearn.metrics import ...``, as
    scikit-learn 1.5 had it; scikit-learn itself is restored afterwards."""
    get_scorer, mse = sklearn.metrics.get_scorer, sklearn.metrics.mean_squared_error
    if "max_error" not in sklearn.metrics.get_scorer_names():  # 'neg_max_error' since 1.8
        sklearn.metrics.get_scorer = functools.wraps(get_scorer)(
            lambda s: get_scorer("neg_max_error" if s == "max_error" else s)
        )
    if "squared" not in inspect.signature(mse).parameters:  # squared= is gone since 1.6
        rmse = sklearn.metrics.root_mean_squared_error
        sklearn.metrics.mean_squared_error = functools.wraps(mse)(
            lambda *a, squared=True, **k: (mse if squared else rmse)(*a, **k)
        )
    try:
        yield
    finally:
        sklearn.metrics.get_scorer, sklearn.metrics.mean_squared_error = get_scorer, mse


with _old_sklearn_names():
    import deepchecks.tabular.suites  # noqa: F401  (imports every tabular check module)


def _module(name: str) -> Any:
    return importlib.import_module("deepchecks." + name)


# 3. numpy 2.4 removed quantile/percentile(interpolation=): the two check modules that pass it get
#    a numpy whose quantile and percentile still take it (as method=).
if "interpolation" not in inspect.signature(np.quantile).parameters:

    def _with_interpolation(f: Any) -> Any:
        @functools.wraps(f)
        def call(*args: Any, interpolation: str | None = None, **kwargs: Any) -> Any:
            return f(*args, **kwargs, **({"method": interpolation} if interpolation else {}))

        return staticmethod(call)

    class _NumpyWithInterpolation:
        quantile = _with_interpolation(np.quantile)
        percentile = _with_interpolation(np.percentile)

        def __getattr__(self, name: str) -> Any:
            return getattr(np, name)

    for _checks in ("outlier_sample_detection", "string_length_out_of_bounds"):
        _module(f"tabular.checks.data_integrity.{_checks}").np = _NumpyWithInterpolation()

# 7. scikit-learn >= 1.8 asks every estimator for __sklearn_tags__; deepchecks' own model wrappers
#    have none. They get tags that say what scikit-learn 1.5 read from them.
if hasattr(sklearn.utils, "Tags"):

    def _tags(self: Any) -> Any:
        return sklearn.utils.Tags(
            estimator_type=getattr(self, "_estimator_type", None),
            target_tags=sklearn.utils.TargetTags(required=True),
        )

    _simple = _module("utils.simple_models")
    for _cls in (
        _module("tabular.context")._DummyModel,
        _simple.PerfectModel,
        _simple.RandomModel,
        _simple.ClassificationUniformModel,
        _simple.RegressionUniformModel,
        _module("tabular.checks.model_evaluation.boosting_overfit").PartialBoostingModel,
    ):
        if not hasattr(_cls, "__sklearn_tags__"):
            _cls.__sklearn_tags__ = _tags
    _scorer = _module("tabular.metric_utils.scorers").DeepcheckScorer
    _wrap = _scorer._wrap_classification_model  # returns an instance of a class local to it

    @functools.wraps(_wrap)
    def _wrap_tagged(self: Any, *args: Any, **kwargs: Any) -> Any:
        wrapped = _wrap(self, *args, **kwargs)
        if not hasattr(wrapped, "__sklearn_tags__"):
            type(wrapped).__sklearn_tags__ = _tags
        return wrapped

    _scorer._wrap_classification_model = _wrap_tagged

# 8a. pandas 3's stack() keeps the NaN cells pandas 2 dropped, so FeatureFeatureCorrelation's
#     condition counted every pair as correlated (PASS became FAIL): its condition is given a
#     frame whose stack() drops them.
if PANDAS_3:

    class _StackDropsNaN(pd.DataFrame):
        @property
        def _constructor(self) -> Any:
            return _StackDropsNaN

        def stack(self, *args: Any, **kwargs: Any) -> Any:
            return pd.DataFrame(self).stack(*args, **kwargs).dropna()

    _ffc = _module(
        "tabular.checks.data_integrity.feature_feature_correlation"
    ).FeatureFeatureCorrelation
    _add_pairs = _ffc.add_condition_max_number_of_pairs_above_threshold

    @functools.wraps(_add_pairs)
    def _add_pairs_dropping_nan(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = _add_pairs(self, *args, **kwargs)
        condition = next(reversed(self._conditions.values()))
        judge = condition.function
        condition.function = functools.wraps(judge)(
            lambda result, **kw: judge(_StackDropsNaN(result), **kw)
        )
        return out

    _ffc.add_condition_max_number_of_pairs_above_threshold = _add_pairs_dropping_nan

# 8b. pandas 3 (copy-on-write) ignores the chained assignment out[col][idx] = ... that writes the
#     category names into WeakSegmentsPerformance's segment ranges: the same method, with .at.
if PANDAS_3:

    def _segments_value(self: Any, weak_segments_df: Any, cat_features: Any, avg_score: Any) -> Any:
        out = weak_segments_df.copy()
        for idx, segment in weak_segments_df.iterrows():
            for feature in ("Feature1", "Feature2"):
                if segment[feature] in cat_features:
                    out.at[idx, f"{feature} Range"] = self._format_partition_vec_for_display(
                        segment[f"{feature} Range"], segment[feature], None
                    )[0]
        return {"weak_segments_list": out, "avg_score": avg_score}

    _module(
        "utils.abstracts.weak_segment_abstract"
    ).WeakSegmentAbstract._generate_check_result_value = _segments_value
