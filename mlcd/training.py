"""Fitting an estimator, and (de)serialising it safely."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from mlcd import columns
from mlcd.config import ModelConfig
from mlcd.config.estimator import build_estimator
from mlcd.errors import DataError
from mlcd.storage.integrity import verified

# Rows of the trial fit that checks, at extraction, that a user's own Pipeline takes the data.
TRIAL_ROWS = 200


def build(spec: ModelConfig, roles: Mapping[str, Mapping[str, str]] | None) -> Any:
    """The estimator of ``spec``: a bare estimator behind the preprocessing its column roles
    call for (``columns.wrap``), a Pipeline as given."""
    estimator = build_estimator(spec)
    return estimator if roles is None else columns.wrap(estimator, roles)


def fit(
    spec: ModelConfig,
    x_train: pd.DataFrame,
    y_train: pd.Series,
    roles: Mapping[str, Mapping[str, str]] | None = None,
) -> Any:
    estimator = build(spec, roles)
    estimator.fit(x_train, y_train)
    return estimator


def check_fits(
    spec: ModelConfig,
    roles: Mapping[str, Mapping[str, str]],
    frame: pd.DataFrame,
    target: str,
    where: str = "model",
) -> None:
    """Fit a user's own Pipeline on a few rows, so that a column it cannot take fails at
    extraction, naming the column, instead of as a traceback at training. A bare estimator is
    not tried: mlcd's preprocessing takes every feature role."""
    estimator = build_estimator(spec, where)
    if not columns.is_pipeline(estimator):
        return
    features = columns.features(roles)
    check_columns(estimator, features, where)
    # each class at least once (a classifier refuses one class), then the first rows
    rows = pd.concat([frame.drop_duplicates(target).head(50), frame.head(TRIAL_ROWS)])
    rows = rows[rows[target].notna()]
    try:
        estimator.fit(rows[features], rows[target])  # a Pipeline is used as given
    except Exception as exc:
        text = " ".join(str(exc).split())
        found = re.search(r"could not convert string to float: '([^']*)'", text)
        if found is None:
            return  # not a column it cannot take: training reports it, with the full data
        value = found.group(1)
        column = next((c for c in features if (rows[c].astype(str) == value).any()), None)
        raise DataError(
            f"column {column or '?'!r} holds text ({value!r}) that {where}.estimator "
            f"({spec.estimator}, used as given) does not encode; encode it in the Pipeline, "
            "give a bare estimator so that mlcd builds the preprocessing, or set "
            f"columns.{column or '<column>'}: dropped"
        ) from None


def check_columns(estimator: Any, features: list[str], where: str = "model") -> None:
    """Every column a ColumnTransformer of the user's Pipeline names must be a feature (a
    ``make_column_selector`` picks from the features, so it cannot miss): DataError naming the
    column and the step otherwise."""
    from sklearn.compose import ColumnTransformer

    def walk(node: Any, path: str) -> None:
        if isinstance(node, ColumnTransformer):
            for name, step, cols in node.transformers:
                chosen = [cols] if isinstance(cols, str) else cols
                if isinstance(chosen, list | tuple) and all(isinstance(c, str) for c in chosen):
                    missing = [c for c in chosen if c not in features]
                    if missing:
                        raise DataError(
                            f"{path}: step {name!r} names column(s) "
                            f"{', '.join(map(repr, missing))} that the model does not get: "
                            f"the features are {', '.join(features)[:300]}; fix the name, or "
                            "set its role under columns: (ids, constants and free text are "
                            "left out)"
                        )
                walk(step, path)
        for _, step in getattr(node, "steps", []) or []:
            walk(step, path)

    walk(estimator, f"{where}.estimator")


def dump(estimator: Any) -> bytes:
    """The model's joblib bytes, the same for equal models whichever process fitted them.

    Pickle writes a string seen before as a reference to it only when it is the same object, so
    the bytes followed how a process happened to share equal strings: the same fit gave other
    bytes in a process that had run other tasks first (a ColumnTransformer's "remainder" key).
    This pickler treats equal strings as one; joblib.load reads the file as any other."""
    from joblib.numpy_pickle import NumpyPickler

    class Pickler(NumpyPickler):
        def __init__(self, handle: Any) -> None:
            super().__init__(handle)
            self.strings: dict[str, str] = {}

        def save(self, obj: Any, save_persistent_id: bool = True) -> None:
            if type(obj) is str:
                obj = self.strings.setdefault(obj, obj)
            super().save(obj)

    buf = io.BytesIO()
    Pickler(buf).dump(estimator)
    return buf.getvalue()


def load_verified(data: bytes, expected_sha256: str, source: str) -> Any:
    """Unpickle a model only after its bytes match the recorded digest (pickle runs code)."""
    import joblib

    verified(
        data,
        expected_sha256,
        lambda actual: (
            f"model {source!r} does not match its recorded sha256 "
            f"(expected {expected_sha256[:12]}, got {actual[:12]}): it was changed or corrupted, "
            "so mlcd refuses to load it. Restore it from the published version or retrain"
        ),
    )
    return joblib.load(io.BytesIO(data))


def predict(estimator: Any, x: pd.DataFrame) -> tuple[Any, Any]:
    """Predictions and, where the estimator has them, class probabilities."""
    y_pred = estimator.predict(x)
    proba = estimator.predict_proba(x) if hasattr(estimator, "predict_proba") else None
    return y_pred, proba


def classes(estimator: Any) -> list[Any] | None:
    """A classifier's classes, in the order of its probability columns (None: a regressor)."""
    found = getattr(estimator, "classes_", None)
    return None if found is None else list(found)
