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
    # The data contract (``contract``): per feature its role, null rate, range or categories.
    columns: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    # Features where a missing value is taken (the pipeline imputes or the estimator takes NaN).
    nulls_ok: frozenset[str] = frozenset()

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
        return cls(
            tuple(obj["features"]),
            dtypes,
            obj.get("target"),
            obj.get("task"),
            dict(obj.get("columns") or {}),
            frozenset(obj.get("nulls_ok") or ()),
        )

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
        notes: list[str] | None = None,
    ) -> pd.DataFrame:
        """The model's input: exactly its features, in order, converted to the training dtypes.

        Columns that are not features are ignored (a note in ``notes`` says which; ``keep``
        names those the caller copies to its output). ``text_numbers`` accepts numbers written
        as text in numeric columns (a CSV column with one bad value is read as text). Raises
        SchemaError listing every missing column (and the extra ones, which may be misspelt)
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
        if extra and missing:
            problems.append(f"extra column(s) {_names(extra)}")
        elif extra and notes is not None:
            notes.append(f"ignored {len(extra)} column(s) the model does not take: {_names(extra)}")
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

    def unseen_categories(self, frame: pd.DataFrame) -> dict[str, int]:
        """Per categorical feature, how many values of ``frame`` training never saw."""
        counts = {}
        for column, spec in self.columns.items():
            seen = spec.get("categories")
            if seen is None or column not in frame.columns or spec.get("truncated"):
                continue
            values = frame[column].dropna()
            unseen = int((~values.astype(str).isin(set(map(str, seen)))).sum())
            if unseen:
                counts[column] = unseen
        return counts

    def frame_from_records(
        self, rows: Any, hint: str = "", notes: list[str] | None = None
    ) -> pd.DataFrame:
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
            missing = [f for f in self.features if f not in row]
            if missing:
                problems = [f"row {i}: missing column(s) {_names(missing)}"]
                extra = sorted(set(row) - expected)
                if extra:
                    problems.append(f"row {i}: extra column(s) {_names(extra)}")
                raise self._fail(problems, hint)
        extra_keys = sorted({k for row in rows for k in row} - expected)
        if extra_keys and notes is not None:
            notes.append(
                f"ignored {len(extra_keys)} key(s) the model does not take: {_names(extra_keys)}"
            )
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
                if numbers.isna().any() and column in self.nulls_ok:
                    return numbers.astype("float64"), None  # the pipeline imputes it
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


# Categories a contract lists per column; a column with more says so and is not checked.
MAX_CONTRACT_CATEGORIES = 1000


def contract(
    frame: pd.DataFrame, roles: Mapping[str, Mapping[str, str]], features: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The data contract of the training features: each one's role, dtype and null rate, a
    numeric column's range, a categorical one's categories (``schema.json``'s ``columns``)."""
    out: dict[str, dict[str, Any]] = {}
    for column in features:
        values = frame[column]
        spec: dict[str, Any] = {
            "role": roles[column]["role"],
            "dtype": str(values.dtype),
            "null_rate": round(float(values.isna().mean()), 6) if len(values) else 0.0,
        }
        if spec["role"] == "numeric":
            present = values.dropna()
            if len(present):
                spec["min"], spec["max"] = _plain(present.min()), _plain(present.max())
        elif spec["role"] in ("categorical", "boolean"):
            seen = sorted({str(v) for v in values.dropna().unique()})
            spec["categories"] = seen[:MAX_CONTRACT_CATEGORIES]
            if len(seen) > MAX_CONTRACT_CATEGORIES:
                spec["truncated"] = True
        out[column] = spec
    return out


def contract_changes(
    before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """How a new data contract differs from an earlier one (the production version's): features
    gone or new, roles and dtypes changed, new categories, null rates up by 10 points or more,
    numbers beyond the earlier range by a tenth of it. One short line each; advisory: the gates
    judge the data."""
    out: list[str] = []
    gone = [c for c in before if c not in after]
    new = [c for c in after if c not in before]
    if gone:
        out.append(f"features gone: {_names(gone)}")
    if new:
        out.append(f"new features: {_names(new)}")
    for column in (c for c in after if c in before):
        old, now = before[column], after[column]
        if old.get("role") != now.get("role"):
            out.append(f"{column}: role {old.get('role')} -> {now.get('role')}")
            continue
        if old.get("dtype") != now.get("dtype"):
            out.append(f"{column}: dtype {old.get('dtype')} -> {now.get('dtype')}")
        seen = old.get("categories")
        if seen is not None and not old.get("truncated"):
            added = [c for c in now.get("categories", []) if c not in set(seen)]
            if added:
                shown = ", ".join(map(repr, added[:3])) + (", ..." if len(added) > 3 else "")
                kind = "category" if len(added) == 1 else "categories"
                out.append(f"{column}: {len(added)} new {kind} ({shown})")
        rate_old, rate_now = float(old.get("null_rate", 0)), float(now.get("null_rate", 0))
        if rate_now - rate_old >= 0.10:
            out.append(f"{column}: null rate {rate_old:.0%} -> {rate_now:.0%}")
        if all(k in old and k in now for k in ("min", "max")):
            try:
                low, high = float(old["min"]), float(old["max"])
                margin = 0.1 * (high - low)  # a retrain on new rows moves the ends a little
                if float(now["min"]) < low - margin or float(now["max"]) > high + margin:
                    out.append(
                        f"{column}: range {old['min']}..{old['max']} -> {now['min']}..{now['max']}"
                    )
            except (TypeError, ValueError):
                pass
    return out
