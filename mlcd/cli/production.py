"""``mlcd models promote``, ``rollback`` and ``history``: changing production by hand, and its
log."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mlcd.cli.common import (
    add_json,
    add_location,
    change_action,
    change_by,
    headline_metric,
    metric_direction,
    num_text,
    pointer_or_problem,
    print_json,
    publish_root,
    signed_text,
    table,
    time_text,
    warn,
)


def add_commands(msub: Any) -> None:
    """Add ``promote``, ``rollback`` and ``history`` to ``mlcd models``."""
    p = msub.add_parser(
        "promote",
        help="put a version in production",
        description="Point production at VERSION (a unique prefix is enough) after checking its "
        "artifacts against the manifest. A version whose gates failed needs --force.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION")
    add_location(p)
    _add_change_options(p)
    p.set_defaults(handler=cmd_models_promote)

    p = msub.add_parser(
        "rollback",
        help="put an earlier version back in production",
        description="Point production back at the version it had before the current one "
        "(successive rollbacks walk further back), or at --to VERSION.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--to", metavar="VERSION", help="the version to return to")
    add_location(p)
    _add_change_options(p)
    p.set_defaults(handler=cmd_models_rollback)

    p = msub.add_parser(
        "history",
        help="every change of production, oldest first; --plot draws the metric over them",
        description="The promotion log: when, which version replaced which, by a run or a "
        "person, gates, metric change and reason.",
    )
    p.add_argument("name", metavar="NAME")
    add_location(p)
    p.add_argument("--plot", metavar="PNG", help="also draw the production metric to this file")
    p.add_argument("--metric", help="the metric to show (default: the pipeline's headline one)")
    add_json(p)
    p.set_defaults(handler=cmd_models_history)


def _add_change_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", default="", help="why (required; written to the promotion log)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="allow a version whose gates failed (the log records it as forced)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for another change of production to finish (default: %(default)s)",
    )
    add_json(parser, "the log record as JSON")


def _report_change(
    publish: str, name: str, record: dict[str, Any], args: argparse.Namespace
) -> None:
    from mlcd import registry

    if args.json:
        print_json(record)
    else:
        forced = " (FORCED: its gates failed)" if record.get("forced") else ""
        if record.get("replaced_corrupted_pointer"):
            forced += " (the corrupted production pointer is repaired)"
        deltas = record.get("metric_deltas") or {}
        changed = [(m, d["delta"]) for m, d in deltas.items() if d.get("delta")]
        shown = ", ".join(f"{m} {signed_text(delta)}" for m, delta in changed) or (
            "no recorded metric changed" if deltas else ""
        )
        print(
            f"model {name}: production is now version {record['version']} (was "
            f"{record.get('previous') or 'none'}){forced}; logged as {record['action']} by "
            f"{change_by(record)}: {record['reason']}"
            + (f"\n  metrics (as recorded, each on its own test set): {shown}" if shown else "")
        )
    _, problems = registry.read_log(publish, name)
    if problems:
        warn(registry.log_problem_message(publish, name, problems))


def cmd_models_promote(args: argparse.Namespace) -> int:
    from mlcd import registry

    publish = publish_root(args)
    registry.require_model(publish, args.name)
    version = registry.resolve_version(publish, args.name, args.version)
    record = registry.promote(
        publish, args.name, version, reason=args.reason, force=args.force, wait=args.wait
    )
    if record is None:
        print(f"model {args.name}: version {version} is already in production; nothing changed")
        return 0
    _report_change(publish, args.name, record, args)
    return 0


def cmd_models_rollback(args: argparse.Namespace) -> int:
    from mlcd import registry

    publish = publish_root(args)
    registry.require_model(publish, args.name)
    to = registry.resolve_version(publish, args.name, args.to) if args.to else None
    record = registry.rollback(
        publish, args.name, to=to, reason=args.reason, force=args.force, wait=args.wait
    )
    _report_change(publish, args.name, record, args)
    return 0


def cmd_models_history(args: argparse.Namespace) -> int:
    from mlcd import registry, storage
    from mlcd.errors import StorageError, UsageError

    publish = publish_root(args)
    name = args.name
    registry.require_model(publish, name)
    records, problems = registry.read_log(publish, name)
    pointer, pointer_problem = pointer_or_problem(publish, name)
    infos = {i["version"]: i for i in registry.list_versions(publish, name)}
    metric = args.metric or headline_metric(list(infos.values()))
    if args.metric and metric_direction(args.metric) is None:
        raise UsageError(f"--metric: unknown metric {args.metric!r}")
    values = {v: i["metrics"].get(metric) for v, i in infos.items()} if metric else {}
    mismatch = None
    if pointer and records and pointer.get("version") != records[-1]["version"]:
        mismatch = (
            f"production.json names version {pointer['version']} but the log's last record "
            f"names {records[-1]['version']}: the next change of production logs the missing "
            "record"
        )
    if args.json:
        print_json(
            {
                "model": name,
                "metric": metric,
                "production": pointer,
                "records": records,
                "values": values,
                "problems": problems,
            }
        )
    else:
        print(_history_text(name, records, metric, values))
    if args.plot:
        if not metric or not records:
            raise UsageError(
                f"nothing to plot for model {name!r}: "
                + ("no promotions yet" if not records else "no metric; pass --metric NAME")
            )
        png = history_plot(name, records, metric, values)
        storage.write_bytes(args.plot, png)
        print(f"plot of {metric} written to {args.plot}", file=sys.stderr)
    if mismatch:
        warn(mismatch)
    if pointer_problem:
        raise StorageError(pointer_problem)
    if problems:
        raise StorageError(registry.log_problem_message(publish, name, problems))
    return 0


def _history_text(
    name: str, records: list[dict[str, Any]], metric: str | None, values: dict[str, Any]
) -> str:
    if not records:
        return f"model {name}: production has never changed"
    rows = []
    for r in records:
        gates = r.get("gates_passed")
        rows.append(
            [
                time_text(r.get("at")),
                change_action(r) + (" (forced)" if r.get("forced") else ""),
                r["version"],
                r.get("previous") or "-",
                change_by(r),
                "-" if gates is None else ("passed" if gates else "FAILED"),
                num_text(values.get(r["version"])) if metric else "-",
                str(r.get("reason", ""))[:60],
            ]
        )
    header = [
        "AT (UTC)",
        "ACTION",
        "VERSION",
        "PREVIOUS",
        "BY",
        "GATES",
        (metric or "metric").upper(),
        "REASON",
    ]
    return f"model {name}: {len(records)} change(s) of production\n\n" + table(rows, header)


def history_plot(
    name: str, records: list[dict[str, Any]], metric: str, values: dict[str, Any]
) -> bytes:
    """A PNG of ``metric`` of the version in production after each change, oldest first."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = list(range(len(records)))
    ys = [values.get(r["version"]) for r in records]
    ys_plot = [float(y) if isinstance(y, int | float) else float("nan") for y in ys]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(records) + 3), 4.5))
    try:
        ax.step(xs, ys_plot, where="post", color="#4c72b0", linewidth=1.5, zorder=1)
        styles = {
            "publish": ("o", "#4c72b0", "published by a run"),
            "promote": ("s", "#55a868", "promoted by a person"),
            "rollback": ("v", "#c44e52", "rolled back"),
        }
        seen: set[str] = set()
        for x, y, r in zip(xs, ys_plot, records, strict=True):
            action = change_action(r)
            marker, color, label = styles.get(action, ("D", "#8172b2", action))
            ax.scatter(
                [x],
                [y],
                marker=marker,
                color=color,
                s=60,
                zorder=2,
                label=None if action in seen else label,
            )
            seen.add(action)
            ax.annotate(
                r["version"][:8],
                (x, y),
                textcoords="offset points",
                xytext=(0, 8),
                ha="center",
                fontsize=8,
            )
        ax.set_xticks(xs)
        ax.set_xticklabels([time_text(r.get("at"))[:16] for r in records], rotation=30, ha="right")
        ax.set_ylabel(metric)
        ax.set_title(f"{name}: {metric} of the version in production, after each change")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
        return buf.getvalue()
    finally:
        plt.close(fig)
