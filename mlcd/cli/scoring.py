"""``mlcd predict`` and ``mlcd serve``: scoring with a published version."""

from __future__ import annotations

import argparse
from typing import Any

from mlcd.cli.common import add_location, publish_root

DEFAULT_PORT = 8080


def _add_log_options(p: argparse.ArgumentParser, unit: str) -> None:
    p.add_argument(
        "--prediction-log",
        metavar="LOCATION",
        help="where to log what is scored (a folder or s3:// URI), or 'off' (default: the "
        "model's folder in the registry, <registry>/NAME/predictions)",
    )
    p.add_argument(
        "--log-sample-rate",
        default="1",
        metavar="R",
        help=f"share of the {unit} to log, more than 0 and at most 1 (default: 1, all)",
    )


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
    _add_log_options(p, "rows")
    add_location(p)
    p.set_defaults(handler=cmd_predict)

    p = sub.add_parser(
        "serve",
        help="serve a model over HTTP; follows production without a restart",
        description="POST /predict (JSON rows in; predictions and the model version out), GET "
        "/health, GET /version. The production pointer is checked every --poll-interval "
        "seconds; a new version is verified and loaded in the background and swapped in "
        "without dropping requests. What is scored is logged (--prediction-log); --shadow "
        "scores a second version on the same rows in the background and records whether it "
        "agrees. Stop with SIGTERM or Ctrl-C.",
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
    p.add_argument(
        "--shadow",
        metavar="VERSION",
        help="also score every request with this version, in the background: its answers are "
        "never returned, its agreement with the served version is logged and on /health",
    )
    _add_log_options(p, "requests")
    p.add_argument(
        "--log-flush-seconds",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="the longest a logged row waits before its batch is written (default: %(default)s)",
    )
    add_location(p)
    p.set_defaults(handler=cmd_serve)


def cmd_predict(args: argparse.Namespace) -> int:
    from mlcd import registry
    from mlcd.app import scoring
    from mlcd.monitoring import predlog

    publish = publish_root(args)
    scoring.table_format(args.input, "--input")
    out_format = scoring.table_format(args.output, "--output")
    rate = predlog.check_sample_rate(args.log_sample_rate)
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
    location = None
    if args.prediction_log != predlog.OFF:
        location = predlog.check_location(
            args.prediction_log or predlog.default_location(publish, name)
        )

    import io

    from mlcd import storage

    loaded = registry.load_version(publish, name, version, expected_sha256=expected)
    in_csv = scoring.table_format(args.input, "--input") == "csv"
    dtypes = {**loaded.schema.csv_dtypes(), **{k: str for k in args.keep}} if in_csv else None
    frame = scoring.read_table(args.input, "--input", dtypes)
    hint = (
        "Rows are counted from 0 (the first data row). Pass --keep COLUMN for an input column "
        f"to copy to the output; `mlcd models show {name}:{version}` shows the schema"
    )
    notes: list[str] = []
    out = scoring.predict_frame(
        loaded, frame, keep=args.keep, hint=hint, text_numbers=in_csv, notes=notes
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
    if location is not None:
        _log_predictions(location, rate, frame, out["prediction"].tolist(), version)
    return 0


def _log_predictions(
    location: str, rate: float, frame: Any, preds: list[Any], version: str
) -> None:
    """Every scored row (or a share ``rate`` of them) in the prediction log, written before the
    command returns; a store that fails now is a warning: the predictions are written."""
    import uuid

    from mlcd.cli.common import warn
    from mlcd.monitoring import predlog

    problems: list[str] = []
    log = predlog.PredictionLog(
        location,
        sample_rate=rate,
        flush_rows=len(frame),
        max_queue_rows=max(predlog.DEFAULT_MAX_QUEUE_ROWS, len(frame)),
        report=problems.append,
    )
    logged = log.record(
        frame, preds, version=version, source="predict", request_id=uuid.uuid4().hex
    )
    log.flush(timeout=120)
    log.close(timeout=1)
    if log.written_rows:
        print(f"logged {log.written_rows} row(s) to {location}")
    elif logged or problems:
        warn(f"the prediction log was not written: {log.last_error or '; '.join(problems)}")


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
        prediction_log=args.prediction_log,
        log_sample_rate=args.log_sample_rate,
        log_flush_seconds=args.log_flush_seconds,
        shadow=args.shadow,
    )
