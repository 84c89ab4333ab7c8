"""``mlcd backfill``: the retrain pipeline for each day of a range that is not complete."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mlcd.cli.common import DEFAULT_CONFIG, add_json, add_workers_and_scheduler, parse_date


def add_commands(sub: Any) -> None:
    cmd = sub.add_parser(
        "backfill",
        help="run the pipeline for each day of a range that is not complete yet",
        description="Run the retrain pipeline for every day from --from to --to (both "
        "included), oldest first, each as one `mlcd run` of that day; days already complete "
        "are skipped. A day older than production's run date is published but never put in "
        "production. Exit code: 0 when every day is complete, else the first failed day's.",
    )
    cmd.add_argument(
        "--config", default=DEFAULT_CONFIG, help="pipeline YAML (default: %(default)s)"
    )
    cmd.add_argument(
        "--from",
        dest="start",
        type=parse_date,
        required=True,
        metavar="YYYY-MM-DD",
        help="first day",
    )
    cmd.add_argument(
        "--to",
        dest="stop",
        type=parse_date,
        required=True,
        metavar="YYYY-MM-DD",
        help="last day (today at the latest)",
    )
    add_workers_and_scheduler(cmd)
    add_json(cmd, "the outcome of each day and the summary as JSON")
    cmd.set_defaults(handler=cmd_backfill)


def cmd_backfill(args: argparse.Namespace) -> int:
    from mlcd.app.backfill import backfill, day_line, summary_line
    from mlcd.errors import ConfigError

    if args.workers < 1:
        raise ConfigError(f"--workers must be 1 or more (got {args.workers})")
    result = backfill(
        args.config,
        args.start,
        args.stop,
        workers=args.workers,
        scheduler_host=args.scheduler_host,
        scheduler_port=args.scheduler_port,
        local_scheduler=args.local_scheduler,
        on_day=None if args.json else lambda day: print(day_line(day), flush=True),
    )
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(summary_line(result))
    return int(result["exit_code"])
