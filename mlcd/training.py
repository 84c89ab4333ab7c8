"""Fitting an estimator, and (de)serialising it safely."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd

from mlcd.config import ModelConfig
from mlcd.config.estimator import build_estimator
from mlcd.storage.integrity import verified


def fit(spec: ModelConfig, x_train: pd.DataFrame, y_train: pd.Series) -> Any:
    estimator = build_estimator(spec)
    estimator.fit(x_train, y_train)
    return estimator


def dump(estimator: Any) -> bytes:
    import joblib

    buf = io.BytesIO()
    joblib.dump(estimator, buf)
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
