"""Calendar features from dates, a scikit-learn transformer (imported only where a Pipeline is
built or loaded: it imports scikit-learn)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin


class CalendarFeatures(TransformerMixin, BaseEstimator):
    """Dates (or text that reads as dates) as numbers: year, month, day, weekday, day of year,
    days since 1970, and hour when the training dates had times. Unparsable values are NaN."""

    def __init__(self, hours: bool | None = None) -> None:
        self.hours = hours

    @staticmethod
    def _dates(x: Any) -> pd.DataFrame:
        import warnings

        frame = pd.DataFrame(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dates = frame.apply(lambda c: pd.to_datetime(c, errors="coerce"))
        for column in dates.columns:  # zone-aware dates as UTC wall time
            if getattr(dates[column].dt, "tz", None) is not None:
                dates[column] = dates[column].dt.tz_convert("UTC").dt.tz_localize(None)
        return dates

    def fit(self, x: Any, y: Any = None) -> CalendarFeatures:
        dates = self._dates(x)
        self.feature_names_in_ = np.asarray([str(c) for c in dates.columns], dtype=object)
        self.n_features_in_ = len(dates.columns)
        if self.hours is None:
            self.hours_ = bool(any((dates[c].dt.hour.fillna(0) != 0).any() for c in dates))
        else:
            self.hours_ = bool(self.hours)
        return self

    def _parts(self) -> list[str]:
        return ["year", "month", "day", "weekday", "dayofyear", "days"] + (
            ["hour"] if self.hours_ else []
        )

    def transform(self, x: Any) -> pd.DataFrame:
        dates = self._dates(x)
        out = {}
        for column, values in zip(self.feature_names_in_, dates.columns, strict=True):
            when = dates[values]
            parts = {
                "year": when.dt.year,
                "month": when.dt.month,
                "day": when.dt.day,
                "weekday": when.dt.weekday,
                "dayofyear": when.dt.dayofyear,
                "days": (when - pd.Timestamp(0)).dt.total_seconds() / 86400,
                "hour": when.dt.hour,
            }
            for part in self._parts():
                out[f"{column}_{part}"] = parts[part].astype(float).to_numpy()
        return pd.DataFrame(out, index=dates.index)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(
            [f"{c}_{p}" for c in self.feature_names_in_ for p in self._parts()], dtype=object
        )
