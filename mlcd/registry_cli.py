"""The registry commands of ``mlcd``: ``models`` (list, show, promote, rollback, history),
``predict`` and ``serve``. ``mlcd.cli`` adds them to its parser; heavy libraries are imported
inside the commands so that ``mlcd --help`` stays fast."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

DEFAULT_CONFIG = os.path.join("config", "pipeline.yaml")
DEFAULT_PORT = 8080


# --- the parser ------------------------------------------------------------------------------


def _add_location(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        help="pipeline YAML whose 'publish' key is the registry (default: %(default)s)",
    )
    where.add_argument("--registry", metavar="DIR", help="the registry folder itself")


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
    parser.add_argument("--json", action="store_true", help="print the log record as JSON")


def add_commands(sub: Any) -> None:
    """Add ``models``, ``predict`` and ``serve`` to mlcd's subcommands."""
    models = sub.add_parser(
        "models",
        help="the model registry: list, show, promote, rollback, history",
        description="Inspect the registry and change which version is in production. Every "
        "change is appended to the model's promotion log with who did it and why.",
    )
    models.set_defaults(handler=lambda args: _help(models))
    msub = models.add_subparsers(dest="models_command", metavar="SUBCOMMAND")

    p = msub.add_parser(
        "list",
        help="the models, or one model's versions in creation order",
        description="Without NAME: every model with its production version. With NAME: its "
        "versions, oldest first, with creation time, headline metric, gates and which is in "
        "production.",
    )
    p.add_argument("name", nargs="?", metavar="NAME")
    _add_location(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_models_list)

    p = msub.add_parser(
        "show",
        help="one version: metrics beside production's, gates, integrity, schema, promotions",
        description="Show a version (default: the one in production). VERSION may be a unique "
        "prefix. Every artifact is re-hashed against the manifest.",
    )
    p.add_argument("spec", metavar="NAME[:VERSION]")
    _add_location(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_models_show)

    p = msub.add_parser(
        "promote",
        help="put a version in production",
        description="Point production at VERSION (a unique prefix is enough) after checking its "
        "artifacts against the manifest. A version whose gates failed needs --force.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION")
    _add_location(p)
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
    _add_location(p)
    _add_change_options(p)
    p.set_defaults(handler=cmd_models_rollback)

    p = msub.add_parser(
        "history",
        help="every change of production, oldest first; --plot draws the metric over them",
        description="The promotion log: when, which version replaced which, by a run or a "
        "person, gates, metric change and reason.",
    )
    p.add_argument("name", metavar="NAME")
    _add_location(p)
    p.add_argument("--plot", metavar="PNG", help="also draw the production metric to this file")
    p.add_argument("--metric", help="the metric to show (default: the pipeline's headline one)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_models_history)

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
    _add_location(p)
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
    _add_location(p)
    p.set_defaults(handler=cmd_serve)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


# --- shared ----------------------------------------------------------------------------------


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


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def _warn(message: str) -> None:
    print(f"mlcd: warning: {message}", file=sys.stderr)


def _time(stamp: Any) -> str:
    """An ISO time as 'YYYY-MM-DD HH:MM:SS' (UTC)."""
    if not isinstance(stamp, str):
        return "-"
    return stamp[:19].replace("T", " ")


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{value:.4f}"


def _signed(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{value:+.4f}"


def _table(rows: list[list[Any]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _direction(metric: str) -> str | None:
    from mlcd.metrics import METRICS

    for task in METRICS.values():
        if metric in task:
            return task[metric]
    return None


def _verdict_word(delta: Any, metric: str) -> str:
    direction = _direction(metric)
    if not isinstance(delta, int | float) or direction is None:
        return ""
    if delta == 0:
        return "same"
    better = delta > 0 if direction == "max" else delta < 0
    return "better" if better else "worse"


def _pointer_or_problem(publish: str, name: str) -> tuple[dict[str, Any] | None, str | None]:
    from mlcd import registry
    from mlcd.errors import StorageError

    try:
        return registry.production(publish, name), None
    except StorageError as exc:
        return None, str(exc)


# --- models list -----------------------------------------------------------------------------


def cmd_models_list(args: argparse.Namespace) -> int:
    from mlcd import registry
    from mlcd.errors import StorageError

    publish = publish_root(args)
    if args.name is None:
        return _list_models(publish, args)
    registry.require_model(publish, args.name)
    name = args.name
    pointer, problem = _pointer_or_problem(publish, name)
    infos = registry.list_versions(publish, name)
    if args.json:
        _print_json({"model": name, "production": pointer, "versions": infos})
    else:
        print(_versions_text(name, infos, pointer, problem))
    if problem:
        raise StorageError(problem)
    return 0


def _list_models(publish: str, args: argparse.Namespace) -> int:
    from mlcd import registry

    out = []
    problems = []
    for name in registry.list_models(publish):
        pointer, problem = _pointer_or_problem(publish, name)
        if problem:
            problems.append(problem)
        out.append(
            {
                "model": name,
                "versions": len(registry.version_ids(publish, name)),
                "production": pointer.get("version") if pointer else None,
                "since": pointer.get("updated_at") if pointer else None,
                "by": (pointer.get("user") or pointer.get("actor")) if pointer else None,
                "problem": problem,
            }
        )
    if args.json:
        _print_json(out)
    elif not out:
        print(f"no models in the registry at {publish} (publish one with `mlcd run`)")
    else:
        rows = [
            [
                m["model"],
                str(m["versions"]),
                m["production"] or ("unreadable" if m["problem"] else "-"),
                _time(m["since"]),
                m["by"] or "-",
            ]
            for m in out
        ]
        print(_table(rows, ["MODEL", "VERSIONS", "PRODUCTION", "SINCE (UTC)", "BY"]))
    if problems:
        from mlcd.errors import StorageError

        raise StorageError(problems[0])
    return 0


def _headline(infos: list[dict[str, Any]]) -> str | None:
    prod = [i for i in infos if i["production"] and i["headline_metric"]]
    for info in prod + infos[::-1]:
        if info["headline_metric"]:
            return str(info["headline_metric"])
    return None


def _versions_text(
    name: str, infos: list[dict[str, Any]], pointer: dict[str, Any] | None, problem: str | None
) -> str:
    if pointer:
        by = pointer.get("user") or pointer.get("actor") or "?"
        head = (
            f"model {name}: {len(infos)} version(s); production {pointer['version']} since "
            f"{_time(pointer.get('updated_at'))} UTC ({pointer.get('action', 'promote')} by {by})"
        )
    elif problem:
        head = f"model {name}: {len(infos)} version(s); production pointer unreadable"
    else:
        head = f"model {name}: {len(infos)} version(s); none in production"
    metric = _headline(infos)
    rows = []
    for info in infos:
        if info["problem"]:
            status = "damaged: see `mlcd models show`"
        elif info["production"]:
            status = "production"
        elif info["promotions"]:
            status = "was in production"
        else:
            status = ""
        rows.append(
            [
                ("* " if info["production"] else "  ") + info["version"],
                _time(info["created_at"]),
                info["run_date"] or "-",
                _num(info["metrics"].get(metric)) if metric else "-",
                "passed" if info["gates"]["passed"] else "FAILED",
                status,
            ]
        )
    header = ["  VERSION", "CREATED (UTC)", "RUN DATE", (metric or "METRIC").upper(), "GATES", ""]
    return head + "\n\n" + _table(rows, header)


# --- models show -----------------------------------------------------------------------------


def _split_spec(spec: str) -> tuple[str, str | None]:
    name, sep, version = spec.partition(":")
    return name, (version if sep else None)


def cmd_models_show(args: argparse.Namespace) -> int:
    from mlcd import registry
    from mlcd.errors import StorageError

    publish = publish_root(args)
    name, wanted = _split_spec(args.spec)
    registry.require_model(publish, name)
    pointer, pointer_problem = _pointer_or_problem(publish, name)
    records, log_problems = registry.read_log(publish, name)
    current = pointer["version"] if pointer else None
    if wanted:
        version = registry.resolve_version(publish, name, wanted)
    elif current is not None:
        version = registry.production_version(publish, name)
    else:
        infos = registry.list_versions(publish, name)
        if not infos:
            from mlcd.errors import NotFound

            raise NotFound(f"model {name!r} has no versions yet; publish one with `mlcd run`")
        version = infos[-1]["version"]
    info = registry.version_summary(publish, name, version, records=records, current=current)
    problems: list[str] = []
    if info["problem"] is None:
        problems = registry.verify_version(publish, name, version)
    prod_info = None
    if (
        current is not None
        and current != version
        and current in registry.version_ids(publish, name)
    ):
        prod_info = registry.version_summary(
            publish, name, current, records=records, current=current
        )
    comparison = _compare(info, prod_info)
    schema = _schema_summary(publish, name, version)
    involved = [r for r in records if r.get("version") == version or r.get("previous") == version]
    result = {
        **info,
        "integrity": {"ok": not problems and info["problem"] is None, "problems": problems},
        "production_version": current,
        "comparison": comparison,
        "schema": schema,
        "promotion_records": involved,
    }
    if args.json:
        _print_json(result)
    else:
        print(_show_text(result, prod_info))
    if log_problems:
        _warn(registry.log_problem_message(publish, name, log_problems))
    if info["problem"]:
        raise StorageError(info["problem"])
    if problems:
        raise StorageError(
            f"version {version} of model {name!r} is damaged ({'; '.join(problems)}): mlcd will "
            "not load or promote it. Restore its folder from a backup, or publish a new version"
        )
    if pointer_problem:
        raise StorageError(pointer_problem)
    return 0


def _schema_summary(publish: str, name: str, version: str) -> dict[str, Any] | None:
    from mlcd import registry, storage

    folder = registry.version_dir(publish, name, version)
    path = storage.join(folder, registry.SCHEMA_FILE)
    try:
        schema = storage.read_json(path) if storage.exists(path) else None
    except Exception:
        schema = None
    if not isinstance(schema, dict):
        return None
    example = storage.join(folder, registry.EXAMPLE_FILE)
    return {
        "features": schema.get("features"),
        "dtypes": schema.get("dtypes"),
        "target": schema.get("target"),
        "task": schema.get("task"),
        "input_example": example if storage.exists(example) else None,
    }


def _compare(info: dict[str, Any], prod: dict[str, Any] | None) -> list[dict[str, Any]]:
    from mlcd.metrics import METRICS

    task = info["metrics"].get("task") or (prod or {}).get("metrics", {}).get("task")
    names = list(METRICS.get(str(task), {})) or sorted(
        {m for t in METRICS.values() for m in t} & set(info["metrics"])
    )
    out = []
    for metric in names:
        ours = info["metrics"].get(metric)
        theirs = prod["metrics"].get(metric) if prod else None
        if ours is None and theirs is None:
            continue
        delta = (
            float(f"{ours - theirs:.12g}")
            if isinstance(ours, int | float) and isinstance(theirs, int | float)
            else None
        )
        out.append(
            {
                "metric": metric,
                "version": ours,
                "production": theirs,
                "delta": delta,
                "verdict": _verdict_word(delta, metric),
            }
        )
    return out


def _show_text(result: dict[str, Any], prod: dict[str, Any] | None) -> str:
    lines = []
    version, name = result["version"], result["model"]
    if result["production"]:
        where = "in production"
    elif result["production_version"]:
        where = f"production is {result['production_version']}"
    else:
        where = "no version in production"
    lines.append(f"model {name} version {version} ({where})")
    lines.append(f"  created     {_time(result['created_at'])} UTC   run date {result['run_date']}")
    if result["estimator"]:
        candidate = result.get("candidate")
        cand = f" (candidate {candidate})" if candidate and candidate != "model" else ""
        lines.append(f"  estimator   {result['estimator']}{cand}")
        lines.append(f"  params      {json.dumps(result['params'], sort_keys=True)}")
    gates = result["gates"]
    stages = ", ".join(
        f"{stage} {'passed' if s['passed'] else 'FAILED: ' + ', '.join(s['blocking_failures'])}"
        for stage, s in gates.get("stages", {}).items()
    )
    lines.append(
        f"  gates       {'passed' if gates['passed'] else 'FAILED'}"
        + (f" ({stages})" if stages else f" ({gates.get('problem', 'no verdict')})")
    )
    integrity = result["integrity"]
    lines.append(
        "  integrity   "
        + (
            "ok: every artifact matches the sha256 in its manifest"
            if integrity["ok"]
            else "DAMAGED: " + "; ".join(integrity["problems"] or [str(result["problem"])])
        )
    )
    schema = result["schema"]
    if schema and isinstance(schema.get("features"), list):
        from mlcd.schema import InputSchema

        described = InputSchema.from_json(schema, "schema.json").describe()
        lines.append(
            f"  input       {described}; target {schema.get('target')!r} ({schema.get('task')})"
        )
        lines.append(f"  example     {schema['input_example'] or '-'}")
    lines.append(f"  location    {result['path']}")
    if result["comparison"]:
        lines.append("")
        if prod is not None:
            production = f"PRODUCTION ({prod['version'][:8]})"
            header = ["  METRIC", "THIS VERSION", production, "DELTA", ""]
            rows = [
                [
                    "  " + c["metric"],
                    _num(c["version"]),
                    _num(c["production"]),
                    _signed(c["delta"]),
                    c["verdict"],
                ]
                for c in result["comparison"]
            ]
        else:
            header = ["  METRIC", "THIS VERSION"]
            rows = [["  " + c["metric"], _num(c["version"])] for c in result["comparison"]]
        lines.append(_table(rows, header))
    if result["promotion_records"]:
        lines.append("")
        lines.append("  promotions:")
        for r in result["promotion_records"]:
            into = r.get("version") == version
            what = "into production" if into else f"replaced by {r.get('version')}"
            lines.append(
                f"    {_time(r.get('at'))}  {_action(r)} {what} by {_who(r)}: {r.get('reason', '')}"
            )
    return "\n".join(lines)


def _action(record: dict[str, Any]) -> str:
    """What a log record did (records written before mlcd logged it: a run published)."""
    action = record.get("action")
    if isinstance(action, str):
        return action
    return "publish" if record.get("actor") == "run" else "promote"


def _who(record: dict[str, Any]) -> str:
    actor = record.get("actor") or "?"
    user = record.get("user")
    return f"{actor} {user}" if user and user != actor else str(actor)


# --- models promote / rollback ---------------------------------------------------------------


def _report_change(
    publish: str, name: str, record: dict[str, Any], args: argparse.Namespace
) -> None:
    from mlcd import registry

    if args.json:
        _print_json(record)
    else:
        forced = " (FORCED: its gates failed)" if record.get("forced") else ""
        if record.get("replaced_corrupted_pointer"):
            forced += " (the corrupted production pointer is repaired)"
        deltas = record.get("metric_deltas") or {}
        changed = [(m, d["delta"]) for m, d in deltas.items() if d.get("delta")]
        shown = ", ".join(f"{m} {_signed(delta)}" for m, delta in changed) or (
            "no recorded metric changed" if deltas else ""
        )
        print(
            f"model {name}: production is now version {record['version']} (was "
            f"{record.get('previous') or 'none'}){forced}; logged as {record['action']} by "
            f"{_who(record)}: {record['reason']}"
            + (f"\n  metrics (as recorded, each on its own test set): {shown}" if shown else "")
        )
    _, problems = registry.read_log(publish, name)
    if problems:
        _warn(registry.log_problem_message(publish, name, problems))


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


# --- models history --------------------------------------------------------------------------


def cmd_models_history(args: argparse.Namespace) -> int:
    from mlcd import registry, storage
    from mlcd.errors import StorageError, UsageError

    publish = publish_root(args)
    name = args.name
    registry.require_model(publish, name)
    records, problems = registry.read_log(publish, name)
    pointer, pointer_problem = _pointer_or_problem(publish, name)
    infos = {i["version"]: i for i in registry.list_versions(publish, name)}
    metric = args.metric or _headline(list(infos.values()))
    if args.metric and _direction(args.metric) is None:
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
        _print_json(
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
        _warn(mismatch)
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
                _time(r.get("at")),
                _action(r) + (" (forced)" if r.get("forced") else ""),
                r["version"],
                r.get("previous") or "-",
                _who(r),
                "-" if gates is None else ("passed" if gates else "FAILED"),
                _num(values.get(r["version"])) if metric else "-",
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
    return f"model {name}: {len(records)} change(s) of production\n\n" + _table(rows, header)


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
            action = _action(r)
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
        ax.set_xticklabels([_time(r.get("at"))[:16] for r in records], rotation=30, ha="right")
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


# --- predict ---------------------------------------------------------------------------------


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

    from mlcd import scoring, storage
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
    out = scoring.predict_frame(
        loaded, frame, keep=args.keep, hint=hint, text_numbers=in_format == "csv"
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
    return 0


# --- serve -----------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from mlcd import serving

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
