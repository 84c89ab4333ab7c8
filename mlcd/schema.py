"""The input schema of a published model (its ``schema.json``), checked before every prediction.

A model is only ever given the columns it was trained on, in training order, with the types it
was trained on. Missing columns, extra columns and values of the wrong type are refused with one
message that lists every problem; a value that only differs in representation (an integer for a
float feature, ``2.0`` for an integer one) is converted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlcd.errors import DataError, StorageError

_SHOWN = 8  # column names listed in a message before "..."


class SchemaError(DataError):
    """Input that does not match a model's schema (data error, exit code 4)."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


def kind_of(dtype: str) -> str:
    """The kind of values a pandas dtype name holds: float, integer, bool, string, category,
    datetime, or any (not checked)."""
    name = dtype.lower()
    if name.startswith(("float", "double")):
        return "float"
    if name.startswith(("int", "uint")):
        return "integer"
    if name in ("bool", "boolean"):
        return "bool"
    if name in ("object", "string", "str") or name.startswith("string"):
        return "string"
    if name == "category":
        return "category"
    if name.startswith("datetime64"):
        return "datetime"
    return "any"


_KIND_WORDS = {
    "float": "numbers",
    "integer": "integers",
    "bool": "true/false",
    "string": "text",
    "category": "text (categories)",
    "datetime": "dates",
}


def _names(columns: Iterable[Any]) -> str:
    cols = [repr(str(c)) for c in columns]
    return ", ".join(cols[:_SHOWN]) + (f", ... ({len(cols)} in all)" if len(cols) > _SHOWN else "")


