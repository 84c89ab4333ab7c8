"""The reference profile a published version keeps of its training data (``profile.json``): per
feature its role, dtype, null rate and distribution in a few hundred numbers, the training label
distribution and the model's predictions on the test set. Drift is measured against it, so
monitoring never reads the training set again.

Numbers are kept as the data has them (no rounding), so the same training split gives the same
bytes: ``mlcd reproduce`` compares the file by its sha256.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mlcd import columns, registry
from mlcd.columns.roles import as_text
from mlcd.errors import StorageError

FORMAT = 1
# The percentiles kept of a numeric column: every whole percent, and the tails' half steps. The
# KS distance is bounded within one step (1%), PSI uses the deciles, Wasserstein integrates all.
PERCENTS: tuple[float, ...] = tuple(sorted({float(p) for p in range(101)} | {0.5, 2.5, 97.5, 99.5}))
# PSI's bins: the training deciles (ten bins of about a tenth of the rows each).
PSI_PERCENTS = (10, 20, 30, 40, 50, 60, 70, 80, 90)
# The categories kept of a categorical column, most frequent first; the rest is "other".
MAX_CATEGORIES = 50
OTHER = "__other__"


def numeric_values(values: pd.Series) -> pd.Series:
    """A column as numbers (text that is not a number counts as missing)."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    return pd.to_numeric(values, errors="coerce").astype(float)


def category_values(values: pd.Series) -> pd.Series:
    """A column as category text, the way the model's encoders see it: stripped text, blanks
    missing (columns.as_text)."""
    return as_text(values.to_frame()).iloc[:, 0]


def quantiles(values: np.ndarray, percents: tuple[float, ...] = PERCENTS) -> list[float]:
    """The empirical quantile function at ``percents``: the smallest value with at least that
    share of the values at or below it, so the profile bounds the distribution exactly."""
    return [float(v) for v in np.percentile(values, percents, method="inverted_cdf")]


def bin_shares(values: np.ndarray, edges: list[float]) -> list[float]:
    """The share of ``values`` in each bin (-inf, e1], (e1, e2], ..., (ek, inf)."""
    index = np.searchsorted(np.asarray(edges, dtype=float), values, side="left")
    counts = np.bincount(index, minlength=len(edges) + 1)
    return [float(c) / max(len(values), 1) for c in counts]


def numeric_summary(values: pd.Series) -> dict[str, Any]:
    present = numeric_values(values).dropna().to_numpy()
    if len(present) == 0:
        return {"count": 0}
    # One pass over the values for every quantile (each is the same as asked for alone).
    wanted = (*PERCENTS, *PSI_PERCENTS, 25, 75)
    found = quantiles(present, wanted)
    q = found[len(PERCENTS) :]
    edges = sorted(set(q[: len(PSI_PERCENTS)]))
    return {
        "count": len(present),
        "mean": float(present.mean()),
        "std": float(present.std(ddof=1)) if len(present) > 1 else 0.0,
        "iqr": float(q[-1] - q[-2]),
        "min": float(present.min()),
        "max": float(present.max()),
        "percents": list(PERCENTS),
        "quantiles": found[: len(PERCENTS)],
        "bins": {"edges": edges, "shares": bin_shares(present, edges)},
    }


def category_summary(values: pd.Series, cap: int = MAX_CATEGORIES) -> dict[str, Any]:
    present = category_values(values).dropna()
    counts = present.value_counts()
    # Most frequent first, ties by name: the same data gives the same list.
    order = sorted(counts.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
    kept = order[:cap]
    total = max(len(present), 1)
    shares = {str(k): int(c) / total for k, c in kept}
    other = sum(int(c) for _, c in order[cap:]) / total
    return {
        "count": len(present),
        "distinct": len(order),
        "complete": len(order) <= cap,  # every category is listed: unseen ones can be told
        "shares": shares,
        "other": other,
    }


def datetime_summary(values: pd.Series) -> dict[str, Any]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format": we only count what parses
        parsed = pd.to_datetime(values, errors="coerce", utc=True).dropna()
    if parsed.empty:
        return {"count": 0}
    return {
        "count": len(parsed),
        "min": parsed.min().isoformat(),
        "max": parsed.max().isoformat(),
    }


def null_rate(values: pd.Series, role: str) -> float:
    if len(values) == 0:
        return 0.0
    if role in ("categorical", "boolean"):
        missing = category_values(values).isna()
    elif role == "numeric":
        missing = numeric_values(values).isna()
    else:
        missing = values.isna()
    return float(missing.mean())


def column_profile(values: pd.Series, role: str) -> dict[str, Any]:
    """One feature column's profile; ``values`` may be training or logged rows."""
    out: dict[str, Any] = {
        "role": role,
        "dtype": str(values.dtype),
        "rows": len(values),
        "null_rate": null_rate(values, role),
    }
    if role == "numeric":
        out["numeric"] = numeric_summary(values)
    elif role in ("categorical", "boolean"):
        out["categories"] = category_summary(values)
    elif role == "datetime":
        out["range"] = datetime_summary(values)
    return out


def outcome_profile(values: pd.Series, task: str) -> dict[str, Any]:
    """A label or prediction column: class shares (classification) or its numeric profile."""
    if task == "classification":
        return {"kind": "categorical", "categories": category_summary(values)}
    return {"kind": "numeric", "numeric": numeric_summary(values)}


def build(
    train: pd.DataFrame,
    roles: Mapping[str, Mapping[str, str]],
    *,
    target: str,
    task: str,
    predictions: pd.DataFrame | None,
) -> dict[str, Any]:
    """The profile of a training split (features by ``roles``), its labels, and the model's
    test-set predictions (the ``predicted`` column of the version's predictions.parquet)."""
    features = [c for c in columns.features(roles) if c in train.columns]
    profile: dict[str, Any] = {
        "format": FORMAT,
        "rows": len(train),
        "task": task,
        "target": target,
        "columns": {c: column_profile(train[c], roles[c]["role"]) for c in features},
        "label": outcome_profile(train[target], task) if target in train.columns else None,
        "prediction": None,
    }
    if predictions is not None and "predicted" in predictions.columns:
        profile["prediction"] = {
            "rows": len(predictions),
            **outcome_profile(predictions["predicted"], task),
        }
    return profile


def to_bytes(profile: Mapping[str, Any]) -> bytes:
    from mlcd import storage

    return storage.dumps_json(profile)


def read(publish: str, name: str, version: str) -> dict[str, Any] | None:
    """The version's profile, checked against its manifest; None for a version published
    before mlcd kept one."""
    manifest = registry.read_manifest(publish, name, version)
    if registry.recorded_sha256(manifest, registry.PROFILE_FILE) is None:
        return None
    blob = registry.verified_bytes(publish, name, version, registry.PROFILE_FILE, manifest)
    try:
        profile = json.loads(blob)
    except ValueError:
        profile = None
    if not isinstance(profile, dict) or profile.get("format") != FORMAT:
        raise StorageError(
            f"the profile of version {version!r} of model {name!r} is not a profile mlcd "
            f"{'reads' if profile is not None else 'can parse'}; retrain to publish a new version"
        )
    return profile
