"""What every ``mlcd`` command shares: the default config, how options are declared, and how
results are printed (JSON, tables, warnings, one-line errors). Heavy libraries are imported
inside the commands, so that ``mlcd --help`` starts fast."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from typing import Any

DEFAULT_CONFIG = os.path.join("config", "pipeline.yaml")


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-01-31") from None


def add_config(parser: argparse.ArgumentParser, what: str) -> None:
    """``--config``, whose ``what`` the command reads."""
    parser.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        help=f"pipeline YAML whose {what} (default: %(default)s)",
    )


def add_json(parser: Any, what: str = "JSON") -> None:
    """``--json``: print ``what`` as JSON instead of text."""
    parser.add_argument("--json", action="store_true", help=f"print {what}")


def add_workers_and_scheduler(parser: argparse.ArgumentParser) -> None:
    """``--workers`` and where the scheduler is, as ``mlcd run`` and ``mlcd backfill`` take them."""
    parser.add_argument(
        "--workers", type=int, default=1, help="parallel worker processes (default: 1)"
    )
    sched = parser.add_mutually_exclusive_group()
    sched.add_argument(
        "--local-scheduler",
        action="store_true",
        help="use an in-process scheduler (the default unless luigi.cfg names one)",
    )
    sched.add_argument("--scheduler-host", help="luigid host (central scheduler)")
    parser.add_argument(
        "--scheduler-port", type=int, default=None, help="luigid port (default 8082)"
    )


def group(sub: Any, name: str, **kwargs: Any) -> Any:
    """A command with subcommands (``mlcd models``, ``mlcd runs``): alone, it prints its help."""
    parser = sub.add_parser(name, **kwargs)
    parser.set_defaults(handler=lambda args: show_help(parser))
    return parser, parser.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")


def show_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def one_line(message: str) -> str:
    """An error as the one line mlcd prints: a newline inside it (from a library's message, a
    key in the config) is shown escaped."""
    return message.strip().replace("\r", "\\r").replace("\n", "\\n")


def add_location(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        help="pipeline YAML whose 'publish' key is the registry (default: %(default)s)",
    )
    where.add_argument("--registry", metavar="DIR", help="the registry folder itself")


def publish_root(args: argparse.Namespace) -> str:
    """The registry: --registry DIR, or the 'publish' location of --config."""
    from mlcd.errors import ConfigError, NotFound

    if args.registry:
        root: str = args.registry
        if "://" not in root and not os.path.isdir(root):
            raise NotFound(
                f"no registry at {root!r} (no such folder); pass the folder that holds the "
                "models (the config's 'publish' location) to --registry"
            )
        return root
    if not os.path.exists(args.config):
        raise ConfigError(
            f"cannot read config {args.config!r} (no such file); pass --config PATH (its "
            "'publish' key locates the registry) or --registry DIR"
        )
    from mlcd.config import load_config

    return load_config(args.config).publish


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def warn(message: str) -> None:
    print(f"mlcd: warning: {message}", file=sys.stderr)


def time_text(stamp: Any) -> str:
    """An ISO time as 'YYYY-MM-DD HH:MM:SS' (UTC)."""
    if not isinstance(stamp, str):
        return "-"
    return stamp[:19].replace("T", " ")


def num_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{value:.4f}"


def signed_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{value:+.4f}"


def table(rows: list[list[Any]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def metric_direction(metric: str) -> str | None:
    from mlcd.catalogue import METRICS

    for task in METRICS.values():
        if metric in task:
            return task[metric]
    return None


def verdict_word(delta: Any, metric: str) -> str:
    direction = metric_direction(metric)
    if not isinstance(delta, int | float) or direction is None:
        return ""
    if delta == 0:
        return "same"
    better = delta > 0 if direction == "max" else delta < 0
    return "better" if better else "worse"


def pointer_or_problem(publish: str, name: str) -> tuple[dict[str, Any] | None, str | None]:
    from mlcd import registry
    from mlcd.errors import StorageError

    try:
        return registry.production(publish, name), None
    except StorageError as exc:
        return None, str(exc)


def headline_metric(infos: list[dict[str, Any]]) -> str | None:
    prod = [i for i in infos if i["production"] and i["headline_metric"]]
    for info in prod + infos[::-1]:
        if info["headline_metric"]:
            return str(info["headline_metric"])
    return None


def change_action(record: dict[str, Any]) -> str:
    """What a log record did (records written before mlcd logged it: a run published)."""
    action = record.get("action")
    if isinstance(action, str):
        return action
    return "publish" if record.get("actor") == "run" else "promote"


def change_by(record: dict[str, Any]) -> str:
    actor = record.get("actor") or "?"
    user = record.get("user")
    return f"{actor} {user}" if user and user != actor else str(actor)
