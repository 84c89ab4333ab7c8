"""Column roles: what each column of a table is to the model, inferred from the data and
overridable by the config's ``columns:`` section.

A role decides what the preprocessing does with a column (``columns/prepare.py``) and what
deepchecks is told about it: identifiers are its index, one datetime its ``datetime_name``,
categoricals its ``cat_features``. Inference reads a sample of at most ``SAMPLE_ROWS`` rows, so it
costs the same on a million rows as on ten thousand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mlcd.catalogue import FEATURE_ROLES, ROLES
from mlcd.errors import DataError

SAMPLE_ROWS = 20_000
# A text column with at most this many distinct values (or this share of the rows) is
# categorical; above both it is an identifier (unique per row) or free text (words).
MAX_CATEGORIES = 200
MAX_CATEGORY_SHARE = 0.5
# Text that reads as dates in at least this share of its values is a datetime.
DATE_SHARE = 0.95
YES_NO = {
    frozenset({"yes", "no"}),
    frozenset({"y", "n"}),
    frozenset({"true", "false"}),
    frozenset({"t", "f"}),
}
_ID_NAME = re.compile(r"(^|[_\W])(id|uuid|guid|key)$|^id[_\W]|Id$|ID$", re.IGNORECASE)


def _text(values: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)


def _looks_like_dates(present: pd.Series) -> bool:
    sample = present.astype(str).head(200)
    if not sample.str.contains(r"\d{1,4}[-/.:]\d{1,2}", regex=True).mean() >= DATE_SHARE:
        return False
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format": we only count what parses
        parsed = pd.to_datetime(sample, errors="coerce")
    return bool(parsed.notna().mean() >= DATE_SHARE)


def infer_role(values: pd.Series, name: str) -> tuple[str, str]:
    """The role of one column and why, from at most SAMPLE_ROWS of its values."""
    if len(values) > SAMPLE_ROWS:
        values = values.sample(SAMPLE_ROWS, random_state=0)
    present = values.dropna()
    if _text(values):
        present = present[present.astype(str).str.strip() != ""]
    distinct = int(present.nunique())
    if distinct == 0:
        return "constant", "entirely empty"
    if distinct == 1:
        return "constant", f"a single value ({present.iloc[0]!r})"
    if pd.api.types.is_bool_dtype(values):
        return "boolean", "true/false"
    if pd.api.types.is_datetime64_any_dtype(values):
        return "datetime", "dates"
    unique_share = distinct / len(present)
    if pd.api.types.is_numeric_dtype(values):
        integral = pd.api.types.is_integer_dtype(values) or bool((present % 1 == 0).all())
        if integral and unique_share == 1.0 and len(present) >= 20 and _ID_NAME.search(name):
            return "id", "unique whole numbers in a column named like an identifier"
        return "numeric", "numbers"
    if not _text(values):
        return "dropped", f"values of type {values.dtype} that no preprocessing step takes"
    words = present.astype(str)
    if distinct == 2 and frozenset(w.strip().lower() for w in words.unique()) in YES_NO:
        return "boolean", "yes/no text"
    if _looks_like_dates(present):
        return "datetime", "text that reads as dates"
    wordy = bool(words.str.contains(r"\s").mean() > 0.5 and words.str.len().mean() > 20)
    if len(present) >= 20 and unique_share >= 0.95 and not wordy:
        return "id", f"text, unique in {unique_share:.0%} of the rows"
    if distinct <= MAX_CATEGORIES or unique_share <= MAX_CATEGORY_SHARE:
        return "categorical", f"text, {distinct} distinct values"
    if wordy:
        return "text", f"free text ({distinct} distinct values of {len(present)}, mostly words)"
    return "text", f"text, {distinct} distinct values of {len(present)}: too many categories"


def infer_roles(
    frame: pd.DataFrame, target: str, overrides: Mapping[str, str] | None = None
) -> dict[str, dict[str, str]]:
    """Every column's role but the target's, as ``{column: {"role": ..., "why": ...}}`` in the
    frame's order; ``overrides`` (the config's ``columns:``) are checked against the data."""
    overrides = dict(overrides or {})
    unknown = [c for c in overrides if c not in frame.columns or c == target]
    if unknown:
        shown = ", ".join(str(c) for c in frame.columns if c != target)
        raise DataError(
            f"columns: {', '.join(map(repr, unknown))} "
            + ("is the target, which has no role" if unknown == [target] else "not in the data")
            + f"; the feature columns are: {shown[:300]}"
        )
    roles: dict[str, dict[str, str]] = {}
    for column in frame.columns:
        if column == target:
            continue
        if column in overrides:
            role = overrides[column]
            check_override(frame[column], column, role)
            roles[column] = {"role": role, "why": f"set by columns.{column}"}
        else:
            role, why = infer_role(frame[column], column)
            roles[column] = {"role": role, "why": why}
    if not any(r["role"] in FEATURE_ROLES for r in roles.values()):
        raise DataError(
            "no column can be a feature: "
            + "; ".join(f"{c} is {r['role']} ({r['why']})" for c, r in roles.items())[:400]
            + ". Give a column a feature role under columns: (numeric, categorical, boolean, "
            "datetime)"
        )
    return roles


def check_override(values: pd.Series, column: str, role: str) -> None:
    """A role set in the config must fit the column's values: numbers for numeric, dates for
    datetime. DataError naming the column, a bad value and the key otherwise."""
    assert role in ROLES
    present = values.dropna()
    if role == "numeric" and not pd.api.types.is_numeric_dtype(values):
        bad = present[pd.to_numeric(present, errors="coerce").isna()]
        if len(bad):
            raise DataError(
                f"columns.{column} is numeric, but the column holds text ({bad.iloc[0]!r} in "
                f"data row {bad.index[0]}); set columns.{column}: categorical, or fix the data"
            )
    if role == "datetime" and not pd.api.types.is_datetime64_any_dtype(values):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(present.astype(str), errors="coerce")
        bad = present[parsed.isna()]
        if len(bad):
            raise DataError(
                f"columns.{column} is datetime, but {len(bad)} value(s) are not dates "
                f"({bad.iloc[0]!r} in data row {bad.index[0]}); fix them, or set "
                f"columns.{column} to another role"
            )


def features(roles: Mapping[str, Mapping[str, str]]) -> list[str]:
    """The columns the model takes, in table order."""
    return [c for c, r in roles.items() if r["role"] in FEATURE_ROLES]


def of_role(roles: Mapping[str, Mapping[str, str]], *wanted: str) -> list[str]:
    return [c for c, r in roles.items() if r["role"] in wanted]


def describe(roles: Mapping[str, Mapping[str, str]]) -> str:
    """One line per role in use: ``categorical: plan, region``; non-features say so."""
    lines = []
    for role in ROLES:
        columns = of_role(roles, role)
        if not columns:
            continue
        shown = ", ".join(columns[:10]) + (f", ... ({len(columns)})" if len(columns) > 10 else "")
        note = "" if role in FEATURE_ROLES else " (not features)"
        lines.append(f"{role}{note}: {shown}")
    return "\n".join(lines)


def as_text(values: Any) -> Any:
    """Categorical values as text, missing ones as NaN, for the encoders (an object array that
    mixes True, 'a' and NaN cannot be sorted)."""
    frame = pd.DataFrame(values)
    if frame.columns.is_unique:
        converted = {name: _column_as_text(frame[name]) for name in frame.columns}
        return pd.DataFrame(converted, index=frame.index, columns=frame.columns, dtype=object)
    return _frame_as_text(frame)


def _value_as_text(value: Any) -> Any:
    return value if isinstance(value, float) and value != value else str(value).strip() or np.nan


def _column_as_text(values: pd.Series) -> Any:
    # Text, integers and booleans: each distinct value once (a million rows hold a few hundred
    # categories). Values that factorize as equal have equal text in these dtypes only: in an
    # object column 1, 1.0 and True are one key, in a float column 0.0 and -0.0.
    dtype = values.dtype
    one_type = (
        (pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype))
        or pd.api.types.is_integer_dtype(dtype)
        or pd.api.types.is_bool_dtype(dtype)
    )
    if not one_type:
        return _frame_as_text(values.to_frame()).iloc[:, 0].to_numpy(dtype=object)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    texts = np.array([*(_value_as_text(v) for v in uniques), np.nan], dtype=object)
    return texts[codes]  # the sentinel -1 picks the NaN at the end


def _frame_as_text(frame: pd.DataFrame) -> Any:
    out = frame.astype(object).where(frame.notna(), np.nan)
    out = out.map(_value_as_text)
    return out.astype(object)  # a column of NaN only (one row) must stay text for the encoder
