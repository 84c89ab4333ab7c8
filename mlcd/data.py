"""Extracting, checking and splitting the data, on DataFrames and bytes.

A source is a bundled scikit-learn dataset or a CSV/Parquet file on local disk or S3. Its
fingerprint (content digest or ETag, not modification time) decides whether extraction must run
again.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd

from mlcd import storage
from mlcd.config import PipelineConfig, SourceConfig
from mlcd.errors import DataError, StorageError
from mlcd.fingerprint import sha256_bytes
from mlcd.storage.integrity import mismatch, verified

DEFAULT_TARGET = "target"


def source_fingerprint(source: SourceConfig) -> dict[str, Any]:
    """What identifies the source's content, computed without parsing it: a local file's sha256
    and size, an S3 object's ETag and size (no download). ``{date}`` must be filled in already
    (``SourceConfig.for_date``)."""
    if source.dataset is not None:
        from importlib import metadata  # not sklearn itself: a second to import

        version = metadata.version("scikit-learn")
        return {"kind": "sklearn", "dataset": source.dataset, "sklearn": version}
    assert source.path is not None
    try:
        described = _describe(source.path)
    except StorageError as exc:
        if "does not exist" not in str(exc):
            raise
        raise DataError(
            f"source file {source.path!r} does not exist. Check source.path in the config"
            + (" (and that the day's partition was written)" if "{" in source.path else "")
        ) from None
    return {"kind": source.format, **described}


def _describe(path: str) -> dict[str, Any]:
    # An S3 source is described once per process: a run computes its identities from the
    # source as it found it at its start (a local file is re-checked: its stat is free).
    if not storage.is_s3(path):
        return storage.describe(path)
    if path not in _described:
        _described[path] = storage.describe(path)
    return dict(_described[path])


_described: dict[str, dict[str, Any]] = {}


def _load_bundled(name: str) -> pd.DataFrame:
    from sklearn import datasets

    loader = getattr(datasets, f"load_{name}")
    frame = loader(as_frame=True).frame
    frame.columns = [str(c) for c in frame.columns]
    return frame


# How much of a CSV source ``source_columns`` checks for UTF-8.
_CSV_HEAD = 64 * 1024


def source_columns(source: SourceConfig) -> list[str]:
    """The column names of the source, reading as little as possible (a CSV's first line, a
    Parquet file's footer)."""
    if source.dataset is not None:
        return list(_load_bundled(source.dataset).columns)
    assert source.path is not None
    try:
        with storage.open_read(source.path, seekable=source.format == "parquet") as handle:
            if source.format == "parquet":
                import pyarrow.parquet as pq

                return list(pq.read_schema(handle).names)
            # The first block, not only the header: pandas 3 reads no further than the header,
            # and a file that is not UTF-8 should fail here, before any work, as it did before.
            head = handle.read(_CSV_HEAD)
            codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < _CSV_HEAD)
            rest = b"" if b"\n" in head else handle.read()  # a header longer than the block
            return list(pd.read_csv(io.BytesIO(head + rest), nrows=0).columns)
    except FileNotFoundError:
        raise DataError(
            f"source file {source.path!r} does not exist. Check source.path in the config"
        ) from None
    except StorageError:
        raise
    except Exception as exc:
        raise DataError(
            f"cannot read the columns of {source.path!r} as {source.format}: "
            + " ".join(str(exc).split())  # pandas' messages may end in a newline
        ) from None


def load_source(source: SourceConfig, columns: list[str] | None = None) -> pd.DataFrame:
    """Read the source into a DataFrame: all its columns, or only ``columns`` (a Parquet
    source then reads only those from disk or S3)."""
    if source.dataset is not None:
        frame = _load_bundled(source.dataset)
        return frame if columns is None else frame[[c for c in frame.columns if c in columns]]
    assert source.path is not None
    parquet = source.format == "parquet"
    try:
        with storage.open_read(source.path, seekable=parquet) as handle:
            if parquet:
                if columns is not None:
                    import pyarrow.parquet as pq

                    names = pq.read_schema(handle).names
                    columns = [c for c in names if c in columns]  # the file's order
                    handle.seek(0)
                frame = pd.read_parquet(handle, columns=columns)
            else:
                repeated = _repeated_csv_names(source.path, columns)
                if repeated:  # pandas would keep both, renaming the second 'a' to 'a.1'
                    raise DataError(
                        f"the source has duplicated column names: {', '.join(repeated)}; "
                        "rename them"
                    )
                frame = pd.read_csv(
                    handle, usecols=None if columns is None else lambda c: c in columns
                )
    except FileNotFoundError:
        raise DataError(f"source file {source.path!r} does not exist") from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"source file {source.path!r} is not UTF-8 ({exc.reason} at byte {exc.start}); "
            "re-encode it as UTF-8"
        ) from None
    except (StorageError, DataError):
        raise
    except Exception as exc:
        raise DataError(
            f"cannot read {source.path!r} as {source.format}: " + " ".join(str(exc).split())
        ) from None
    return frame


