"""How to keep mlcd's snapshot: Parquet (zstd, lz4, uncompressed) against Arrow IPC (Feather v2),
read from bytes and memory-mapped, on a numeric table and a table like a user's.

    .venv/bin/python benchmarks/frame_formats.py [--rows 1000000] [--repeats 3]
                                                 [--out benchmarks/results/frame_formats.json]

Per format and table: the file's size, the time to write it (frame to bytes), to read it back
into a DataFrame from bytes in memory (how mlcd reads: the bytes are checked against the
snapshot's sha256 first, which reads all of them anyway), and from a memory-mapped file (how a
local reader could avoid the copy); the median of ``--repeats``. The tables: pipeline_cost.py's
``make_classification`` frame (20 float features, an int label: random floats do not compress)
and tests/tables.py's churn table (text ids, dates, categories, NaNs, a text label). Prints a
table and writes the JSON; nothing is asserted.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from pipeline_cost import dataset  # noqa: E402

from tests import tables  # noqa: E402


def parquet(compression: str) -> Any:
    def write(frame: pd.DataFrame) -> bytes:
        buf = io.BytesIO()
        frame.to_parquet(buf, engine="pyarrow", index=True, compression=compression)
        return buf.getvalue()

    def read(blob: bytes) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(blob), engine="pyarrow")

    def mapped(path: str) -> pd.DataFrame:
        return pq.read_table(path, memory_map=True).to_pandas()

    return write, read, mapped


def ipc(compression: str | None) -> Any:
    def write(frame: pd.DataFrame) -> bytes:
        sink = pa.BufferOutputStream()
        feather.write_feather(frame, sink, compression=compression or "uncompressed")
        return bytes(sink.getvalue())

    def read(blob: bytes) -> pd.DataFrame:
        return feather.read_feather(pa.BufferReader(blob))

    def mapped(path: str) -> pd.DataFrame:
        return feather.read_feather(path, memory_map=True)

    return write, read, mapped


FORMATS = {
    "parquet zstd (mlcd's)": parquet("zstd"),
    "parquet lz4": parquet("lz4"),
    "parquet none": parquet("none"),
    "arrow ipc none": ipc(None),
    "arrow ipc lz4": ipc("lz4"),
}


def median_seconds(work: Any, repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        out = work()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3), out


def measure(frame: pd.DataFrame, repeats: int, scratch: Path) -> list[dict[str, Any]]:
    rows = []
    for name, (write, read, mapped) in FORMATS.items():
        write_s, blob = median_seconds(lambda w=write: w(frame), repeats)
        path = scratch / "frame.bin"
        path.write_bytes(blob)
        read_s, back = median_seconds(lambda r=read, b=blob: r(b), repeats)
        mapped_s, _ = median_seconds(lambda m=mapped, p=str(path): m(p), repeats)
        rows.append(
            {
                "format": name,
                "mb": round(len(blob) / 1e6, 1),
                "write_s": write_s,
                "read_bytes_s": read_s,
                "read_mapped_s": mapped_s,
                "same_frame": bool(back.equals(frame)),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "frame_formats.json")
    args = parser.parse_args()
    numeric = pd.read_parquet(dataset(args.rows)[0])
    churn = tables.churn(args.rows)
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, Python {platform.python_version()}, "
        f"pyarrow {pa.__version__}, pandas {pd.__version__}",
        "rows": args.rows,
        "tables": {},
    }
    with tempfile.TemporaryDirectory() as scratch:
        for name, frame in (("numeric", numeric), ("churn", churn)):
            mb = round(frame.memory_usage(deep=True).sum() / 1e6, 1)
            print(f"measuring {name} ({args.rows} rows, {mb} MB in memory) ...", file=sys.stderr)
            found = measure(frame, args.repeats, Path(scratch))
            report["tables"][name] = {"memory_mb": mb, "formats": found}
    print(f"{'table':8} {'format':22} {'MB':>7} {'write s':>8} {'read s':>7} {'mmap s':>7}  same")
    for name, found in report["tables"].items():
        for row in found["formats"]:
            print(
                f"{name:8} {row['format']:22} {row['mb']:>7} {row['write_s']:>8} "
                f"{row['read_bytes_s']:>7} {row['read_mapped_s']:>7}  {row['same_frame']}"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