def _describe_value(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return f"{value!r} (true/false)"
    if isinstance(value, str):
        text = value if len(value) <= 30 else value[:27] + "..."
        return f"{text!r} (text)"
    if isinstance(value, int | float | np.number):
        return f"{value!r} (a number)"
    return f"{type(value).__name__}"


@dataclasses.dataclass(frozen=True)
class InputSchema:
    """The feature columns a model takes, in order, and each one's training dtype."""

    features: tuple[str, ...]
    dtypes: Mapping[str, str]
    target: str | None = None
    task: str | None = None

    @classmethod
    def from_json(cls, obj: Any, source: str) -> InputSchema:
        if (
            not isinstance(obj, dict)
            or not isinstance(obj.get("features"), list)
            or not all(isinstance(f, str) for f in obj["features"])
            or not isinstance(obj.get("dtypes", {}), dict)
        ):
            raise StorageError(
                f"{source!r} is not a valid input schema (it needs 'features', a list of "
                "column names, and 'dtypes'); the version is damaged: republish it"
            )
        dtypes = {str(k): str(v) for k, v in obj.get("dtypes", {}).items()}
        return cls(tuple(obj["features"]), dtypes, obj.get("target"), obj.get("task"))

    def kind(self, column: str) -> str:
        return kind_of(self.dtypes.get(column, "any"))

    def describe(self) -> str:
        kinds: dict[str, int] = {}
        for column in self.features:
            dtype = self.dtypes.get(column, "any")
            kinds[dtype] = kinds.get(dtype, 0) + 1
        types = ", ".join(f"{n} {dtype}" for dtype, n in sorted(kinds.items()))
        return f"{len(self.features)} columns ({types})"

    def csv_dtypes(self) -> dict[str, Any]:
        """dtype hints for reading a CSV, so that text columns of digits stay text."""
        return {c: str for c in self.features if self.kind(c) in ("string", "category")}

    # --- checking ---------------------------------------------------------------------------

    def _fail(self, problems: list[str], hint: str) -> SchemaError:
        message = (
            "the input does not match the model's schema: "
            + "; ".join(problems)
            + f". The model takes {len(self.features)} column(s): {_names(self.features)}"
            + (f". {hint}" if hint else "")
        )
        return SchemaError(message, problems)

    def conform(
        self,
        frame: pd.DataFrame,
        keep: Sequence[str] = (),
        hint: str = "",
        text_numbers: bool = False,
    ) -> pd.DataFrame:
        """The model's input: exactly its features, in order, converted to the training dtypes.

        ``keep`` names input columns that are not features and are allowed (they are dropped).
        ``text_numbers`` accepts numbers written as text in numeric columns (a CSV column with
        one bad value is read as text). Raises SchemaError listing every missing or extra column
        and every column of the wrong type.
        """
        problems: list[str] = []
        columns = [str(c) for c in frame.columns]
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        if dupes:
            problems.append(f"duplicated column(s) {_names(dupes)}")
        present = set(columns)
        missing = [f for f in self.features if f not in present]
        if missing:
            problems.append(f"missing column(s) {_names(missing)}")
        allowed = set(self.features) | set(keep)
        extra = [c for c in columns if c not in allowed]
        if extra:
            problems.append(f"extra column(s) {_names(extra)}")
        absent_keep = [k for k in keep if k not in present]
        if absent_keep:
            problems.append(f"column(s) to keep not in the input: {_names(absent_keep)}")
        if problems:
            raise self._fail(problems, hint)
        frame = frame.set_axis(columns, axis=1)
        out: dict[str, Any] = {}
        unchanged = True
        for column in self.features:
            values = frame[column]
            converted, problem = self._convert(column, values, text_numbers)
            if problem:
                problems.append(problem)
            else:
                out[column] = converted
                unchanged = unchanged and converted is values
        if problems:
            raise self._fail(problems, hint)
        if unchanged:  # the common case: every column already has its training dtype
            return frame.loc[:, list(self.features)]
        return pd.DataFrame(out, index=frame.index, columns=list(self.features))

    def frame_from_records(self, rows: Any, hint: str = "") -> pd.DataFrame:
        """A checked model input from JSON rows: a list of objects, one key per feature."""
        if not isinstance(rows, list):
            raise SchemaError(
                "'rows' must be a list of objects, one per row, each mapping every feature "
                f"column to its value (got {type(rows).__name__})",
                ["rows is not a list"],
            )
        expected = set(self.features)
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise SchemaError(
                    f"row {i} is not an object of column: value pairs (got {type(row).__name__})",
                    [f"row {i} is not an object"],
                )
            if row.keys() != expected:
                keys = set(row)
                problems = []
                missing = [f for f in self.features if f not in keys]
                if missing:
                    problems.append(f"row {i}: missing column(s) {_names(missing)}")
                extra = sorted(keys - expected)
                if extra:
                    problems.append(f"row {i}: extra column(s) {_names(extra)}")
                raise self._fail(problems, hint)
        columns = {f: [row[f] for row in rows] for f in self.features}
        frame = pd.DataFrame(columns, columns=list(self.features))
        return self.conform(frame, hint=hint)

    def _convert(
        self, column: str, values: pd.Series, text_numbers: bool = False
    ) -> tuple[pd.Series | None, str | None]:
        dtype = self.dtypes.get(column, "any")
        kind = kind_of(dtype)
        actual = values.dtype
        if str(actual) == dtype and kind != "string":
            return values, None
        try:
            if kind == "any":
                return values, None
            if kind in ("float", "integer"):
                if actual.kind == "b":
                    return None, self._wrong(column, kind, dtype, values, values.index[0])
                if actual.kind in "iuf":
                    numbers = values
                elif actual.kind == "O" or isinstance(actual, pd.StringDtype):
                    bad = values.map(lambda v: not _is_number(v, text_numbers))
                    if bad.any():
                        return None, self._wrong(column, kind, dtype, values, bad.idxmax())
                    numbers = pd.to_numeric(
                        values.astype(object).where(values.notna(), np.nan), errors="coerce"
                    )
                else:
                    return None, self._wrong_dtype(column, kind, dtype, actual)
                if kind == "float":
                    return numbers.astype(dtype), None
                if numbers.isna().any():
                    row = numbers.isna().idxmax()
                    return None, (
                        f"column {column!r} ({dtype}) has a missing value at row {row}; "
                        "integer columns need a value in every row"
                    )
                whole = np.isfinite(numbers.to_numpy(dtype=float)) & (
                    numbers.to_numpy(dtype=float) % 1 == 0
                )
                if not whole.all():
                    row = numbers.index[int(np.argmin(whole))]
                    return None, self._wrong(column, kind, dtype, values, row)
                return numbers.astype(dtype), None
            if kind == "bool":
                if actual.kind == "b":
                    return values, None
                bad = values.map(lambda v: not _is_bool(v))
                if bad.any():
                    return None, self._wrong(column, kind, dtype, values, bad.idxmax())
                return values.astype(bool), None
            if kind in ("string", "category"):
                if actual.kind == "O" or isinstance(actual, pd.StringDtype | pd.CategoricalDtype):
                    bad = values.map(lambda v: not (isinstance(v, str) or v is None or _is_nan(v)))
                    if bad.any():
                        return None, self._wrong(column, kind, dtype, values, bad.idxmax())
                    return (values.astype("category") if kind == "category" else values), None
                return None, self._wrong_dtype(column, kind, dtype, actual)
            if kind == "datetime":
                if actual.kind == "M":
                    return values, None
                try:
                    return pd.to_datetime(values, errors="raise"), None
                except (ValueError, TypeError):
                    parsed = pd.to_datetime(values, errors="coerce")
                    row = (parsed.isna() & values.notna()).idxmax()
                    return None, self._wrong(column, kind, dtype, values, row)
        except (ValueError, TypeError) as exc:  # a conversion pandas refuses
            return None, f"column {column!r} ({dtype}) cannot be converted: {exc}"
        return values, None

    def _wrong(self, column: str, kind: str, dtype: str, values: pd.Series, row: Any) -> str:
        return (
            f"column {column!r} expects {_KIND_WORDS[kind]} ({dtype}) but row {row} has "
            f"{_describe_value(values.loc[row])}"
        )

    def _wrong_dtype(self, column: str, kind: str, dtype: str, actual: Any) -> str:
        return f"column {column!r} expects {_KIND_WORDS[kind]} ({dtype}) but holds {actual}"


def _is_number(value: Any, text_numbers: bool) -> bool:
    """A number, a missing value, or (when ``text_numbers``) text that reads as a number."""
    if value is None or _is_nan(value):
        return True
    if isinstance(value, str) and text_numbers:
        try:
            float(value)
        except ValueError:
            return False
        return True
    return isinstance(value, int | float | np.number) and not _is_bool(value)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool | np.bool_)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float | np.floating) and bool(np.isnan(value))


def example_rows(
    frame: pd.DataFrame, features: Sequence[str], rows: int = 5
) -> list[dict[str, Any]]:
    """The first ``rows`` rows of ``frame``'s features as JSON-ready records (NaN as null)."""
    head = frame.loc[:, list(features)].head(rows)
    records = []
    for record in head.to_dict(orient="records"):
        records.append({str(k): _plain(v) for k, v in record.items()})
    return records


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value
