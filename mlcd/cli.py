"""The ``mlcd`` command line. Heavy libraries are imported inside the commands, so that
``mlcd --help`` starts fast."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import sys
import tempfile
from typing import Any

from mlcd import __version__

DEFAULT_CONFIG = os.path.join("config", "pipeline.yaml")
FAILURE_LOG_ENV = "MLCD_FAILURE_LOG"


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-01-31") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlcd",
        description="Continuous delivery of machine-learning models on Luigi.",
        epilog="Exit codes: 0 success, 1 internal error, 2 config error, 3 gate failed, "
        "4 data error, 5 pipeline failed, 6 already running, 7 storage error, 8 not found, "
        "9 not reproduced.",
    )
    parser.add_argument("--version", action="version", version=f"mlcd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the retrain pipeline: extract, validate, train, evaluate, gate, publish",
        description="Run the retrain pipeline for one config and date. Tasks already complete "
        "are skipped; a model is published only when every blocking gate passes.",
    )
    run.add_argument(
        "--config", default=DEFAULT_CONFIG, help="pipeline YAML (default: %(default)s)"
    )
    run.add_argument(
        "--date", type=_date, default=None, help="run date, YYYY-MM-DD (default: today)"
    )
    run.add_argument(
        "--workers", type=int, default=1, help="parallel worker processes (default: 1)"
    )
    sched = run.add_mutually_exclusive_group()
    sched.add_argument(
        "--local-scheduler",
        action="store_true",
        help="use an in-process scheduler (the default unless luigi.cfg names one)",
    )
    sched.add_argument("--scheduler-host", help="luigid host (central scheduler)")
    run.add_argument("--scheduler-port", type=int, default=None, help="luigid port (default 8082)")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")

    from mlcd.registry_cli import add_commands

    add_commands(sub)  # models, predict, serve
    from mlcd import lineage_cli

    lineage_cli.add_commands(sub)  # runs, lineage, reproduce, status
    return parser


def _skip_slow_optional_imports() -> None:
    """luigi imports jsonschema, which imports rfc3987_syntax (if installed, as it is beside
    deepchecks' notebook stack) only for its optional "iri" format check, and that module
    builds a grammar at import: 1.2 s of every mlcd command on 2 cores. mlcd validates no JSON
    schema with "iri" formats, so the check is left out (jsonschema skips it on ImportError)."""
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    _skip_slow_optional_imports()
    from mlcd.errors import MlcdError

    try:
        if args.command == "run":
            return cmd_run(args)
        if hasattr(args, "handler"):  # models, predict, serve (mlcd/registry_cli.py)
            return int(args.handler(args))
    except MlcdError as exc:
        print(one_line(f"mlcd: {exc.kind}: {exc}"), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mlcd: interrupted", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command!r}")
    return 2


def one_line(message: str) -> str:
    """An error as the one line mlcd prints: a newline inside it (from a library's message, a
    key in the config) is shown escaped."""
    return message.strip().replace("\r", "\\r").replace("\n", "\\n")


def _scheduler_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    import luigi.configuration

    host = args.scheduler_host
    if host is None and not args.local_scheduler:
        conf = luigi.configuration.get_config()
        if conf.has_option("core", "default_scheduler_host"):
            host = conf.get("core", "default_scheduler_host")
    if host is None:
        return {"local_scheduler": True}
    kwargs: dict[str, Any] = {"local_scheduler": False, "scheduler_host": host}
    if args.scheduler_port is not None:
        kwargs["scheduler_port"] = args.scheduler_port
    return kwargs


class _HideKnownErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from mlcd.errors import MlcdError

        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, MlcdError)


def cmd_run(args: argparse.Namespace) -> int:
    from mlcd.config import load_config

    if args.workers < 1:
        from mlcd.errors import ConfigError

        raise ConfigError(f"--workers must be 1 or more (got {args.workers})")
    cfg = load_config(args.config)  # a bad config ends here, before luigi is imported
    date = args.date or dt.date.today()

    import tasks

    # A known error ends with mlcd's one-line message below; luigi's traceback adds nothing.
    logging.getLogger("luigi-interface").addFilter(_HideKnownErrors())
    # A missing source or a column the config names but the data lacks ends here too, in one
    # line: the source is looked at only when it would be extracted (the task Luigi checks next).
    extract = tasks.ExtractData(config_path=args.config, date=date)
    if not extract.complete():
        from mlcd import data

        data.check_columns(cfg, data.source_columns(extract.source()))
    root = tasks.RetrainPipeline(config_path=args.config, date=date)
    if args.workers > 1 and not root.complete():
        _preload(cfg)
    scheduler = _scheduler_kwargs(args)
    with contextlib.ExitStack() as stack:
        if scheduler["local_scheduler"]:
            # luigid keeps two runs of one date from running a task twice; without it, the lock.
            take_run_lock(stack, args.config, date)
        return _build_and_report(root, args, scheduler)


def _preload(cfg: Any) -> None:
    """Import what the tasks will need before Luigi forks a process per task: the forks share
    the parent's modules instead of each importing scikit-learn (1 s) and deepchecks (4 s)."""
    from mlcd.config import import_object

    for spec in cfg.models().values():
        import_object(spec.estimator)
    if any(getattr(cfg.validation, suite).enabled for suite in type(cfg.validation).model_fields):
        import deepchecks.tabular  # noqa: F401
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401


def take_run_lock(stack: contextlib.ExitStack, config: str, date: dt.date) -> None:
    """An exclusive lock on (config, date) for runs with the local scheduler, held until
    ``stack`` closes; the kernel drops it when the holder dies, so no lock goes stale."""
    import hashlib

    from mlcd import storage
    from mlcd.errors import AlreadyRunning

    key = hashlib.sha256(f"{os.path.realpath(config)}|{date.isoformat()}".encode()).hexdigest()
    path = os.path.join(tempfile.gettempdir(), "mlcd-locks", f"{key[:24]}.lock")
    try:
        stack.enter_context(storage.exclusive_lock(path, {"pid": os.getpid()}, wait=0))
    except AlreadyRunning as exc:
        raise AlreadyRunning(
            f"another mlcd run of {config} for {date.isoformat()} is running ({exc}); wait for "
            "it to finish, or run both through luigid (--scheduler-host), which runs each task "
            "once"
        ) from None


def execute(
    root: Any, *, workers: int, scheduler: dict[str, Any], run_id: str
) -> tuple[Any, list[dict[str, Any]]]:
    """Build ``root`` with Luigi as run ``run_id``: Luigi's result, and the failures the tasks
    recorded (in whichever worker process they ran)."""
    import luigi

    from mlcd.lineage import RUN_ID_ENV
    from tasks.base import THREADS_ENV

    interface = logging.getLogger("luigi-interface")
    if not any(isinstance(f, _HideKnownErrors) for f in interface.filters):
        # A known error ends with mlcd's one-line message; luigi's traceback adds nothing.
        interface.addFilter(_HideKnownErrors())
    with tempfile.NamedTemporaryFile("w+", prefix="mlcd-failures-", suffix=".jsonl") as log:
        os.environ[FAILURE_LOG_ENV] = log.name
        os.environ[RUN_ID_ENV] = run_id  # PublishModel records it in the version's manifest
        if workers > 1 and len(root.requires().cfg.models()) > 1:
            # Only candidates run side by side; a lone task keeps every core for its fit.
            os.environ[THREADS_ENV] = str(max(1, (os.cpu_count() or 1) // workers))
        try:
            result = luigi.build(
                [root],
                detailed_summary=True,
                workers=workers,
                log_level="WARNING",
                **scheduler,
            )
        finally:
            os.environ.pop(FAILURE_LOG_ENV, None)
            os.environ.pop(RUN_ID_ENV, None)
            os.environ.pop(THREADS_ENV, None)
        log.seek(0)
        failures = [json.loads(line) for line in log if line.strip()]
    return result, failures


def record_run(
    root: Any,
    report: dict[str, Any],
    *,
    run_id: str,
    started_at: dt.datetime,
    exit_code: int,
    scheduler: dict[str, Any],
    workers: int,
) -> str | None:
    """Write the run's manifest to ``<workspace>/runs/<run-id>/``; its path (None, with a
    warning, if it cannot be written: the run's own outcome stands)."""
    from mlcd import lineage

    try:
        manifest = lineage.run_manifest(
            root,
            report,
            run_id=run_id,
            started_at=started_at,
            exit_code=exit_code,
            scheduler=scheduler,
            workers=workers,
        )
        return lineage.write_run_manifest(root.requires().cfg.workspace, manifest)
    except Exception as exc:
        print(f"mlcd: warning: run {run_id}'s manifest was not written: {exc}", file=sys.stderr)
        return None


def _build_and_report(root: Any, args: argparse.Namespace, scheduler: dict[str, Any]) -> int:
    from mlcd import lineage
    from mlcd.errors import MlcdError, PipelineFailed
    from mlcd.run_report import collect, render

    run_id = lineage.new_run_id()
    started_at = dt.datetime.now(dt.UTC)
    result, failures = execute(root, workers=args.workers, scheduler=scheduler, run_id=run_id)
    report = collect(root, result, failures)
    message = None
    if report["ok"]:
        code = 0
    elif failures:
        first = failures[0]
        code = int(first["exit_code"])
        message = one_line(f"mlcd: {first['kind']}: {first['task']}: {first['message']}")
    else:
        error: MlcdError = PipelineFailed(
            f"the pipeline did not finish (luigi status: {report['status']}); see the log above"
        )
        code, message = error.exit_code, f"mlcd: {error.kind}: {error}"
    report["run_id"] = run_id
    report["run_manifest"] = record_run(
        root,
        report,
        run_id=run_id,
        started_at=started_at,
        exit_code=code,
        scheduler=scheduler,
        workers=args.workers,
    )
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
    else:
        print(render(report))
    if message:
        print(message, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
