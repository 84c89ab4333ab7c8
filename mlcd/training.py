"""Building an estimator from its import path, fitting it, and (de)serialising it safely."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd

from mlcd.config import ModelConfig, import_object
from mlcd.errors import ConfigError, StorageError
from mlcd.fingerprint import sha256_bytes


def _build(value: Any, where: str) -> Any:
    """Build nested specs: a mapping with an 'estimator' key, or a [name, spec] step."""
    if isinstance(value, dict) and "estimator" in value:
        extra = set(value) - {"estimator", "params"}
        if extra:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(sorted(extra))}; an estimator takes "
                "'estimator' and 'params'"
            )
        return build_estimator(ModelConfig.model_validate(value), where, top=False)
    if isinstance(value, list):
        built = [_build(v, f"{where}[{i}]") for i, v in enumerate(value)]
        # A Pipeline's steps and a ColumnTransformer's transformers are tuples.
        return [tuple(v) if isinstance(v, list) else v for v in built]
    return value


def build_estimator(spec: ModelConfig, where: str = "model", top: bool = True) -> Any:
    """An unfitted estimator (or Pipeline) from ``estimator`` import path and ``params``."""
    try:
        cls = import_object(spec.estimator)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"'{where}.estimator': cannot import {spec.estimator!r} ({exc}); give the full import "
            "path of an estimator class, e.g. sklearn.ensemble.RandomForestClassifier"
        ) from None
    if not callable(cls):
        raise ConfigError(f"'{where}.estimator': {spec.estimator!r} is not a class")
    params = {k: _build(v, f"{where}.params.{k}") for k, v in spec.params.items()}
    try:
        estimator = cls(**params)
    except TypeError as exc:
        raise ConfigError(
            f"'{where}.params': {spec.estimator} does not accept them: {exc}"
        ) from None
    # Nested steps may be transformers; the model itself must predict.
    needed = ("fit", "predict") if top else ("fit",)
    if not all(hasattr(estimator, attr) for attr in needed):
        raise ConfigError(
            f"'{where}.estimator': {spec.estimator!r} is not an estimator "
            f"(it has no {' or '.join(needed)} method)"
        )
    validate = getattr(estimator, "_validate_params", None)
    if validate is not None:
        try:
            validate()
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"'{where}.params': {exc}") from None
    return estimator


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

    actual = sha256_bytes(data)
    if actual != expected_sha256:
        raise StorageError(
            f"model {source!r} does not match its recorded sha256 "
            f"(expected {expected_sha256[:12]}, got {actual[:12]}): it was changed or corrupted, "
            "so mlcd refuses to load it. "
            "Restore it from the published version or retrain"
        )
    return joblib.load(io.BytesIO(data))


def predict(estimator: Any, x: pd.DataFrame) -> tuple[Any, Any]:
    """Predictions and, where the estimator has them, class probabilities."""
    y_pred = estimator.predict(x)
    proba = estimator.predict_proba(x) if hasattr(estimator, "predict_proba") else None
    return y_pred, proba
