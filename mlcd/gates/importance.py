"""The feature importance deepchecks needs, computed the same way on every run: the model's own,
or a small, seeded permutation importance."""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlcd.catalogue import NEEDS_IMPORTANCE
from mlcd.config import PipelineConfig

# Rows and repeats of the permutation importance computed for models with no importances of their
# own: deepchecks' own run (10,000 rows x 30 repeats) took 9-36 s here and is cut short by a
# wall-time estimate, which made UnusedFeatures raise (a blocking error) on a loaded machine.
PERMUTATION_ROWS = 1_000


PERMUTATION_REPEATS = 5


def model_importance(
    suite: Any, model: Any, frame: pd.DataFrame, cfg: PipelineConfig, features: list[str]
) -> pd.Series | None:
    """The feature importance to give deepchecks, over the model's ``features``: the model's
    own, else (only when a check of ``suite`` reads it) a permutation importance that is the same
    on every run."""
    importance = feature_importance(model, features)
    if importance is None and any(
        type(check).__name__ in NEEDS_IMPORTANCE for check in suite.checks.values()
    ):
        importance = permutation_importance(
            model, frame[[*features, cfg.target]], cfg.target, cfg.split.seed
        )
    return importance


def threads_only() -> Any:
    """deepchecks' own parallel work (permutation importance, n_jobs=-1) on threads: loky worker
    processes started inside a forked Luigi worker keep it from exiting (docs/decisions.md)."""
    import joblib

    return joblib.parallel_config(backend="threading")


def one_native_thread() -> Any:
    """One OpenMP/BLAS thread for the models the checks call. They predict on samples, and on two
    cores shared with another task OpenMP's threads contend: 20 predictions of 10,000 rows by
    HistGradientBoosting took 7.5 s with the default threads and 1.8 s with one, a
    2,000-row permutation importance 19.8 s and 2.1 s; on 750,000 rows one thread took 6.7-6.8 s
    against 4.3-7.4 s (docs/performance.md). Predictions do not depend on it."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def feature_importance(model: Any, features: list[str]) -> pd.Series | None:
    """The model's own importances when it has them (saves deepchecks a permutation run); for a
    Pipeline, its final estimator's, when each of its inputs is one of ``features``."""
    import numpy as np

    from mlcd.columns import final_step, prepared_names

    names = prepared_names(model)
    if names is not None and sorted(names) != sorted(features):
        return None  # one-hot or calendar columns: not one importance per feature
    model = final_step(model)
    values = getattr(model, "feature_importances_", None)
    if values is None:
        coef = getattr(model, "coef_", None)
        if coef is None:
            return None
        values = np.abs(np.atleast_2d(coef)).mean(axis=0)
    if len(values) != len(features):
        return None
    series = pd.Series(values, index=names or features, dtype=float).reindex(features)
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
