"""``mlcd predict`` and ``mlcd serve``: scoring with a published version."""

from __future__ import annotations

import argparse
import os
from typing import Any

from mlcd.cli.common import add_location, publish_root

DEFAULT_PORT = 8080


def add_commands(sub: Any) -> None:
    """Add ``predict`` and ``serve``."""
    p = sub.add_parser(
        "predict",
        help="score a CSV or Parquet file with a published model",
        description="Score --input with the production version of NAME (or --version) and write "
        "--output: the --keep columns, 'prediction', and for classifiers one 'proba_<class>' "
        "column per class. The model's sha256 and the input's columns and types are checked "
        "first.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--input", required=True, metavar="FILE", help=".csv or .parquet")
    p.add_argument("--output", required=True, metavar="FILE", help=".csv or .parquet")
    p.add_argument("--version", help="a version (or unique prefix); default: production")
    p.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="COLUMN",
        help="an input column to copy to the output and not give the model (e.g. an id); "
        "repeat for more",
    )
    add_location(p)
    p.set_defaults(handler=cmd_predict)

    p = sub.add_parser(
        "serve",
        help="serve a model over HTTP; follows production without a restart",
        description="POST /predict (JSON rows in; predictions and the model version out), GET "
        "/health, GET /version. The production pointer is checked every --poll-interval "
        "seconds; a new version is verified and loaded in the background and swapped in "
        "without dropping requests. Stop with SIGTERM or Ctrl-C.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s; 0: any free)"
    )
    p.add_argument(
        "--version", help="serve this version and ignore production (default: follow production)"
    )
    p.add_argument(
        "--poll-interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how often to check the production pointer (default: %(default)s)",
    )
    p.add_argument("--access-log", action="store_true", help="log every request to stderr")
    add_location(p)
    p.set_defaults(handler=cmd_serve)


def _frame_format(path: str, flag: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    formats = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
    if suffix not in formats:
        from mlcd.errors import UsageError

        raise UsageError(f"{flag} {path!r}: give a .csv or .parquet file")
    return formats[suffix]


def cmd_predict(args: argparse.Namespace) -> int:
    from mlcd import registry

    publish = publish_root(args)
    in_format = _frame_format(args.input, "--input")
    out_format = _frame_format(args.output, "--output")
    name = args.name
    registry.require_model(publish, name)
    expected = None
    if args.version:
        version = registry.resolve_version(publish, name, args.version)
        which = "given"
    else:
        version = registry.production_version(publish, name)
        pointer = registry.production(publish, name)
        expected = pointer.get("model_sha256") if pointer else None
        which = "production"

    import io

    import pandas as pd

    from mlcd import storage
    from mlcd.app import scoring
    from mlcd.errors import DataError

    loaded = registry.load_version(publish, name, version, expected_sha256=expected)
    if not storage.exists(args.input):
        raise DataError(f"--input {args.input!r} does not exist")
    raw = storage.read_bytes(args.input)
    try:
        if in_format == "csv":
            dtypes = {**loaded.schema.csv_dtypes(), **{k: str for k in args.keep}}
            frame = pd.read_csv(io.BytesIO(raw), dtype=dtypes or None, float_precision="round_trip")
        else:
            frame = pd.read_parquet(io.BytesIO(raw))
    except Exception as exc:
        raise DataError(
            f"--input {args.input!r} cannot be read as {in_format}: {exc}".splitlines()[0]
        ) from None
    if frame.empty:
        raise DataError(f"--input {args.input!r} has no rows to score")
    hint = (
        "Rows are counted from 0 (the first data row). Pass --keep COLUMN for an input column "
        f"to copy to the output; `mlcd models show {name}:{version}` shows the schema"
    )
    notes: list[str] = []
    out = scoring.predict_frame(
        loaded, frame, keep=args.keep, hint=hint, text_numbers=in_format == "csv", notes=notes
    )
    if out_format == "csv":
        data = out.to_csv(index=False).encode()
    else:
        buf = io.BytesIO()
        out.to_parquet(buf, index=False)
        data = buf.getvalue()
    storage.write_bytes(args.output, data)
    print(
        f"scored {len(out)} row(s) of {args.input} with model {name} version {version} "
        f"({which}); wrote {args.output}"
    )
    for note in notes:
        print(f"note: {note}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from mlcd.app import serving

    publish = publish_root(args)
    return serving.serve(
        publish,
        args.name,
        host=args.host,
        port=args.port,
        version=args.version,
        poll_interval=args.poll_interval,
        access_log=args.access_log,
    )