def _repeated_csv_names(path: str, columns: list[str] | None) -> list[str]:
    """The names a CSV's header line repeats, among ``columns`` (all when None)."""
    with storage.open_read(path) as handle:
        header = pd.read_csv(handle, nrows=1, header=None, dtype=str, keep_default_na=False)
    names = [str(n) for n in header.iloc[0]] if len(header) else []
    used = [n for n in names if columns is None or n in columns]
    return sorted({n for n in used if used.count(n) > 1})


def check_columns(cfg: PipelineConfig, columns: list[str]) -> None:
    """The target and the listed features must be columns of the source."""
    from mlcd.errors import ConfigError

    shown = ", ".join(columns[:12]) + (", ..." if len(columns) > 12 else "")
    if cfg.target not in columns:
        raise ConfigError(
            f"target: column {cfg.target!r} is not in the source data; its columns are: {shown}"
        )
    missing = [f for f in cfg.features or [] if f not in columns]
    if missing:
        raise ConfigError(
            f"features: column(s) {', '.join(map(repr, missing))} not in the source data; "
            f"its columns are: {shown}"
        )


def make_snapshot(frame: pd.DataFrame, cfg: PipelineConfig) -> pd.DataFrame:
    """Select the target and features, and refuse data that cannot be trained on."""
    if frame.columns.duplicated().any():
        dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise DataError(f"the source has duplicated column names: {', '.join(dupes)}; rename them")
    frame.columns = [str(c) for c in frame.columns]
    check_columns(cfg, list(frame.columns))
    features = cfg.features or [c for c in frame.columns if c != cfg.target]
    if not features:
        raise DataError("the source has no feature columns besides the target")
    snap = frame[[*features, cfg.target]]
    if snap.empty:
        raise DataError("the source has no rows")
    label = snap[cfg.target]
    if pd.api.types.is_object_dtype(label) or pd.api.types.is_string_dtype(label):
        label = label.where(label.astype(str).str.strip() != "")  # a blank label is missing
    missing = label.isna()
    if missing.all():
        raise DataError(f"the target column {cfg.target!r} is empty in every row")
    if missing.any():
        if not cfg.target_drop_missing:
            raise DataError(
                f"the target column {cfg.target!r} is empty in {int(missing.sum())} row(s); "
                "drop or fill those rows in the source, or set target.drop_missing: true"
            )
        snap = snap[~missing]  # counted by the caller: len(frame) - len(snap)
    snap = snap.reset_index(drop=True)
    if cfg.task == "classification" and snap[cfg.target].nunique() < 2:
        raise DataError(
            f"the target column {cfg.target!r} has a single class; classification needs two or more"
        )
    if cfg.task == "regression" and not pd.api.types.is_numeric_dtype(snap[cfg.target]):
        raise DataError(
            f"the target column {cfg.target!r} is not numeric; regression needs numbers"
        )
    all_nan = [c for c in cfg.features or [] if snap[c].isna().all()]
    if all_nan:  # listed as features: an inferred all-empty column is 'constant', not a feature
        raise DataError(
            f"feature column(s) {', '.join(map(repr, all_nan))} listed under 'features' are "
            "entirely empty; fix the source, or remove them from 'features'"
        )
    for column in [*features, cfg.target]:
        if column not in cfg.columns:
            _refuse_stray_text(snap[column], column)
    return snap


def _refuse_stray_text(values: pd.Series, column: str) -> None:
    """A column of numbers with a few text values (a CSV then reads the whole column as text)
    is broken data that a numeric estimator fails on mid-run; deepchecks' MixedDataTypes lets a
    type under 1% of the rows pass, so it is refused here, naming the first such value."""
    # Text is object dtype in pandas 2 and the string dtype in pandas 3.
    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return
    present = values.dropna()
    text = present[pd.to_numeric(present, errors="coerce").isna()]
    if 0 < len(text) < len(present) - len(text):  # mostly numbers
        raise DataError(
            f"column {column!r} holds numbers and text: {len(text)} of {len(present)} values "
            f"are not numbers (data row {text.index[0]}, counting from 0, has "
            f"{text.iloc[0]!r}); fix or empty those values in the source, or set "
            f"columns.{column}: categorical to treat the column as text"
        )


