"""``mlcd ui``: the registry, and a config's runs, as a small web page."""

from __future__ import annotations

import argparse
from typing import Any

from mlcd.cli.common import add_location, publish_root

DEFAULT_PORT = 8083  # luigid has 8082, mlcd serve 8080


def add_commands(sub: Any) -> None:
    """Add ``ui``."""
    p = sub.add_parser(
        "ui",
        help="browse the registry (and a config's runs) in a web browser",
        description="A read-only web page of the registry: its models, each model's versions, "
        "gates and production history, each version's metrics, plots, reports, manifest and "
        "lineage. Started with --config, also the runs of its workspace and why each task ran. "
        "--allow-changes adds promote and rollback buttons. Stop with SIGTERM or Ctrl-C.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s; 0: any free)"
    )
    p.add_argument(
        "--allow-changes",
        action="store_true",
        help="show promote and rollback buttons (each needs a reason; the log records it)",
    )
    p.add_argument(
        "--allow-remote-changes",
        action="store_true",
        help="allow --allow-changes on an address other than loopback (the page has no "
        "authentication: put it behind a proxy that adds it)",
    )
    add_location(p)
    p.set_defaults(handler=cmd_ui)


def cmd_ui(args: argparse.Namespace) -> int:
    from mlcd.app import ui

    publish = publish_root(args)
    workspace = None
    if not args.registry:
        from mlcd.config import load_config

        workspace = load_config(args.config).workspace
    site = ui.Site(publish, workspace=workspace, allow_changes=args.allow_changes)
    return ui.serve(
        site, host=args.host, port=args.port, allow_remote_changes=args.allow_remote_changes
    )
