"""``mlcd models list`` and ``mlcd models show``: the registry's models and versions, each
version's metrics beside production's, its gates, integrity and schema."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mlcd.cli.common import (
    add_json,
    add_location,
    change_action,
    change_by,
    group,
    headline_metric,
    num_text,
    pointer_or_problem,
    print_json,
    publish_root,
    signed_text,
    table,
    time_text,
    verdict_word,
    warn,
)


def add_commands(sub: Any) -> Any:
    """Add ``models`` with ``list`` and ``show``; the subcommands, for the other ``models``
    commands (mlcd/cli/production.py)."""
    _, msub = group(
        sub,
        "models",
        help="the model registry: list, show, promote, rollback, history",
        description="Inspect the registry and change which version is in production. Every "
        "change is appended to the model's promotion log with who did it and why.",
    )

    p = msub.add_parser(
        "list",
        help="the models, or one model's versions in creation order",
        description="Without NAME: every model with its production version. With NAME: its "
        "versions, oldest first, with creation time, headline metric, gates and which is in "
        "production.",
    )
    p.add_argument("name", nargs="?", metavar="NAME")
    add_location(p)
    add_json(p)
    p.set_defaults(handler=cmd_models_list)

    p = msub.add_parser(
        "show",
        help="one version: metrics beside production's, gates, integrity, schema, promotions",
        description="Show a version (default: the one in production). VERSION may be a unique "
        "prefix. Every artifact is re-hashed against the manifest. The shadow versions of the "
        "prediction log are shown with their agreement; with --labels, each one's metrics "
        "beside the served version's on the labelled rows.",
    )
    p.add_argument("spec", metavar="NAME[:VERSION]")
    p.add_argument(
        "--labels",
        metavar="FILE",
        help="a CSV or Parquet file of true labels: the --label-id column and the model's "
        "target column",
    )
    p.add_argument(
        "--label-id", metavar="COLUMN", help="the id column joining --labels to logged rows"
    )
    p.add_argument(
        "--prediction-log",
        metavar="LOCATION",
        help="the prediction log to read (default: <registry>/NAME/predictions)",
    )
    add_location(p)
    add_json(p)
    p.set_defaults(handler=cmd_models_show)
    return msub


def cmd_models_list(args: argparse.Namespace) -> int:
    from mlcd import registry
    from mlcd.errors import StorageError

    publish = publish_root(args)
    if args.name is None:
        return _list_models(publish, args)
    registry.require_model(publish, args.name)
    name = args.name
    pointer, problem = pointer_or_problem(publish, name)
    infos = registry.list_versions(publish, name)
    if args.json:
        print_json({"model": name, "production": pointer, "versions": infos})
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
        pointer, problem = pointer_or_problem(publish, name)
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
        print_json(out)
    elif not out:
        print(f"no models in the registry at {publish} (publish one with `mlcd run`)")
    else:
        rows = [
            [
                m["model"],
                str(m["versions"]),
                m["production"] or ("unreadable" if m["problem"] else "-"),
                time_text(m["since"]),
                m["by"] or "-",
            ]
            for m in out
        ]
        print(table(rows, ["MODEL", "VERSIONS", "PRODUCTION", "SINCE (UTC)", "BY"]))
    if problems:
        from mlcd.errors import StorageError

        raise StorageError(problems[0])
    return 0


def _versions_text(
    name: str, infos: list[dict[str, Any]], pointer: dict[str, Any] | None, problem: str | None
) -> str:
    if pointer:
        by = pointer.get("user") or pointer.get("actor") or "?"
        head = (
            f"model {name}: {len(infos)} version(s); production {pointer['version']} since "
            f"{time_text(pointer.get('updated_at'))} UTC "
            f"({pointer.get('action', 'promote')} by {by})"
        )
    elif problem:
        head = f"model {name}: {len(infos)} version(s); production pointer unreadable"
    else:
        head = f"model {name}: {len(infos)} version(s); none in production"
    metric = headline_metric(infos)
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
                time_text(info["created_at"]),
                info["run_date"] or "-",
                num_text(info["metrics"].get(metric)) if metric else "-",
                "passed" if info["gates"]["passed"] else "FAILED",
                status,
            ]
        )
    header = ["  VERSION", "CREATED (UTC)", "RUN DATE", (metric or "METRIC").upper(), "GATES", ""]
    return head + "\n\n" + table(rows, header)


def _split_spec(spec: str) -> tuple[str, str | None]:
    name, sep, version = spec.partition(":")
    return name, (version if sep else None)


def cmd_models_show(args: argparse.Namespace) -> int:
    from mlcd import registry
    from mlcd.errors import StorageError

    publish = publish_root(args)
    name, wanted = _split_spec(args.spec)
    if args.labels and not args.label_id:
        from mlcd.errors import UsageError

        raise UsageError("--labels needs --label-id COLUMN: the id column that joins the labels")
    if args.label_id and not args.labels:
        from mlcd.errors import UsageError

        raise UsageError("--label-id needs --labels FILE: the file of true labels")
    registry.require_model(publish, name)
    pointer, pointer_problem = pointer_or_problem(publish, name)
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
    log_problem = None
    try:
        result["shadow"] = _shadow(publish, name, args, schema, prod_info or info)
    except StorageError as exc:
        if args.labels:
            raise
        result["shadow"], log_problem = None, str(exc)
    if args.json:
        print_json(result)
    else:
        print(_show_text(result, prod_info))
    if log_problems:
        warn(registry.log_problem_message(publish, name, log_problems))
    if info["problem"]:
        raise StorageError(info["problem"])
    if problems:
        raise StorageError(
            f"version {version} of model {name!r} is damaged ({'; '.join(problems)}): mlcd will "
            "not load or promote it. Restore its folder from a backup, or publish a new version"
        )
    if pointer_problem:
        raise StorageError(pointer_problem)
    if log_problem:
        raise StorageError(log_problem)
    return 0


def _shadow(
    publish: str,
    name: str,
    args: argparse.Namespace,
    schema: dict[str, Any] | None,
    served: dict[str, Any],
) -> dict[str, Any]:
    """The shadow evidence of the prediction log, and the metrics on --labels."""
    from mlcd.app import scoring
    from mlcd.errors import DataError
    from mlcd.monitoring import predlog

    location = args.prediction_log or predlog.default_location(publish, name)
    location = predlog.check_location(location) if args.prediction_log else location
    target = (schema or {}).get("target")
    task = (schema or {}).get("task") or served["metrics"].get("task") or "classification"
    extra = [args.label_id] if args.label_id else []
    log = predlog.read(location, columns=[*predlog.SHADOW_COLUMNS, *extra])
    rows = None
    if args.labels:
        if not target:
            raise DataError(f"model {name!r} records no target column: labels cannot be matched")
        labels = scoring.read_table(args.labels, "--labels", {args.label_id: str})
        shadowed = log
        if predlog.SHADOW_VERSION in log.columns:
            shadowed = log[log[predlog.SHADOW_VERSION].notna()]
        rows = predlog.labelled(shadowed, labels, args.label_id, str(target))
    metrics = served.get("metrics") or {}
    averaging = metrics.get("averaging")
    evidence = predlog.shadow_evidence(
        log,
        rows,
        task=str(task),
        positive_label=metrics.get("positive_label"),
        average=averaging if averaging in ("macro", "micro", "weighted") else "macro",
    )
    return {
        "location": location,
        "logged_rows": len(log),
        "labels": args.labels,
        "versions": evidence,
    }


def _shadow_text(shadow: dict[str, Any]) -> list[str]:
    lines = ["", f"  prediction log {shadow['location']}: {shadow['logged_rows']} row(s)"]
    if not shadow["versions"]:
        lines.append("  shadow: none logged (`mlcd serve NAME --shadow VERSION` records one)")
        return lines
    rows = [
        [
            "  " + v["version"],
            ", ".join(v["against"]) or "-",
            str(v["rows"]),
            "-" if v["agreement"] is None else f"{100 * v['agreement']:.2f}%",
            str(v["errors"]),
            time_text(v["first"]),
            time_text(v["last"]),
        ]
        for v in shadow["versions"]
    ]
    header = ["  SHADOW", "AGAINST", "ROWS", "AGREEMENT", "ERRORS", "FIRST (UTC)", "LAST (UTC)"]
    lines.append(table(rows, header))
    for v in shadow["versions"]:
        labelled = v["labelled"]
        if labelled is None:
            continue
        lines.append("")
        lines.append(
            f"  shadow {v['version']} on {labelled['rows']} labelled row(s) of {shadow['labels']}:"
        )
        if not labelled["rows"]:
            lines.append("    no logged row of this shadow has a label yet")
            continue
        rows = [
            [
                "    " + m["metric"],
                num_text(m["served"]),
                num_text(m["shadow"]),
                signed_text(m["delta"]),
                verdict_word(m["delta"], m["metric"]),
            ]
            for m in labelled["metrics"]
        ]
        lines.append(table(rows, ["    METRIC", "SERVED", "SHADOW", "DELTA", ""]))
    return lines


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
    from mlcd.catalogue import METRICS

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
                "verdict": verdict_word(delta, metric),
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
    lines.append(
        f"  created     {time_text(result['created_at'])} UTC   run date {result['run_date']}"
    )
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
                    num_text(c["version"]),
                    num_text(c["production"]),
                    signed_text(c["delta"]),
                    c["verdict"],
                ]
                for c in result["comparison"]
            ]
        else:
            header = ["  METRIC", "THIS VERSION"]
            rows = [["  " + c["metric"], num_text(c["version"])] for c in result["comparison"]]
        lines.append(table(rows, header))
    if result["promotion_records"]:
        lines.append("")
        lines.append("  promotions:")
        for r in result["promotion_records"]:
            into = r.get("version") == version
            what = "into production" if into else f"replaced by {r.get('version')}"
            lines.append(
                f"    {time_text(r.get('at'))}  {change_action(r)} {what} by {change_by(r)}: "
                f"{r.get('reason', '')}"
            )
    if result.get("shadow"):
        lines.extend(_shadow_text(result["shadow"]))
    return "\n".join(lines)