def to_parquet(frame: pd.DataFrame) -> bytes:
    """Parquet bytes that depend only on the data (no timestamps, no paths)."""
    buf = io.BytesIO()
    frame.to_parquet(buf, engine="pyarrow", index=True, compression="zstd")
    return buf.getvalue()


def read_parquet(path: str) -> pd.DataFrame:
    return _parse_parquet(storage.read_bytes(path), path)


def _parse_parquet(blob: bytes, path: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(io.BytesIO(blob), engine="pyarrow")
    except Exception as exc:
        raise StorageError(
            f"{path!r} is not a readable Parquet file ({exc}); it is corrupted: delete it and run "
            "again to rebuild it"
        ) from None


# --- snapshots, kept by content ------------------------------------------------------------------

SNAPSHOTS = "snapshots"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def snapshot_path(workspace: str, sha256: str) -> str:
    """Where the snapshot with this digest lives: ``<workspace>/snapshots/<sha256>.parquet``."""
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise StorageError(f"{sha256!r} is not a snapshot digest (64 hex digits)")
    return storage.join(workspace, SNAPSHOTS, f"{sha256}.parquet")


def write_snapshot(workspace: str, blob: bytes) -> str:
    """Keep ``blob`` under its own sha256 (unless an intact copy is there); its digest.

    A snapshot is never replaced by other content: the name is the content. An older run's
    snapshot stays when the source changes, so that run can still be reproduced. The frame the
    bytes read back to is kept in memory for the tasks that run next in this process.
    """
    digest = sha256_bytes(blob)
    path = snapshot_path(workspace, digest)
    if not storage.exists(path) or mismatch(storage.read_bytes(path), digest):
        storage.write_bytes(path, blob)
    if _keeping[0]:
        _remember(digest, _parse_parquet(blob, path))
    return digest


# Snapshots read (or written) by this process, by digest. A snapshot never changes (its name is
# its content, checked when first read), so the tasks of one worker process share one frame
# instead of each reading and decoding the file (docs/decisions.md). Read back from the bytes,
# never the frame that was written: a task sees the same dtypes in any process. Each caller gets
# a shallow copy, which copy-on-write (pandas 3) keeps from changing the kept frame. Only while
# a task runs (``keeping_frames``): any other read checks the file's bytes again.
_FRAMES: dict[str, pd.DataFrame] = {}
KEEP_FRAMES = 2
_keeping = [False]


@contextlib.contextmanager
def keeping_frames() -> Iterator[None]:
    """Within: snapshots are read once per process and kept (``_FRAMES``)."""
    before, _keeping[0] = _keeping[0], True
    try:
        yield
    finally:
        _keeping[0] = before


def _remember(digest: str, frame: pd.DataFrame) -> None:
    _FRAMES.pop(digest, None)
    _FRAMES[digest] = frame
    while len(_FRAMES) > KEEP_FRAMES:
        _FRAMES.pop(next(iter(_FRAMES)))


def read_snapshot(workspace: str, sha256: str) -> pd.DataFrame:
    """The snapshot with this digest, after checking that its bytes still have it (once per
    process: the frame is kept, see ``_FRAMES``)."""
    path = snapshot_path(workspace, sha256)
    kept = _FRAMES.get(sha256) if _keeping[0] else None
    if kept is not None:
        return kept.copy(deep=False)
    if not storage.exists(path):
        raise StorageError(
            f"snapshot {sha256[:12]} is not in {storage.join(workspace, SNAPSHOTS)!r} (deleted?); "
            "run the pipeline again to extract the source anew"
        )
    blob = verified(
        storage.read_bytes(path),
        sha256,
        lambda actual: (
            f"snapshot {path!r} does not match its name (its sha256 is "
            f"{actual[:12]}): it was changed or corrupted. Delete it and run the pipeline again to "
            "extract the source anew"
        ),
    )
    frame = _parse_parquet(blob, path)
    if _keeping[0]:
        _remember(sha256, frame)
    return frame.copy(deep=False)


def date_column(cfg: PipelineConfig, roles: Mapping[str, Mapping[str, str]] | None) -> str | None:
    """The data's date: ``split.time_column``, else the first datetime column (None: none). A
    split by time orders rows on it, and deepchecks' date checks read it."""
    if cfg.split.time_column is not None:
        return cfg.split.time_column
    dates = [c for c, r in (roles or {}).items() if r["role"] == "datetime"]
    return dates[0] if dates else None


def split_column(cfg: PipelineConfig, roles: dict[str, dict[str, str]] | None) -> str | None:
    """The date a split by time orders rows on, None for a random split (``split.method``)."""
    has_dates = any(r["role"] == "datetime" for r in (roles or {}).values())
    if cfg.split.method == "random" or (cfg.split.method == "auto" and not has_dates):
        return None
    when = date_column(cfg, roles)
    if when is None:
        raise DataError(
            "split.method is time, but no column is a datetime; name one with split.time_column "
            "or columns: {<column>: datetime}"
        )
    return when


def split(
    frame: pd.DataFrame, cfg: PipelineConfig, roles: dict[str, dict[str, str]] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The train and test sets of ``split_mask``, each in the frame's row order."""
    test_rows = split_mask(frame, cfg, roles)
    return split_rows(frame, test_rows, "train"), split_rows(frame, test_rows, "test")


def split_rows(frame: pd.DataFrame, test_rows: Any, which: str) -> pd.DataFrame:
    """The ``train`` rows of ``frame`` (outside the boolean mask ``test_rows``, one per row) or
    its ``test`` rows (inside it), in the frame's order: a copy of those rows only."""
    import numpy as np

    mask = np.asarray(test_rows, dtype=bool)
    if mask.shape != (len(frame),):
        raise StorageError(
            f"the split marks {mask.size} rows but the snapshot has {len(frame)}: it belongs to "
            "another snapshot; delete the split task's folder and run again"
        )
    return frame[mask] if which == "test" else frame[~mask]


def split_mask(
    frame: pd.DataFrame, cfg: PipelineConfig, roles: dict[str, dict[str, str]] | None = None
) -> Any:
    """A deterministic train/test split as a boolean mask over the frame's rows (True: test):
    by time when the data has a date (the newest ``test_size`` of the rows, whole days of them,
    are the test set), else at random, stratified for classification when asked."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    when = split_column(cfg, roles)
    if when is not None:
        return _test_rows_by_time(frame, when, cfg.split.test_size)

    stratify = None
    if cfg.task == "classification" and cfg.split.stratify:
        counts = frame[cfg.target].value_counts()
        if counts.min() < 2:
            raise DataError(
                f"class {counts.idxmin()!r} has a single row, too few to stratify the split; "
                "add rows or set split.stratify: false"
            )
        stratify = frame[cfg.target].to_numpy()
    try:
        # Row positions, not the frame: the same draw as splitting the frame itself, without
        # copying it (SplitData keeps only this mask; the sets are taken from the snapshot).
        _, test = train_test_split(
            np.arange(len(frame)),
            test_size=cfg.split.test_size,
            random_state=cfg.split.seed,
            stratify=stratify,
        )
    except ValueError as exc:
        raise DataError(f"cannot split the data: {exc}") from None
    mask = np.zeros(len(frame), dtype=bool)
    mask[test] = True
    return mask


def _test_rows_by_time(frame: pd.DataFrame, column: str, test_size: float) -> Any:
    import warnings

    if column not in frame.columns:
        raise DataError(f"split.time_column: {column!r} is not a column of the data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        when = pd.to_datetime(frame[column], errors="coerce")
    if getattr(when.dt, "tz", None) is not None:
        when = when.dt.tz_convert("UTC").dt.tz_localize(None)
    # The cut falls between two dates: rows of one date are never on both sides.
    cut = when.quantile(1 - test_size)
    test_rows = when > cut
    if not test_rows.any() or test_rows.all():
        raise DataError(
            f"cannot split by time on {column!r}: too few distinct dates for a test set of "
            f"{test_size:.0%}; set split.method: random"
        )
    return test_rows.to_numpy(dtype=bool)


def mask_to_parquet(test_rows: Any) -> bytes:
    """The split's mask as Parquet: one boolean column ``test``, a row per snapshot row."""
    return to_parquet(pd.DataFrame({"test": test_rows}))


def mask_from_parquet(blob: bytes, path: str) -> Any:
    frame = _parse_parquet(blob, path)
    if list(frame.columns) != ["test"] or not pd.api.types.is_bool_dtype(frame["test"]):
        raise StorageError(
            f"{path!r} is not a split mask (one boolean column 'test'); it is corrupted: delete "
            "it and run again to rebuild it"
        )
    return frame["test"].to_numpy()


def features_and_target(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.Series]:
    return frame.drop(columns=[target]), frame[target]
