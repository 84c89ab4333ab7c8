"""The prediction log: what ``mlcd serve`` and ``mlcd predict`` scored (inputs, outputs, version,
time), written in batches of Parquet files by a background thread, and read back for monitoring.

A caller's ``record`` only appends to a bounded in-memory queue: it never waits for the store,
and rows that do not fit are dropped and counted. Each file is written once, atomically, through
the storage seam, and never changed: ``<location>/date=YYYY-MM-DD/<UTC time>-<host>-<pid>-<seq>
.parquet``. docs/serving.md ("Prediction log") says why.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import math
import os
import random
import re
import socket
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlcd import storage
from mlcd.errors import ConfigError, DataError, StorageError, UsageError

FOLDER = "predictions"
OFF = "off"
TIME, VERSION, SOURCE, REQUEST, PREDICTION = (
    "_mlcd_time",
    "_mlcd_version",
    "_mlcd_source",
    "_mlcd_request",
    "_mlcd_prediction",
)
SHADOW_VERSION, SHADOW_PREDICTION, SHADOW_AGREES = (
    "_mlcd_shadow_version",
    "_mlcd_shadow_prediction",
    "_mlcd_shadow_agrees",
)
LABEL = "_mlcd_label"
RESERVED = (TIME, VERSION, SOURCE, REQUEST, PREDICTION)
SHADOW_COLUMNS = (SHADOW_VERSION, SHADOW_PREDICTION, SHADOW_AGREES)
PREFIX = "_mlcd_"
DEFAULT_MAX_QUEUE_ROWS = 200_000
# Relative tolerance under which two regression predictions agree.
AGREE_RTOL = 1e-9
_RETRY_MIN, _RETRY_MAX = 1.0, 60.0
_DATE_FOLDER = re.compile(r"date=(\d{4}-\d{2}-\d{2})")
# How each source is sampled: a request of `mlcd serve` is kept or left out whole (its rows stay
# together under one request id); a file of `mlcd predict` is sampled row by row.
_PER_CALL = {"serve"}


def default_location(publish: str, name: str) -> str:
    """Where a model's predictions are logged unless told otherwise: beside its versions."""
    return storage.join(publish, name, FOLDER)


def check_sample_rate(text: str | float) -> float:
    """``--log-sample-rate`` as a number in (0, 1]; UsageError otherwise."""
    try:
        rate = float(text)
    except (TypeError, ValueError):
        rate = math.nan
    if not 0 < rate <= 1:  # NaN fails too
        raise UsageError(
            f"--log-sample-rate {text!r}: give the share to log, more than 0 and at most 1 (1: "
            "everything; 0.1: one in ten); to log nothing, pass --prediction-log off"
        )
    return rate


def check_location(location: str, flag: str = "--prediction-log") -> str:
    """``location`` if predictions can be written there: a well-formed local path or s3:// URI
    (UsageError, exit 2, otherwise) where a probe file can be written and deleted (StorageError,
    exit 7: a missing bucket, an unreachable endpoint, a path that is a file)."""
    try:
        storage.check_location(location)
    except (ConfigError, StorageError) as exc:
        raise UsageError(f"{flag} {location!r}: {exc}; or pass {flag} off") from None
    probe = storage.join(location, f".mlcd-probe-{uuid.uuid4().hex}")
    created = [] if storage.is_s3(location) else _missing_folders(location)
    try:
        storage.write_bytes(probe, b"")
        storage.delete(probe)
        for folder in created:  # a command that fails later leaves no empty folder behind
            os.rmdir(folder)
    except OSError:
        pass
    except StorageError as exc:
        raise StorageError(
            f"{flag} {location!r}: predictions cannot be written there ({exc}); fix the "
            f"location or its permissions, or pass {flag} off"
        ) from None
    return location


def _missing_folders(path: str) -> list[str]:
    """The folders of ``path`` that do not exist yet, deepest first."""
    out = []
    path = os.path.abspath(path)
    while not os.path.exists(path):
        out.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return out


@dataclasses.dataclass(frozen=True)
class ShadowResult:
    """A shadow version's predictions on the rows production answered, and whether each agrees
    with production's (None for rows the shadow could not score)."""

    version: str
    predictions: Sequence[Any]
    agrees: Sequence[bool | None]


