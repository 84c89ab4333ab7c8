"""The summary that ends ``mlcd run``: what ran, the metrics, each gate, what was published."""

from __future__ import annotations

from typing import Any

from mlcd import registry, storage

_HEADLINE = {
    "classification": ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"),
    "regression": ("mae", "rmse", "r2", "median_ae"),
}


def _families(tasks: Any) -> list[str]:
    return sorted(t.get_task_family() for t in tasks)


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


def _read(target: Any) -> Any:
    return storage.read_json(target.path) if target.exists() else None


def collect(root: Any, result: Any, failures: list[dict[str, Any]]) -> dict[str, Any]:
    from luigi.execution_summary import LuigiStatusCode, _summary_dict

    publish_task = root.requires()
    cfg = publish_task.cfg
    req = publish_task.requires()
    summary = _summary_dict(result.worker)
    status = result.status
    ran = {t.task_id for t in summary["completed"]}
    # Luigi stops looking below a complete task; list every pipeline task that is done.
    already = (
        sorted(t.get_task_family() for t in _graph(root) if t.task_id not in ran and t.complete())
        if status in (LuigiStatusCode.SUCCESS, LuigiStatusCode.SUCCESS_WITH_RETRY)
        else _families(summary["already_done"])
    )
    report: dict[str, Any] = {
        "model": cfg.name,
        "date": root.date.isoformat(),
        "status": status.name,
        "ok": status in (LuigiStatusCode.SUCCESS, LuigiStatusCode.SUCCESS_WITH_RETRY),
        "ran": _families(summary["completed"]),
        "already_complete": already,
        "failed": _families(summary["failed"]),
        "not_run": _families(
            summary["upstream_failure"]
            | summary["upstream_missing_dependency"]
            | summary["not_run"]
            | summary["scheduling_error"]
        ),
        "failures": failures,
        "metrics": _read(req["evaluate"].output()["metrics.json"]),
        "gates": {},
        "published": None,
        "production": None,
    }
    for key in ("data_gate", "split_gate", "model_gate"):
        verdict = _read(req[key].output()["verdict.json"])
        if verdict is not None:
            report["gates"][verdict["stage"]] = {
                "passed": verdict["passed"],
                "blocking_failures": verdict["blocking_failures"],
                "counts": verdict["counts"],
                "path": req[key].output()["verdict.json"].path,
                "gates": [g for g in verdict["gates"] if g["kind"] != "deepchecks"],
            }
    published = _read(publish_task.output()["published.json"])
    if published is not None:
        report["published"] = published
    try:
        report["production"] = registry.production(cfg.publish, cfg.name)
    except storage.StorageError as exc:
        report["production"] = {"error": str(exc)}
    return report


def render(report: dict[str, Any]) -> str:
    lines = [f"mlcd run: model {report['model']}, date {report['date']}: {report['status']}"]
    lines.append(f"  ran ({len(report['ran'])}): {', '.join(report['ran']) or '-'}")
    lines.append(
        f"  already complete ({len(report['already_complete'])}): "
        f"{', '.join(report['already_complete']) or '-'}"
    )
    if report["failed"]:
        lines.append(f"  failed: {', '.join(report['failed'])}")
    if report["not_run"]:
        lines.append(f"  not run: {', '.join(report['not_run'])}")
    scores = report["metrics"]
    if scores:
        names = _HEADLINE[scores["task"]]
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
    return "\n".join(lines)
