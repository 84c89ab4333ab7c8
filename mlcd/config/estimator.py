"""Estimators from their import path: building one from a config's ``model`` spec and checking
the spec before anything runs."""

from __future__ import annotations

import importlib
import json
import os
from typing import Any

from mlcd.config.model import ModelConfig
from mlcd.errors import ConfigError, StorageError


def import_object(dotted: str) -> Any:
    """Import ``package.module.Name``; raise ImportError/AttributeError as Python does."""
    module_name, _, attr = dotted.rpartition(".")
    if not module_name or module_name.startswith("."):  # '..x.Y' would be a relative import
        raise ImportError(f"{dotted!r} is not a dotted path like 'sklearn.linear_model.Ridge'")
    return getattr(importlib.import_module(module_name), attr)


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
    # Nested steps may be transformers (or column selectors); the model itself must predict.
    if not top and type(estimator).__name__ == "make_column_selector":
        return estimator
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


def check_spec(spec: ModelConfig, where: str = "model") -> dict[str, Any]:
    """Build the estimator once to check its import path and parameters (ConfigError naming
    the key otherwise); its ``random_state`` parameters, which a run manifest records.

    Importing scikit-learn takes about a second, which would be most of a rerun that has
    nothing to do; so the answer for a spec made only of scikit-learn classes is kept on disk
    (``MLCD_CACHE_DIR``, default ``~/.cache/mlcd``), keyed by the spec and the versions of
    scikit-learn and mlcd. A spec naming other code is checked every time: that code may change
    without a version.
    """
    from importlib import metadata

    from mlcd import __version__, storage
    from mlcd.fingerprint import digest

    spec_data = spec.model_dump(mode="json")
    cacheable = all(path.startswith("sklearn.") for path in _estimator_paths(spec_data))
    path = None
    if cacheable:
        key = digest([spec_data, metadata.version("scikit-learn"), __version__])
        path = os.path.join(storage.cache_dir(), "specs", f"{key}.json")
        try:
            with open(path, "rb") as handle:
                cached: dict[str, Any] = json.load(handle)
            return cached
        except (OSError, ValueError):
            pass
    params = build_estimator(spec, where).get_params(deep=True)
    facts = {
        "random_state": {
            key: value if value is None or isinstance(value, int) else repr(value)
            for key, value in sorted(params.items())
            if key == "random_state" or key.endswith("__random_state")
        }
    }
    if path is not None:
        try:
            storage.write_bytes(path, json.dumps(facts, sort_keys=True).encode())
        except (StorageError, OSError):
            pass  # no cache: checked again next time
    return facts


def _estimator_paths(value: Any) -> list[str]:
    """Every ``estimator`` import path in a spec, nested ones included."""
    if isinstance(value, dict):
        own = [str(value["estimator"])] if "estimator" in value else []
        return own + [p for v in value.values() for p in _estimator_paths(v)]
    if isinstance(value, list):
        return [p for v in value for p in _estimator_paths(v)]
    return []
