"""The summary that ends ``mlcd run``: what ran, the metrics, each gate, what was published."""

from __future__ import annotations

import json
from typing import Any

from mlcd import registry
from mlcd.catalogue import HEADLINE_METRICS
from mlcd.errors import StorageError


def _name(task: Any) -> str:
    label = getattr(task, "label", None)  # pipeline tasks; RetrainPipeline is a plain wrapper
    return str(label()) if callable(label) else str(task.get_task_family())


def _families(tasks: Any) -> list[str]:
    return sorted(_name(t) for t in tasks)


def _graph(root: Any) -> list[Any]:
    from luigi.task import flatten

    seen: dict[str, Any] = {}
    stack = [root]
    while stack:
        task = stack.pop()
        if task.task_id not in seen:
            seen[task.task_id] = task
            stack.extend(flatten(task.requires()))
    return list(seen.values())


def _read(task: Any, name: str) -> Any:
    """A finished task's JSON output (None when the task has not finished or it is damaged)."""
    if not task.complete():
        return None
    try:
        return task.read_json(name)
    except StorageError:
        return None


def roles_of(extract: dict[str, Any]) -> dict[str, str]:
    """The role of each column from ExtractData's extract.json: features in table order, then
    the other columns."""
    roles = extract.get("roles") or {}
    order = [*extract.get("features", []), *sorted(roles)]
    return {c: roles[c]["role"] for c in dict.fromkeys(order) if c in roles}


def roles_line(roles: dict[str, str]) -> str:
    """``numeric tenure, charges; categorical plan; id customer_id``: six names a role at most."""
    by_role: dict[str, list[str]] = {}
    for column, role in roles.items():
        by_role.setdefault(role, []).append(column)
    return "; ".join(
        f"{role} {', '.join(cols[:6])}{f' (+{len(cols) - 6})' if len(cols) > 6 else ''}"
        for role, cols in by_role.items()
    )


def outline(
    root: Any,
    result: Any,
    failures: list[dict[str, Any]],
    *,
    ok: bool,
    already: list[str] | None = None,
) -> dict[str, Any]:
    """The report of a run as Luigi saw it, before anything is read back from its outputs
    (``collect`` adds the metrics, gates and what was published)."""
    from luigi.execution_summary import _summary_dict

    summary = _summary_dict(result.worker)
    return {
        "model": root.requires().cfg.name,
        "date": root.date.isoformat(),
        "status": result.status.name,
        "ok": ok,
        "ran": _families(summary["completed"]),
        "run_by_other_workers": _families(
            summary["run_by_other_worker"] | summary["upstream_run_by_other_worker"]
        ),
        "already_complete": already if already is not None else _families(summary["already_done"]),
        "failed": _families(summary["failed"]),
        "not_run": []
        if ok
        else _families(
            summary["upstream_failure"]
            | summary["upstream_missing_dependency"]
            | summary["not_run"]
            | summary["scheduling_error"]
        ),
        "failures": failures,
        "roles": None,
        "metrics": None,
        "gates": {},
        "candidates": {},
        "selected": None,
        "published": None,
        "production": None,
    }


def collect(root: Any, result: Any, failures: list[dict[str, Any]]) -> dict[str, Any]:
    from luigi.execution_summary import LuigiStatusCode, _summary_dict

    publish_task = root.requires()
    cfg = publish_task.cfg
    req = publish_task.requires()
    summary = _summary_dict(result.worker)
    status = result.status
    ran = {t.task_id for t in summary["completed"]}
    # With luigid, tasks this worker scheduled may have been run by other workers: the run
    # succeeded when the whole pipeline is complete and nothing failed here.
    # Never a success unless the whole pipeline is complete, whoever ran it.
    ok = (
        status in (LuigiStatusCode.SUCCESS, LuigiStatusCode.SUCCESS_WITH_RETRY)
        or not summary["failed"]
    ) and root.complete()
    # Luigi stops looking below a complete task; list every pipeline task that is done.
    already = (
        sorted(_name(t) for t in _graph(root) if t.task_id not in ran and t.complete())
        if ok
        else _families(summary["already_done"])
    )
    report = outline(root, result, failures, ok=ok, already=already)
    extract = _read(req["data"], "extract.json")
    if extract is not None:
        report["roles"] = roles_of(extract)
        report["dropped_missing_target"] = extract.get("dropped_missing_target", 0)
    published = _read(publish_task, "published.json")
    if published is not None:  # published.json keeps no absolute path; the report shows one
        published["location"] = registry.version_dir(cfg.publish, cfg.name, published["version"])
    report["published"] = published
    chains = req["candidates"]
    selected = (
        published["candidate"] if published else (next(iter(chains)) if len(chains) == 1 else None)
    )
    report["selected"] = selected
    metric = cfg.selection_metric()
    for name, chain in chains.items():
        scores = _read(chain["evaluate"], "metrics.json")
        verdict = _read(chain["model_gate"], "verdict.json")
        report["candidates"][name] = {
            metric: scores.get(metric) if scores else None,
            "passed": verdict["passed"] if verdict else None,
            "blocking_failures": verdict["blocking_failures"] if verdict else [],
        }
        if name == selected:
            report["metrics"] = scores
    targets = [req["data_gate"], req["split_gate"]]
    if selected is not None:
        targets.append(chains[selected]["model_gate"])
    for task in targets:
        verdict = _read(task, "verdict.json")
        if verdict is not None:
            report["gates"][verdict["stage"]] = {
                "passed": verdict["passed"],
                "blocking_failures": verdict["blocking_failures"],
                "counts": verdict["counts"],
                "path": task.output()["verdict.json"].path,
                "gates": [g for g in verdict["gates"] if g["kind"] != "deepchecks"],
            }
    try:
        report["production"] = registry.production(cfg.publish, cfg.name)
    except StorageError as exc:
        report["production"] = {"error": str(exc)}
    if selected is not None:
        report["contract"] = _contract_check(cfg, chains[selected]["model"], report)
    return report


