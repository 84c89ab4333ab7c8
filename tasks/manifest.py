"""The manifest of a pipeline as it stands on disk: every task with its identity, parameters,
outputs and digests, the resolved config, source fingerprint, snapshot digest, seeds and
environment. PublishModel puts one in every published version; ``mlcd run`` writes one for
every run (``mlcd.lineage.runs``)."""

from __future__ import annotations

import datetime as dt
import sys
from typing import TYPE_CHECKING, Any

from mlcd import __version__
from mlcd.errors import StorageError
from mlcd.fingerprint import digest, environment
from mlcd.lineage.records import MANIFEST_FORMAT, current_run_id, label_order, output_record, plain
from tasks.base import SourcePending

if TYPE_CHECKING:
    pass


def graph(root: Any) -> list[Any]:
    """Every pipeline task ``root`` needs (and ``root``), in pipeline order."""
    from luigi.task import flatten

    seen: dict[str, Any] = {}
    stack = [root]
    while stack:
        task = stack.pop()
        if task.task_id in seen:
            continue
        seen[task.task_id] = task
        stack.extend(t for t in flatten(task.requires()) if hasattr(t, "identity"))
    cfg = root.cfg
    names = list(cfg.models())
    return sorted(seen.values(), key=lambda t: label_order(t.label(), names))


def _champion_version(task: Any) -> str | None:
    if not task.complete():
        return None
    try:
        verdict = task.read_json("verdict.json")
    except StorageError:
        return None
    for gate in verdict.get("gates") or [] if isinstance(verdict, dict) else []:
        if isinstance(gate, dict) and gate.get("kind") == "champion":
            version = gate.get("champion_version")
            return str(version) if version else None
    return None


def task_record(task: Any, roots: dict[str, str]) -> dict[str, Any]:
    from luigi.task import flatten

    family = str(task.get_task_family())
    sealed = task.seal() or {}
    record: dict[str, Any] = {
        "family": family,
        "candidate": getattr(task, "candidate", None),
        "identity": task.identity,
        "params": plain(task.identity_params()),
        "inputs": [t.label() for t in task.identity_inputs()],
        "requires": [t.label() for t in flatten(task.requires()) if hasattr(t, "identity")],
        "complete": bool(task.complete()),
        "outputs": {
            name: output_record(family, name, path, roots, sealed.get(name))
            for name, path in sorted(task.artifacts().items())
        },
    }
    if family == "ValidateModel":
        record["champion_version"] = _champion_version(task)
    return record


def seeds(cfg: Any) -> dict[str, Any]:
    """Every seed that shapes a result: the split's (it also seeds deepchecks) and each model's
    ``random_state`` parameters (None: the estimator is not seeded)."""
    from mlcd.config import check_spec

    models: dict[str, dict[str, Any]] = {}
    for name, spec in cfg.models().items():
        try:
            models[name] = check_spec(spec)["random_state"]
        except Exception:  # the config was checked at load; a failure here records nothing
            models[name] = {}
    return {"split": cfg.split.seed, "deepchecks": cfg.split.seed, "models": models}


def _header(publish_task: Any, *, kind: str, run_id: str | None) -> dict[str, Any]:
    """What every manifest records of the run itself: the command, the config, the date."""
    cfg = publish_task.cfg
    return {
        "manifest_format": MANIFEST_FORMAT,
        "kind": kind,
        "run_id": run_id or current_run_id(),
        "model": cfg.name,
        "run_date": publish_task.date.isoformat(),
        "command": list(sys.argv),
        "config_path": str(publish_task.config_path),
        "config": cfg.public_dict(),
        "config_digest": digest(cfg.public_dict()),
    }


def build_manifest(publish_task: Any, *, kind: str, run_id: str | None = None) -> dict[str, Any]:
    """The manifest of a pipeline (PublishModel and all it needs), as it stands on disk.

    ``kind`` is "version" (written into a version by PublishModel, which is left out: it is
    running) or "run" (written by ``mlcd run`` at the end of a run).
    """
    from mlcd import data

    cfg = publish_task.cfg
    roots = {"workspace": cfg.workspace, "publish": cfg.publish}
    tasks = graph(publish_task)
    if kind == "version":
        tasks = [t for t in tasks if t is not publish_task]
    extract = next(t for t in tasks if t.get_task_family() == "ExtractData")
    try:
        info = extract.read_json("extract.json") if extract.complete() else None
    except StorageError:
        info = None
    fingerprint = info.get("source_fingerprint") if isinstance(info, dict) else None
    if fingerprint is None:
        try:
            fingerprint = data.source_fingerprint(cfg.source.for_date(publish_task.date))
        except Exception:  # the source is gone: the run failed for that reason
            fingerprint = None
    sha = extract.snapshot_sha256()
    manifest: dict[str, Any] = {
        **_header(publish_task, kind=kind, run_id=run_id),
        "source_fingerprint": fingerprint,
        "snapshot_sha256": sha,
        "snapshot": None
        if sha is None
        else {"root": "workspace", "path": f"snapshots/{sha}.parquet"},
        "seeds": seeds(cfg),
        "tasks": {t.label(): task_record(t, roots) for t in tasks},
        "environment": {"mlcd": __version__, **environment()},
    }
    if kind == "version":
        manifest["published_from"] = [t.label() for t in tasks]
    return manifest


def run_manifest(
    root: Any,
    report: dict[str, Any],
    *,
    run_id: str,
    started_at: dt.datetime,
    exit_code: int,
    scheduler: dict[str, Any],
    workers: int,
) -> dict[str, Any]:
    """The manifest ``mlcd run`` writes at the end of a run (also a no-op or failed one)."""
    publish_task = root.requires()
    try:
        manifest = build_manifest(publish_task, kind="run", run_id=run_id)
        version = publish_task.version
    except SourcePending:
        # The source never appeared (source.wait): no task's identity can be known without
        # it, so the manifest records the run, the config and the failure only.
        manifest = {
            **_header(publish_task, kind="run", run_id=run_id),
            "source_fingerprint": None,
            "snapshot_sha256": None,
            "snapshot": None,
            "tasks": {},
            "environment": {"mlcd": __version__, **environment()},
        }
        version = None
    finished = dt.datetime.now(dt.UTC)
    published = report.get("published")
    manifest.update(
        status="success" if report.get("ok") else "failed",
        exit_code=exit_code,
        started_at=started_at.isoformat(timespec="milliseconds"),
        finished_at=finished.isoformat(timespec="milliseconds"),
        seconds=round((finished - started_at).total_seconds(), 3),
        scheduler=(
            "local"
            if scheduler.get("local_scheduler", True)
            else f"{scheduler.get('scheduler_host')}:{scheduler.get('scheduler_port', 8082)}"
        ),
        workers=workers,
        ran=list(report.get("ran") or []),
        already_complete=list(report.get("already_complete") or []),
        failed=list(report.get("failed") or []),
        failures=list(report.get("failures") or []),
        version=version,
        published=(
            None
            if not published
            else {
                "version": published.get("version"),
                "candidate": published.get("candidate"),
                "promoted": published.get("promoted"),
                # False: an earlier run published it, this one found it complete
                "by_this_run": "PublishModel" in (report.get("ran") or []),
            }
        ),
    )
    return manifest
