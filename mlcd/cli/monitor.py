"""``mlcd monitor``: has what production receives drifted from what its model was trained on?"""

from __future__ import annotations

import argparse
from typing import Any

from mlcd.cli.common import add_config, add_json, print_json, table


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "monitor",
        help="drift of production's logged inputs from the training data (exit 11 on drift)",
        description="Compare the inputs and predictions `mlcd serve` and `mlcd predict` logged "
        "for NAME with the profile of the training data its production version keeps: per "
        "column PSI, KS, Wasserstein, chi-square, null rate and unseen categories, judged by "
        "the config's 'monitor' thresholds; realised metrics when labels are configured. "
        "Prints a table, writes drift.json, report.html and plots into the registry "
        "(<publish>/NAME/monitoring/<time>/) or --report DIR, and exits 11 on drift, 0 "
        "otherwise (also when there are too few logged rows to judge).",
    )
    p.add_argument("name", metavar="NAME")
    add_config(p, "'publish' key is the registry and 'monitor' section the thresholds")
    p.add_argument(
        "--since",
        metavar="WHEN",
        help="from a date (2026-12-01, 00:00 UTC), a UTC time (2026-12-01T08:30:00) or a "
        "duration back from now (90m, 24h, 7d); default: the start of the log",
    )
    p.add_argument("--until", metavar="WHEN", help="up to WHEN (same forms); default: now")
    p.add_argument(
        "--log",
        metavar="LOCATION",
        help="the prediction log (default: the config's monitor.log, else "
        "<publish>/NAME/predictions, where `mlcd serve` writes)",
    )
    p.add_argument("--report", metavar="DIR", help="write the report into DIR instead")
    p.add_argument(
        "--deep",
        action="store_true",
        help="also run deepchecks' FeatureDrift and PredictionDrift against the version's "
        "training split, when the workspace still holds it (slower)",
    )
    p.add_argument(
        "--retrain",
        action="store_true",
        help="on drift, run the pipeline (as `mlcd run --config C` does) before exiting 11",
    )
    add_json(p, "the verdict as JSON")
    p.set_defaults(handler=cmd_monitor)


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def render(result: dict[str, Any]) -> str:
    from mlcd.monitoring.drift import as_threshold_text

    head = (
        f"mlcd monitor: model {result['model']}, version {result['version']}: "
        f"{result['rows']} logged row(s) from {result['since'] or 'the start'} to "
        f"{result['until'] or 'now'}"
    )
    lines = [head]
    if result["findings"]:
        rows = [
            [
                f["column"],
                f["test"],
                _number(f["statistic"]),
                as_threshold_text(f["test"], f["threshold"], f.get("noise")),
                f["verdict"].upper() if f["verdict"] == "drift" else f["verdict"],
            ]
            for f in result["findings"]
        ]
        lines.append(table(rows, ["COLUMN", "TEST", "STATISTIC", "THRESHOLD", "VERDICT"]))
        if any(r[3].endswith("*") for r in rows):
            lines.append(
                "* the threshold raised to what chance alone reaches with this many rows "
                "(99 times in 100); log more rows to judge smaller changes"
            )
    lines.append(f"{result['status'].upper()}: {result['message']}")
    deep = result.get("deep")
    if isinstance(deep, dict):
        lines.append(f"deepchecks: {deep.get('summary')}")
    lines.append(f"report: {result['report']}")
    return "\n".join(lines)


def cmd_monitor(args: argparse.Namespace) -> int:
    from mlcd.app import monitor
    from mlcd.errors import MlcdError

    result = monitor.monitor(
        args.config,
        args.name,
        since=args.since,
        until=args.until,
        report_dir=args.report,
        log=args.log,
        deep=args.deep,
    )
    if args.json:
        print_json(result)
    else:
        print(render(result))
    try:
        monitor.raise_on_drift(args.config, result, retrain=args.retrain)
    except MlcdError as exc:
        if exc.report is not None and not args.json:  # the retrain's summary
            from mlcd.app.report import render as render_run

            print(render_run(exc.report))
        raise
    return 0
