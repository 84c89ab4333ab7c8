"""The ``mlcd`` command line: one parser made of each command module's ``add_commands``, one
dispatch (every command sets a ``handler``) and one error path (an MlcdError becomes one line on
stderr and its exit code). Heavy libraries are imported inside the commands, so that
``mlcd --help`` starts fast."""

from __future__ import annotations

import argparse
import os
import sys

from mlcd import __version__
from mlcd.cli import backfill, models, monitor, production, run, runs, scoring, ui
from mlcd.cli.common import one_line
from mlcd.errors import MlcdError, exit_codes_text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlcd",
        description="Continuous delivery of machine-learning models on Luigi.",
        epilog=exit_codes_text(),
    )
    parser.add_argument("--version", action="version", version=f"mlcd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run.add_commands(sub)  # run
    backfill.add_commands(sub)  # backfill
    production.add_commands(
        models.add_commands(sub)
    )  # models: list, show; promote, rollback, history
    scoring.add_commands(sub)  # predict, serve
    runs.add_commands(sub)  # runs, lineage, reproduce, status
    ui.add_commands(sub)  # ui
    monitor.add_commands(sub)  # monitor
    return parser


def _skip_slow_optional_imports() -> None:
    """luigi imports jsonschema, which imports rfc3987_syntax (if installed, as it is beside
    deepchecks' notebook stack) only for its optional "iri" format check, and that module
    builds a grammar at import: 1.2 s of every mlcd command on 2 cores. mlcd validates no JSON
    schema with "iri" formats, so the check is left out (jsonschema skips it on ImportError)."""
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    try:
        code = _dispatch(argv)
        sys.stdout.flush()  # here, so that a reader that went away is seen below
        return code
    except BrokenPipeError:
        # The reader stopped early (`mlcd lineage ... | head`): what it read is what it wanted.
        # Nothing more may reach the closed pipe, not even the interpreter's last flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _dispatch(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    _skip_slow_optional_imports()
    try:
        return int(args.handler(args))
    except MlcdError as exc:
        print(one_line(f"mlcd: {exc.kind}: {exc}"), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mlcd: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
