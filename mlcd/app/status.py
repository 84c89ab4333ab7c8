"""``mlcd status``: each task of a config's pipeline, complete or not, and why it would run,
found by comparing the tasks as the config defines them now with the latest run that completed
each one. Nothing is run and nothing is written.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from mlcd import lineage, registry, storage
from mlcd.app.report import roles_line, roles_of
from mlcd.errors import StorageError


def diff_paths(old: Any, new: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The paths (keys and list indexes) at which two JSON values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[tuple[Any, ...]] = []
        for key in sorted(set(old) | set(new), key=str):
            if key not in old or key not in new:
                out.append((*prefix, key))
            else:
                out.extend(diff_paths(old[key], new[key], (*prefix, key)))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            p
            for i, (a, b) in enumerate(zip(old, new, strict=True))
            for p in diff_paths(a, b, (*prefix, i))
        ]
    return [] if old == new else [prefix]


def shown_value(obj: Any, path: tuple[Any, ...]) -> str:
    """The value at ``path`` in ``obj``, as short JSON (``absent`` when there is none)."""
    for part in path:
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and isinstance(part, int) and part < len(obj):
            obj = obj[part]
        else:
            return "absent"
    text = json.dumps(obj, sort_keys=True, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _source_change(old: Any, new: Any) -> str:
    if isinstance(old, dict) and isinstance(new, dict) and old.get("sha256") and new.get("sha256"):
        return f"new source fingerprint (sha256 {old['sha256'][:12]} -> {new['sha256'][:12]})"
    return (
        f"new source fingerprint ({lineage.describe_source(old)} -> {lineage.describe_source(new)})"
    )


def _recorded(cfg: Any) -> tuple[dict[str, dict[str, Any]], str]:
    """For each task label, the latest record of it complete: from the workspace's run
    manifests, else from the manifest of the version in production."""
    found: dict[str, dict[str, Any]] = {}
    for run_id in reversed(lineage.run_ids(cfg.workspace)):
        try:
            manifest = lineage.read_run(cfg.workspace, run_id)
        except StorageError:
            continue
        if manifest.get("model") != cfg.name:
            continue
        identities = {k: v.get("identity") for k, v in manifest["tasks"].items()}
        for label, record in manifest["tasks"].items():
            if label not in found and record.get("complete"):
                found[label] = {
                    "where": f"run {run_id}",
                    "record": record,
                    "identities": identities,
                }
    if found:
        return found, "the latest run that completed each task"
    try:
        pointer = registry.production(cfg.publish, cfg.name)
        if pointer is None:
            return {}, "no earlier run"
        version = str(pointer["version"])
        manifest = lineage.check_manifest(
            registry.read_manifest(cfg.publish, cfg.name, version), f"version {version}"
        )
    except StorageError:
        return {}, "no earlier run"
    identities = {k: v.get("identity") for k, v in manifest["tasks"].items()}
    for label, record in manifest["tasks"].items():
        found[label] = {"where": f"version {version}", "record": record, "identities": identities}
    return found, f"the version in production ({version})"


def reasons(task: Any, seen: dict[str, Any] | None, cfg: Any, any_runs: bool) -> list[str]:
    """Why ``task`` (not complete) would run."""
    family = str(task.get_task_family())
    missing = [name for name, path in task.artifacts().items() if not storage.exists(path)]
    if not missing and task.seal() is None:
        missing = [f"{task.seal_file} (written last)"]
    if seen is None:
        if any(storage.exists(p) for p in task.artifacts().values()):
            return [f"output incomplete: {', '.join(missing)} missing (an interrupted run?)"]
        return ["no output yet" + (" (no earlier run completed it)" if any_runs else "")]
    record = seen["record"]
    if record.get("identity") == task.identity:
        shown = ", ".join(missing) or "part of it"
        return [f"output missing: {shown} (present after {seen['where']}; deleted since)"]
    out: list[str] = []
    old, new = record.get("params") or {}, lineage.plain(task.identity_params())
    paths = diff_paths(old, new)
    if family == "ExtractData" and any(p[:1] == ("source",) for p in paths):
        out.append(_source_change(old.get("source"), new.get("source")))
        paths = [p for p in paths if p[:1] != ("source",)]
    candidate = getattr(task, "candidate", None)
    for path in paths:
        key = lineage.config_key(family, candidate, cfg.candidates is not None, path)
        out.append(
            f"changed parameter: {key} ({shown_value(old, path)} -> {shown_value(new, path)})"
        )
    changed = [
        t.label()
        for t in task.identity_inputs()
        if seen["identities"].get(t.label()) not in (None, t.identity)
    ]
    if changed:
        out.append(f"an upstream task changed: {', '.join(changed)}")
    if not out:
        out.append(f"its identity changed since {seen['where']} (another mlcd output format)")
    return out


def pipeline_status(config: str, date: dt.date) -> dict[str, Any]:
    """``mlcd status``: each task of ``config``'s pipeline, complete or why it would run."""
    from mlcd.config import load_config

    load_config(config)  # a config error stops here, before Luigi is imported
    import tasks

    # The date names a run, not an output (identities leave it out), except through a source
    # path with {date}: that day's partition is the source.
    return status(tasks.PublishModel(config_path=config, date=date))


def status(publish_task: Any) -> dict[str, Any]:
    from tasks.manifest import graph

    cfg = publish_task.cfg
    seen, basis = _recorded(cfg)
    rows = []
    roles = None
    for task in graph(publish_task):
        label = task.label()
        complete = bool(task.complete())
        if label == "ExtractData" and complete:
            try:
                roles = roles_of(task.read_json("extract.json"))
            except StorageError:
                roles = None
        rows.append(
            {
                "task": label,
                "identity": task.identity,
                "complete": complete,
                "reasons": [] if complete else reasons(task, seen.get(label), cfg, bool(seen)),
                "compared_with": seen[label]["where"] if label in seen else None,
            }
        )
    return {
        "model": cfg.name,
        "config": str(publish_task.config_path),
        "workspace": cfg.workspace,
        "compared_with": basis,
        "version": publish_task.version,
        "tasks": rows,
        "to_run": sum(1 for r in rows if not r["complete"]),
        "roles": roles,
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        f"mlcd status: model {result['model']} (config {result['config']}); compared with "
        f"{result['compared_with']}"
    ]
    for row in result["tasks"]:
        state = "complete" if row["complete"] else "would run"
        why = "; ".join(row["reasons"])
        lines.append(f"  {row['task']:<24} {row['identity']}  {state:<9}  {why}".rstrip())
    if result.get("roles"):
        lines.append(f"  columns (as extracted): {roles_line(result['roles'])}")
    total = len(result["tasks"])
    if result["to_run"]:
        lines.append(
            f"{result['to_run']} of {total} tasks would run (`mlcd run` runs them); if every "
            f"gate passes, the version published would be {result['version']}"
        )
    else:
        lines.append(f"all {total} tasks are complete: `mlcd run` would run nothing")
    return "\n".join(lines)