def _contract_check(cfg: Any, train_task: Any, report: dict[str, Any]) -> dict[str, Any] | None:
    """The trained model's data contract against the one of the version that was in production
    before this run (``schema.contract_changes``); None when there is nothing to compare."""
    from mlcd import schema, storage

    trained = _read(train_task, "train.json")
    production = report["production"] or {}
    published = report["published"] or {}
    if trained is None or "version" not in production:
        return None
    before = production["version"]
    if published.get("promoted") and published.get("version") == before:
        before = production.get("previous")
    if before is None or before == published.get("version"):
        return None
    try:
        path = storage.join(registry.version_dir(cfg.publish, cfg.name, before), "schema.json")
        old = json.loads(storage.read_bytes(path)).get("columns") or {}
    except (StorageError, ValueError):
        return None
    if not old:
        return None
    return {"version": before, "changes": schema.contract_changes(old, trained["contract"])}


def render(report: dict[str, Any]) -> str:
    state = "SUCCESS" if report["ok"] else report["status"]
    lines = [f"mlcd run: model {report['model']}, date {report['date']}: {state}"]
    lines.append(f"  ran ({len(report['ran'])}): {', '.join(report['ran']) or '-'}")
    lines.append(
        f"  already complete ({len(report['already_complete'])}): "
        f"{', '.join(report['already_complete']) or '-'}"
    )
    if report["run_by_other_workers"] and report["ok"]:
        lines.append("    (complete tasks include those other workers of the scheduler ran)")
    if report["failed"]:
        lines.append(f"  failed: {', '.join(report['failed'])}")
    if report["not_run"]:
        lines.append(f"  not run: {', '.join(report['not_run'])}")
    if len(report["candidates"]) > 1:
        for name, c in report["candidates"].items():
            state = {True: "passed", False: "FAILED", None: "not validated"}[c["passed"]]
            chosen = "  <- selected" if name == report["selected"] else ""
            values = "  ".join(f"{k} {v:.4f}" for k, v in c.items() if isinstance(v, float))
            lines.append(f"  candidate {name}: {values} gates {state}{chosen}")
            for failure in c["blocking_failures"]:
                lines.append(f"    blocking: {failure}")
    if report.get("roles"):
        lines.append(f"  columns: {roles_line(report['roles'])}")
        if report.get("dropped_missing_target"):
            lines.append(
                f"  rows without a target: {report['dropped_missing_target']} dropped "
                "(target.drop_missing)"
            )
    contract = report.get("contract")
    if contract:
        changes = contract["changes"]
        head = f"  data vs production {contract['version']}: "
        lines.append(head + (f"{len(changes)} change(s)" if changes else "no contract change"))
        lines.extend(f"    {change}" for change in changes[:10])
    scores = report["metrics"]
    if scores:
        names = HEADLINE_METRICS[scores["task"]]
        shown = "  ".join(f"{n} {scores[n]:.4f}" for n in names if scores.get(n) is not None)
        lines.append(f"  metrics (test set, n={scores['n_test']}): {shown}")
    for stage, gate in report["gates"].items():
        counts = ", ".join(f"{v} {k}" for k, v in gate["counts"].items())
        state = "passed" if gate["passed"] else "FAILED"
        lines.append(f"  gates {stage}: {state} ({counts})")
        for failure in gate["blocking_failures"]:
            lines.append(f"    blocking: {failure}")
        for g in gate["gates"]:
            lines.append(f"    {g['name']}: {g['result']} ({g.get('details', '')})")
    published = report["published"]
    if published:
        what = "published and promoted" if published["promoted"] else "already published"
        if not published["promoted"] and "PublishModel" in report["ran"]:
            # production holds a later run date's version (a backfill), or this one was rolled
            # back: a run never moves production back (docs/triggers.md)
            what = "published; production unchanged"
        lines.append(f"  version {published['version']}: {what} at {published['location']}")
    production = report["production"]
    if production:
        if "error" in production:
            lines.append(f"  production: unreadable: {production['error']}")
        else:
            lines.append(
                f"  production: version {production['version']} (since {production['updated_at']})"
            )
    else:
        lines.append("  production: none yet")
    if report.get("run_id"):  # set by `mlcd run` (mlcd/app/run.py), with the manifest it wrote
        where = report.get("run_manifest") or "not written (see the warning above)"
        lines.append(f"  run {report['run_id']}: manifest {where}")
    return "\n".join(lines)
