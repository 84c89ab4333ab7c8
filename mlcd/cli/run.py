"""``mlcd run``: the retrain pipeline for one config and date, and its summary."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from mlcd.cli.common import DEFAULT_CONFIG, add_json, add_workers_and_scheduler, parse_date


def add_commands(sub: Any) -> None:
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
        "--date", type=parse_date, default=None, help="run date, YYYY-MM-DD (default: today)"
    )
    add_workers_and_scheduler(run)
    add_json(run, "the summary as JSON")
    run.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from mlcd.app import run
    from mlcd.errors import ConfigError, MlcdError

    if args.workers < 1:
        raise ConfigError(f"--workers must be 1 or more (got {args.workers})")
    try:
        report = run.run(
            args.config,
            args.date or dt.date.today(),
            workers=args.workers,
            scheduler_host=args.scheduler_host,
            scheduler_port=args.scheduler_port,
            local_scheduler=args.local_scheduler,
        )
    except MlcdError as exc:
        if exc.report is not None:  # the run got as far as Luigi: its summary, then the error
            _print_report(exc.report, args.json)
        raise
    _print_report(report, args.json)
    return 0


def _print_report(report: dict[str, Any], as_json: bool) -> None:
    from mlcd.app.report import render

    if as_json:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
    else:
        print(render(report))
