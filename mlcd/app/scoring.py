"""Scoring with a published model: check the input against its schema, predict, and shape the
answer, for ``mlcd predict`` (files) and ``mlcd serve`` (JSON rows)."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlcd import storage
from mlcd.errors import DataError, UsageError
from mlcd.registry import LoadedVersion
from mlcd.training import predict

BODY_HELP = 'the body is a JSON object {"rows": [{"<column>": <value>, ...}, ...]}'


def _score(
    loaded: LoadedVersion, x: pd.DataFrame, with_proba: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        if not with_proba:
            return loaded.model.predict(x), None
        return predict(loaded.model, x)
    except (ValueError, TypeError) as exc:  # e.g. NaN where the estimator takes none
        raise DataError(
            f"model {loaded.name!r} version {loaded.version} cannot score this input: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None


def classes(loaded: LoadedVersion) -> list[Any] | None:
    labels = getattr(loaded.model, "classes_", None)
    return [_plain(c) for c in labels] if labels is not None else None


def predict_frame(
    loaded: LoadedVersion,
    frame: pd.DataFrame,
    keep: Sequence[str] = (),
    hint: str = "",
    text_numbers: bool = False,
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """The ``keep`` columns of ``frame``, then ``prediction`` and (for classifiers) one
    ``proba_<class>`` column per class; one row per input row, in input order. ``notes`` gets
    what the caller should tell: ignored columns, categories training never saw."""
    x = loaded.schema.conform(frame, keep=keep, hint=hint, text_numbers=text_numbers, notes=notes)
    if notes is not None:
        notes.extend(unseen_note(loaded.schema.unseen_categories(x)))
    y_pred, proba = _score(loaded, x)
    out = frame.loc[:, list(keep)].copy() if keep else pd.DataFrame(index=frame.index)
    out["prediction"] = y_pred
    labels = classes(loaded)
    if proba is not None and labels is not None:
        for i, label in enumerate(labels):
            out[f"proba_{label}"] = proba[:, i]
    return out


def predict_rows(loaded: LoadedVersion, body: Any) -> dict[str, Any]:
    """The answer of POST /predict for a parsed JSON ``body``."""
    if not isinstance(body, dict) or "rows" not in body:
        raise DataError(f"no 'rows' in the request: {BODY_HELP}")
    unknown = sorted(set(body) - {"rows"})
    if unknown:
        shown = ", ".join(map(repr, unknown))
        raise DataError(f"unknown key(s) {shown} in the request: {BODY_HELP}")
    rows = body["rows"]
    if isinstance(rows, list) and not rows:
        raise DataError(f"'rows' is empty: nothing to score; {BODY_HELP}")
    hint = f"GET /version describes the model; {BODY_HELP}"
    notes: list[str] = []
    x = loaded.schema.frame_from_records(rows, hint=hint, notes=notes)
    unseen = loaded.schema.unseen_categories(x)
    notes.extend(unseen_note(unseen))
    y_pred, proba = _score(loaded, x)
    answer: dict[str, Any] = {
        "model": loaded.name,
        "version": loaded.version,
        "n": len(x),
        "predictions": _json_list(y_pred),
    }
    if unseen:
        answer["unseen_categories"] = unseen
    if notes:
        answer["notes"] = notes
    labels = classes(loaded)
    if proba is not None and labels is not None:
        answer["classes"] = labels
        answer["probabilities"] = _json_list(proba)
    return answer


def predictions_only(loaded: LoadedVersion, rows: Any) -> list[Any]:
    """The predictions alone (no probabilities: half the work of a forest) for JSON ``rows``,
    as POST /predict would answer them: what a shadow version needs."""
    x = loaded.schema.frame_from_records(
        rows, hint=f"GET /version describes the model; {BODY_HELP}"
    )
    return _json_list(_score(loaded, x, with_proba=False)[0])


def unseen_note(unseen: dict[str, int]) -> list[str]:
    """One note for the categories training never saw (the model treats them as unknown)."""
    if not unseen:
        return []
    counts = ", ".join(f"{column}: {n}" for column, n in unseen.items())
    return [f"values training never saw, scored as unknown categories: {counts}"]


FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def table_format(path: str, flag: str) -> str:
    """``csv`` or ``parquet``, by the file's suffix (UsageError naming ``flag`` otherwise)."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in FORMATS:
        raise UsageError(f"{flag} {path!r}: give a .csv or .parquet file")
    return FORMATS[suffix]


def read_table(path: str, flag: str, dtypes: dict[str, Any] | None = None) -> pd.DataFrame:
    """A CSV or Parquet file (local or s3://) as a frame, with ``dtypes`` for a CSV's columns
    and floats read back exactly; DataError naming ``flag`` when it is missing, unreadable or
    empty."""
    fmt = table_format(path, flag)
    if not storage.exists(path):
        raise DataError(f"{flag} {path!r} does not exist")
    raw = storage.read_bytes(path)
    try:
        if fmt == "csv":
            frame = pd.read_csv(io.BytesIO(raw), dtype=dtypes or None, float_precision="round_trip")
        else:
            frame = pd.read_parquet(io.BytesIO(raw))
    except Exception as exc:
        raise DataError(f"{flag} {path!r} cannot be read as {fmt}: {exc}".splitlines()[0]) from None
    if frame.empty:
        raise DataError(f"{flag} {path!r} has no rows")
    return frame


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _json_list(values: np.ndarray) -> list[Any]:
    """A JSON-ready list: numpy scalars as Python ones, NaN as null."""
    array = np.asarray(values)
    if array.dtype.kind == "f" and np.isnan(array).any():
        array = array.astype(object)
        array[pd.isna(array)] = None
    out: list[Any] = array.tolist()
    return out