def agreement(production: Sequence[Any], shadow: Sequence[Any]) -> list[bool]:
    """Per row, whether two predictions agree: equal labels, or numbers within 1e-9 relative."""
    out = []
    for a, b in zip(production, shadow, strict=True):
        if _is_number(a) and _is_number(b):
            fa, fb = float(a), float(b)
            same = fa == fb or abs(fa - fb) <= AGREE_RTOL * max(abs(fa), abs(fb))
            out.append(bool(same))
        else:
            out.append(bool(a == b))
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


@dataclasses.dataclass
class _Entry:
    inputs: pd.DataFrame | list[Mapping[str, Any]]
    predictions: list[Any]
    version: str
    source: str
    request: str
    at: dt.datetime
    shadow: ShadowResult | None

    def __len__(self) -> int:
        return len(self.predictions)


class PredictionLog:
    """Records scored rows without ever making the caller wait; a thread writes them in batches.

    A batch is written when ``flush_rows`` rows are waiting or the oldest has waited
    ``flush_seconds``; ``close()`` writes what is left. While the store fails, rows are kept
    (up to ``max_queue_rows`` in all) and the write is retried with backoff, so a short outage
    loses nothing; past the bound new rows are dropped and counted. ``report`` gets one line
    when writing starts failing, when it recovers and when rows are first dropped."""

    def __init__(
        self,
        location: str,
        *,
        sample_rate: float = 1.0,
        flush_rows: int = 5000,
        flush_seconds: float = 5.0,
        max_queue_rows: int = DEFAULT_MAX_QUEUE_ROWS,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.location = storage.check_location(location)
        self.sample_rate = check_sample_rate(sample_rate)
        self.flush_rows = max(1, int(flush_rows))
        self.flush_seconds = float(flush_seconds)
        self.max_queue_rows = max(1, int(max_queue_rows))
        self._report = report or (lambda line: print(line, file=sys.stderr, flush=True))
        self._random = random.Random()
        self._cond = threading.Condition()
        self._pending: list[_Entry] = []
        self._queued = 0  # rows waiting or being written
        self._oldest: float | None = None
        self._closed = False
        self._retry_at = 0.0
        self._now = False  # flush(): write without waiting
        self._failures = 0
        self._seq = 0
        self._host = re.sub(r"[^A-Za-z0-9.]", "", socket.gethostname().split(".")[0]) or "host"
        self.written_rows = 0
        self.files_written = 0
        self.dropped_rows = 0
        self.error: str | None = None  # the current write problem; None once writing works
        self.last_error: str | None = None
        self.last_error_at: str | None = None
        self._thread = threading.Thread(target=self._run, name="mlcd-predlog", daemon=True)
        self._thread.start()

    # --- the caller's side: never waits -----------------------------------------------------

    def record(
        self,
        inputs: pd.DataFrame | Sequence[Mapping[str, Any]],
        predictions: Sequence[Any],
        *,
        version: str,
        source: str,
        request_id: str | None = None,
        shadow: ShadowResult | None = None,
    ) -> int:
        """Queue ``inputs`` (a DataFrame, or JSON rows as sent: turned into one on the writer
        thread) and their predictions; the number of rows queued (0: not sampled or dropped)."""
        preds = list(predictions)
        n = len(preds)
        if len(inputs) != n or (shadow is not None and len(shadow.predictions) != n):
            raise ValueError(f"{len(inputs)} input rows but {n} predictions")
        if n == 0:
            return 0
        rate = self.sample_rate
        if rate < 1:
            if source in _PER_CALL:
                if self._random.random() >= rate:
                    return 0
            else:
                keep = [i for i in range(n) if self._random.random() < rate]
                if not keep:
                    return 0
                inputs, preds, shadow = _take(inputs, preds, shadow, keep)
                n = len(keep)
        entry = _Entry(
            inputs if isinstance(inputs, pd.DataFrame) else list(inputs),
            preds,
            version,
            source,
            request_id or uuid.uuid4().hex,
            dt.datetime.now(dt.UTC),
            shadow,
        )
        with self._cond:
            dropped = self._closed or self._queued + n > self.max_queue_rows
            first_drop = dropped and self.dropped_rows == 0
            if dropped:
                self.dropped_rows += n
            else:
                self._pending.append(entry)
                self._queued += n
                if self._oldest is None:  # the writer sleeps until told there is work
                    self._oldest = time.monotonic()
                    self._cond.notify()
                elif self._queued >= self.flush_rows:
                    self._cond.notify()
        if first_drop:
            self._report(
                f"mlcd: prediction log {self.location}: dropping rows: {self._queued} rows are "
                f"waiting to be written (the limit is {self.max_queue_rows}); dropped rows are "
                "counted on /health"
            )
        return 0 if dropped else n

    def stats(self) -> dict[str, Any]:
        """What /health shows."""
        with self._cond:
            queued = self._queued
        return {
            "location": self.location,
            "sample_rate": self.sample_rate,
            "written_rows": self.written_rows,
            "files": self.files_written,
            "queued_rows": queued,
            "dropped_rows": self.dropped_rows,
            "error": self.error,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued (one last try if the store fails) and stop the writer."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)
        with self._cond:
            left = self._queued
        if left:
            self._report(
                f"mlcd: prediction log {self.location}: {left} row(s) could not be written "
                "before stopping and are lost"
            )

    def flush(self, timeout: float = 30.0) -> bool:
        """Ask for a write now and wait until nothing is queued (True) or ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._retry_at, self._now = 0.0, True
            self._cond.notify_all()
            while self._queued and time.monotonic() < deadline:
                self._cond.wait(0.05)
            return self._queued == 0

    # --- the writer thread --------------------------------------------------------------------

    def _due(self) -> float | None:
        """Seconds until the next write (0: now; None: nothing queued)."""
        if not self._pending:
            return None
        now = time.monotonic()
        if self._closed or self._now:
            return 0.0
        if now < self._retry_at:
            return self._retry_at - now
        if self._queued >= self.flush_rows:
            return 0.0
        return max(0.0, (self._oldest or now) + self.flush_seconds - now)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    due = self._due()
                    if due == 0.0:
                        break
                    if due is None and self._closed:
                        return
                    self._now = False
                    self._cond.wait(due)
                batch, self._pending, self._oldest = self._pending, [], None
                self._now = False
                closing = self._closed
            try:
                left = self._write(batch)
            except Exception as exc:  # a bug must not kill the thread: that batch is dropped
                self._failed(f"{type(exc).__name__}: {exc}")
                left, closing = batch, True
            with self._cond:
                self._queued -= sum(map(len, batch)) - sum(map(len, left))
                if left and closing:
                    self.dropped_rows += sum(map(len, left))
                    self._queued -= sum(map(len, left))
                elif left:
                    self._pending[:0] = left
                    self._oldest = time.monotonic()
                    self._failures += 1
                    backoff = min(_RETRY_MAX, _RETRY_MIN * 2 ** (self._failures - 1))
                    self._retry_at = time.monotonic() + max(backoff, self.flush_seconds)
                else:
                    self._failures = 0
                self._cond.notify_all()
            if not left and self.error is not None:
                self.error = None
                self._report(f"mlcd: prediction log {self.location}: writing again")

    def _write(self, batch: list[_Entry]) -> list[_Entry]:
        """Write ``batch`` (one file per UTC date); the entries not written."""
        by_date: dict[str, list[_Entry]] = {}
        for entry in batch:
            by_date.setdefault(entry.at.strftime("%Y-%m-%d"), []).append(entry)
        left: list[_Entry] = []
        for day, entries in by_date.items():
            if left:  # the store failed: keep the rest for the retry
                left.extend(entries)
                continue
            data = _parquet(_frame(entries))
            self._seq += 1
            first = entries[0].at
            stamp = first.strftime("%Y%m%dT%H%M%S") + f"{first.microsecond // 1000:03d}"
            name = f"{stamp}-{self._host}-{os.getpid()}-{self._seq:06d}.parquet"
            try:
                storage.write_bytes(storage.join(self.location, f"date={day}", name), data)
            except StorageError as exc:
                self._failed(str(exc))
                left.extend(entries)
                continue
            self.files_written += 1
            self.written_rows += sum(map(len, entries))
        return left

    def _failed(self, message: str) -> None:
        self._problem = message
        self.last_error = message
        self.last_error_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        first, self.error = self.error is None, message
        if first:  # once per outage: the message names each file, so it changes every time
            self._report(
                f"mlcd: prediction log {self.location}: cannot write ({message}); requests are "
                "still answered, rows are kept and retried (see /health)"
            )


def _take(
    inputs: pd.DataFrame | Sequence[Mapping[str, Any]],
    preds: list[Any],
    shadow: ShadowResult | None,
    keep: list[int],
) -> tuple[Any, list[Any], ShadowResult | None]:
    if isinstance(inputs, pd.DataFrame):
        kept: Any = inputs.iloc[keep]
    else:
        kept = [inputs[i] for i in keep]
    if shadow is not None:
        shadow = ShadowResult(
            shadow.version,
            [shadow.predictions[i] for i in keep],
            [shadow.agrees[i] for i in keep],
        )
    return kept, [preds[i] for i in keep], shadow


def _frame(entries: list[_Entry]) -> pd.DataFrame:
    """One table of ``entries``: their input columns (the union), then the reserved columns."""
    parts: list[pd.DataFrame] = []
    records: list[Mapping[str, Any]] = []
    record_entries: list[_Entry] = []
    order: list[tuple[str, Any]] = []

    def close_records() -> None:
        if records:
            order.append(("records", (list(records), list(record_entries))))
            records.clear()
            record_entries.clear()

    for entry in entries:
        if isinstance(entry.inputs, pd.DataFrame):
            close_records()
            order.append(("frame", entry))
        else:
            records.extend(entry.inputs)
            record_entries.append(entry)
    close_records()
    for kind, item in order:
        if kind == "frame":
            frame = item.inputs.reset_index(drop=True)
            frame.columns = [str(c) for c in frame.columns]
            parts.append(_with_reserved(frame, [item]))
        else:
            rows, owners = item
            parts.append(_with_reserved(pd.DataFrame.from_records(rows), owners))
    if len(parts) == 1:
        return parts[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # all-NA columns in the concat
        return pd.concat(parts, ignore_index=True, sort=False)


def _with_reserved(frame: pd.DataFrame, entries: list[_Entry]) -> pd.DataFrame:
    frame = frame.drop(columns=[c for c in frame.columns if str(c).startswith(PREFIX)])
    out = {str(c): frame[c] for c in frame.columns}
    n = len(frame)
    out[TIME] = pd.Series(
        pd.DatetimeIndex([e.at for e in entries for _ in range(len(e))], tz="UTC")
        if n
        else pd.DatetimeIndex([], tz="UTC")
    )
    out[VERSION] = pd.Series([e.version for e in entries for _ in range(len(e))], dtype=object)
    out[SOURCE] = pd.Series([e.source for e in entries for _ in range(len(e))], dtype=object)
    out[REQUEST] = pd.Series([e.request for e in entries for _ in range(len(e))], dtype=object)
    out[PREDICTION] = pd.Series([p for e in entries for p in e.predictions])
    if any(e.shadow is not None for e in entries):
        versions: list[str | None] = []
        preds: list[Any] = []
        agrees: list[bool | None] = []
        for e in entries:
            if e.shadow is None:
                versions += [None] * len(e)
                preds += [None] * len(e)
                agrees += [None] * len(e)
            else:
                versions += [e.shadow.version] * len(e)
                preds += list(e.shadow.predictions)
                agrees += list(e.shadow.agrees)
        out[SHADOW_VERSION] = pd.Series(versions, dtype=object)
        out[SHADOW_PREDICTION] = pd.Series(preds)
        out[SHADOW_AGREES] = pd.Series(agrees, dtype="boolean")
    return pd.DataFrame(out)


def _parquet(frame: pd.DataFrame) -> bytes:
    """Parquet bytes of ``frame``; a column of values Arrow cannot type together (a number in
    one row, text in another) is stored as text, so one odd request never loses a batch."""
    import pyarrow as pa

    for _ in range(2):
        try:
            buf = io.BytesIO()
            frame.to_parquet(buf, engine="pyarrow", index=False, compression="zstd")
            return buf.getvalue()
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
            frame = frame.copy()
            for column in frame.columns:
                if frame[column].dtype == object:
                    try:
                        pa.array(frame[column], from_pandas=True)
                    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                        frame[column] = [None if _missing(v) else _text(v) for v in frame[column]]
    raise StorageError("cannot encode the prediction batch as Parquet")


def _missing(value: Any) -> bool:
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _text(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, default=str)


# --- reading ----------------------------------------------------------------------------------


def files(location: str, since: dt.datetime | None, until: dt.datetime | None) -> list[str]:
    """The log's files in the days from ``since`` to ``until`` (UTC), as full locations."""
    out = []
    for folder in storage.list_dir(location):
        match = _DATE_FOLDER.fullmatch(folder)
        if not match:
            continue
        day = dt.date.fromisoformat(match.group(1))
        if since is not None and day < since.astimezone(dt.UTC).date():
            continue
        if until is not None and day > until.astimezone(dt.UTC).date():
            continue
        base = storage.join(location, folder)
        out += [
            storage.join(base, name)
            for name in storage.list_dir(base)
            if name.endswith(".parquet") and not name.startswith(".")
        ]
    return out


def _utc(stamp: dt.datetime) -> pd.Timestamp:
    ts = pd.Timestamp(stamp)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def read(
    location: str,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    version: str | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Every logged row with ``since <= _mlcd_time <= until`` (naive times are UTC) and, if
    given, ``_mlcd_version == version``: the union of the files' columns (missing ones NaN),
    sorted by ``_mlcd_time``. ``columns`` reads only those (and the reserved ones). An empty
    frame with the reserved columns when nothing is logged."""
    import pyarrow.parquet as pq

    location = storage.check_location(location)
    wanted = None if columns is None else list(dict.fromkeys([*RESERVED, *columns]))
    parts = []
    for path in files(location, since, until):
        blob = storage.read_bytes(path)
        try:
            if wanted is None:
                part = pd.read_parquet(io.BytesIO(blob), engine="pyarrow")
            else:
                names = set(pq.ParquetFile(io.BytesIO(blob)).schema_arrow.names)
                part = pd.read_parquet(
                    io.BytesIO(blob), engine="pyarrow", columns=[c for c in wanted if c in names]
                )
        except Exception as exc:
            raise StorageError(
                f"{path!r} in the prediction log is not a readable Parquet file ({exc}); it was "
                "damaged after it was written: move it away"
            ) from None
        parts.append(part)
    if not parts:
        empty = {c: pd.Series(dtype=object) for c in (*RESERVED, *(wanted or ()))}
        empty[TIME] = pd.Series(pd.DatetimeIndex([], tz="UTC"))
        return pd.DataFrame(empty)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        log = pd.concat(parts, ignore_index=True, sort=False) if len(parts) > 1 else parts[0]
    times = pd.to_datetime(log[TIME], utc=True)
    keep = pd.Series(True, index=log.index)
    if since is not None:
        keep &= times >= _utc(since)
    if until is not None:
        keep &= times <= _utc(until)
    if version is not None:
        keep &= log[VERSION] == version
    log = log[keep]
    order = np.argsort(times[keep].to_numpy(), kind="stable")
    return log.iloc[order].reset_index(drop=True)


def _keys(values: pd.Series) -> pd.Series:
    """Ids as comparable text: 7, 7.0 and "7" are one id; missing ids stay missing."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        floats = pd.to_numeric(values, errors="coerce")
        whole = floats.dropna()
        if len(whole) and bool((whole == np.floor(whole)).all()):
            return floats.astype("Int64").astype("string")
        return floats.astype("string")
    out = values.astype("string")
    return out.where(values.notna())


def labelled(log: pd.DataFrame, labels: pd.DataFrame, id_column: str, target: str) -> pd.DataFrame:
    """The logged rows that have a label, with it in ``_mlcd_label`` (the last label of an id
    wins; ids compared as text, so 7 and "7" match), in the log's order."""
    if id_column not in log.columns and log.empty:
        return log.assign(**{LABEL: pd.Series(dtype=object)})
    if id_column not in log.columns:
        shown = ", ".join(c for c in log.columns if not str(c).startswith(PREFIX)) or "none"
        raise DataError(
            f"the prediction log has no column {id_column!r} (its input columns: {shown}); send "
            "the id with each row scored (extra columns are logged, not given to the model)"
        )
    for column in (id_column, target):
        if column not in labels.columns:
            raise DataError(
                f"the labels have no column {column!r} (they have: "
                f"{', '.join(map(str, labels.columns))}); they need the id {id_column!r} and the "
                f"target {target!r}"
            )
    known = labels.loc[labels[target].notna(), [id_column, target]]
    keys = _keys(known[id_column])
    known = known.assign(_key=keys.to_numpy()).dropna(subset=["_key"])
    last = known.drop_duplicates("_key", keep="last").set_index("_key")[target]
    log_keys = _keys(log[id_column])
    has = log_keys.isin(last.index).fillna(False).to_numpy(dtype=bool)
    out = log.loc[has].copy()
    out[LABEL] = last.reindex(log_keys[has].to_numpy()).to_numpy()
    return out.reset_index(drop=True)


# --- shadow evidence --------------------------------------------------------------------------

METRICS_SHOWN = {"classification": ("accuracy", "f1"), "regression": ("rmse", "mae", "r2")}


def _stamp(value: Any) -> str | None:
    return None if _missing(value) else pd.Timestamp(value).isoformat()


def shadow_evidence(
    log: pd.DataFrame,
    labelled_rows: pd.DataFrame | None = None,
    *,
    task: str = "classification",
    positive_label: Any = None,
    average: str = "macro",
) -> list[dict[str, Any]]:
    """Per shadow version in ``log``: the rows it scored, how many agreed with the served
    version, its errors and time range; with ``labelled_rows`` (``labelled`` of the log), each
    metric of the served predictions and of the shadow's on the labelled rows both scored, and
    the delta (shadow minus served)."""
    if SHADOW_VERSION not in log.columns:
        return []
    out = []
    shadowed = log[log[SHADOW_VERSION].notna()]
    for version, rows in shadowed.groupby(SHADOW_VERSION, sort=True):
        agrees = rows[SHADOW_AGREES]
        scored = int(agrees.notna().sum())
        agreed = int((agrees == True).sum())  # noqa: E712 (a nullable boolean column)
        entry: dict[str, Any] = {
            "version": str(version),
            "against": sorted(map(str, rows[VERSION].dropna().unique())),
            "rows": scored,
            "agreed": agreed,
            "agreement": round(agreed / scored, 6) if scored else None,
            "errors": int(agrees.isna().sum()),
            "first": _stamp(rows[TIME].min()),
            "last": _stamp(rows[TIME].max()),
            "labelled": None,
        }
        if labelled_rows is not None:
            mine = labelled_rows[labelled_rows[SHADOW_VERSION] == version]
            mine = mine[mine[SHADOW_AGREES].notna() & mine[PREDICTION].notna()]
            entry["labelled"] = _compare_on_labels(mine, task, positive_label, average)
        out.append(entry)
    return out


def _compare_on_labels(
    rows: pd.DataFrame, task: str, positive_label: Any, average: str
) -> dict[str, Any]:
    from mlcd import metrics

    n = len(rows)
    result: dict[str, Any] = {"rows": n, "metrics": []}
    if n == 0:
        return result
    label = rows[LABEL].reset_index(drop=True)
    served = rows[PREDICTION].reset_index(drop=True)
    shadow = rows[SHADOW_PREDICTION].reset_index(drop=True)
    if task == "regression":
        y = pd.to_numeric(label, errors="coerce")
        scores = [
            metrics.regression_metrics(y, pd.to_numeric(p, errors="coerce").to_numpy())
            for p in (served, shadow)
        ]
        if n < 2:  # R2 is undefined on one row
            for s in scores:
                s["r2"] = None
    else:
        if not pd.api.types.is_numeric_dtype(label) or not pd.api.types.is_numeric_dtype(served):
            label, served, shadow = _keys(label), _keys(served), _keys(shadow)
            positive_label = None if positive_label is None else str(positive_label)
        classes = sorted(set(label) | set(served) | set(shadow), key=str)
        positive = positive_label if positive_label in classes else None
        scores = [
            metrics.classification_metrics(
                label,
                p.to_numpy(),
                None,
                classes,
                average,
                metrics.positive_label(classes, positive),
            )
            for p in (served, shadow)
        ]
    for name in METRICS_SHOWN[task]:
        a, b = scores[0].get(name), scores[1].get(name)
        delta = float(f"{b - a:.12g}") if a is not None and b is not None else None
        result["metrics"].append({"metric": name, "served": a, "shadow": b, "delta": delta})
    return result
