"""The preprocessing that travels with the model: a scikit-learn Pipeline built from the column
roles around a bare estimator, so a published model takes raw rows.

- numeric: passed through where the estimator takes NaN (HistGradientBoosting, forests, trees),
  else imputed with the median; scaled for linear models, SVMs, neighbours and neural networks;
- categorical and boolean: text, missing as NaN, then ordinal codes for an estimator with native
  categorical support (HistGradientBoosting: unknown and missing categories become NaN, which it
  treats as missing), else one-hot with unknown and rare categories folded together;
- datetime: calendar features (year, month, day, weekday, day of year, hour when the data has
  times, and days since 1970 for trends).

A Pipeline the user gives is used as given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mlcd.columns.roles import as_text, of_role

# One-hot: at most this many columns per categorical; rarer categories share one.
ONE_HOT_MAX = 32
_SCALED_MODULES = (
    "sklearn.linear_model",
    "sklearn.svm",
    "sklearn.neighbors",
    "sklearn.neural_network",
)


def is_pipeline(estimator: Any) -> bool:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    return isinstance(estimator, Pipeline | ColumnTransformer)


def _takes_nan(estimator: Any) -> bool:
    try:
        return bool(estimator.__sklearn_tags__().input_tags.allow_nan)
    except AttributeError:
        return False


def _native_categories(estimator: Any) -> bool:
    return "categorical_features" in estimator.get_params(deep=False) and type(
        estimator
    ).__name__.startswith("HistGradientBoosting")


def wrap(estimator: Any, roles: Mapping[str, Mapping[str, str]]) -> Any:
    """``estimator`` behind the preprocessing its roles call for: a Pipeline of a
    ColumnTransformer ("prepare") and the estimator ("model"). A Pipeline is returned as is."""
    if is_pipeline(estimator):
        return estimator
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import (
        FunctionTransformer,
        OneHotEncoder,
        OrdinalEncoder,
        StandardScaler,
    )

    from mlcd.columns.calendar import CalendarFeatures

    takes_nan = _takes_nan(estimator)
    scaled = type(estimator).__module__.startswith(_SCALED_MODULES)
    numeric = of_role(roles, "numeric")
    categorical = of_role(roles, "categorical", "boolean")
    dates = of_role(roles, "datetime")
    text = FunctionTransformer(as_text, feature_names_out="one-to-one")
    steps: list[tuple[str, Any, list[str]]] = []

    def numbers(*first: Any) -> Any:
        tail = [] if takes_nan else [SimpleImputer(strategy="median", keep_empty_features=True)]
        return make_pipeline(*first, *tail, *([StandardScaler()] if scaled else []))

    if numeric:
        steps.append(("numeric", "passthrough" if takes_nan and not scaled else numbers(), numeric))
    native = _native_categories(estimator) and categorical
    if categorical:
        if native:
            encoder = OrdinalEncoder(
                handle_unknown="use_encoded_value",
                unknown_value=np.nan,
                encoded_missing_value=np.nan,
                max_categories=min(255, int(estimator.get_params()["max_bins"])),
            )
        else:
            encoder = OneHotEncoder(
                handle_unknown="infrequent_if_exist",
                max_categories=ONE_HOT_MAX,
                sparse_output=False,
            )
        steps.append(("categorical", make_pipeline(text, encoder), categorical))
    if dates:
        steps.append(("datetime", numbers(CalendarFeatures()), dates))
    prepare = ColumnTransformer(steps, remainder="drop", verbose_feature_names_out=False)
    prepare.set_output(transform="pandas")
    if native:
        default = estimator.get_params()["categorical_features"]
        if default in (None, "from_dtype", "warn"):
            estimator = estimator.set_params(categorical_features=categorical)
    return Pipeline([("prepare", prepare), ("model", estimator)])


def final_step(model: Any) -> Any:
    """The estimator at the end of a Pipeline (the model itself otherwise)."""
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def prepared_names(model: Any) -> list[str] | None:
    """The column names the final estimator of a Pipeline sees, where they are known."""
    steps = getattr(model, "steps", None)
    if not steps or len(steps) < 2:
        return None
    try:
        return [str(n) for n in model[:-1].get_feature_names_out()]
    except Exception:
        return None
