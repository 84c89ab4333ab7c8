"""``mlcd reproduce``: run a recorded run again from its snapshot, config and seeds in a scratch
workspace and registry, and compare every output with the manifest, task by task.

The real workspace and registry are only read: the reproduction writes under its own folder,
and the champion the recorded run was compared with is copied into the scratch registry.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlcd import data, lineage, registry, storage
from mlcd.app.comparison import Reproduction, TaskCheck, compare
from mlcd.app.subjects import Subject
from mlcd.config import PipelineConfig, parse_config
from mlcd.errors import ConfigError, StorageError, UsageError
from mlcd.storage.integrity import verified


def find_snapshot(subject: Subject, workspaces: list[str]) -> tuple[str, bytes]:
    """The recorded snapshot's location and bytes, checked against its digest."""
    sha = subject.manifest.get("snapshot_sha256")
    if not sha:
        failures = subject.manifest.get("failures") or []
        why = (
            f" ({failures[0].get('message')})" if failures and isinstance(failures[0], dict) else ""
        )
        raise UsageError(
            f"{subject} has no snapshot: it stopped before the data was extracted{why}; there "
            "is nothing to reproduce"
        )
    looked = []
    for workspace in dict.fromkeys(w for w in workspaces if w):
        path = data.snapshot_path(workspace, str(sha))
        looked.append(path)
        if storage.exists(path):

            def corrupted(actual: str, where: str = path) -> str:
                return (
                    f"the snapshot of {subject}, {where!r}, is corrupted (its sha256 is "
                    f"{actual[:12]}, not {str(sha)[:12]}): it cannot be reproduced from it. "
                    "Restore the file from a backup of the workspace"
                )

            blob = verified(storage.read_bytes(path), str(sha), corrupted)
            return path, blob
    raise StorageError(
        f"the snapshot of {subject} (sha256 {str(sha)[:12]}) is gone: it is not at "
        f"{' nor '.join(repr(p) for p in looked)}. It was deleted, so the run cannot be "
        "reproduced; restore it from a backup of the workspace"
    )


def _scratch(workdir: str | None) -> tuple[str, bool]:
    """The folder the reproduction works in, and whether it is removed at the end."""
    if workdir is None:
        return tempfile.mkdtemp(prefix="mlcd-reproduce-"), True
    folder = os.path.abspath(workdir)
    if os.path.isdir(folder) and os.listdir(folder):
        raise UsageError(
            f"--workdir {workdir!r} is not empty; a reproduction needs a fresh folder (an earlier "
            "reproduction's outputs would be reused instead of recomputed)"
        )
    os.makedirs(folder, exist_ok=True)
    return folder, False


def scratch_config(subject: Subject, scratch: str, snapshot: bytes) -> tuple[str, PipelineConfig]:
    """The recorded config, reading the recorded snapshot, with workspace and registry inside
    the scratch folder."""
    sha = str(subject.manifest["snapshot_sha256"])
    source = storage.join(scratch, "source", f"{sha}.parquet")
    storage.write_bytes(source, snapshot)
    recorded = dict(subject.manifest["config"])
    recorded.update(
        source={"path": source, "format": "parquet"},
        workspace=storage.join(scratch, "workspace"),
        publish=storage.join(scratch, "registry"),
    )
    path = storage.join(scratch, "config.yaml")
    try:
        cfg = parse_config(recorded, f"the recorded config of {subject}", Path(scratch))
    except ConfigError as exc:
        raise ConfigError(
            f"{exc}. This mlcd no longer accepts the config the run was made with; reproduce it "
            "with the mlcd of the recorded commit"
        ) from None
    import yaml

    storage.write_bytes(path, yaml.safe_dump(recorded, sort_keys=False).encode())
    return path, cfg


def _settings(config: dict[str, Any]) -> str:
    """A config's digest without its locations (which a reproduction changes)."""
    from mlcd.fingerprint import digest

    return digest({k: v for k, v in config.items() if k not in ("source", "workspace", "publish")})


def recorded_champions(subject: Subject) -> list[str]:
    """The version(s) in production that the recorded run's model gates compared with."""
    found = {
        str(r["champion_version"])
        for r in subject.manifest["tasks"].values()
        if isinstance(r, dict) and r.get("champion_version")
    }
    if not found and subject.version_folder is not None:
        # Manifests without champion records: the version's own verdict names it.
        verdict_path = storage.join(subject.version_folder, registry.VERDICT_FILE)
        try:
            verdict = storage.read_json(verdict_path) if storage.exists(verdict_path) else {}
        except StorageError:
            verdict = {}
        stage = ((verdict or {}).get("stages") or {}).get("model_evaluation") or {}
        for gate in stage.get("gates") or []:
            if isinstance(gate, dict) and gate.get("kind") == "champion":
                if gate.get("champion_version"):
                    found.add(str(gate["champion_version"]))
    return sorted(found)


def restore_champion(
    publishes: list[str], model: str, version: str, scratch_publish: str
) -> str | None:
    """Copy the champion version into the scratch registry and put it in production there, so
    the champion gate is computed as it was. A reason why not, or None when restored."""
    for publish in dict.fromkeys(p for p in publishes if p):
        if version not in registry.version_ids(publish, model):
            continue
        try:
            manifest = registry.read_manifest(publish, model, version)
        except StorageError as exc:
            return f"its manifest is unreadable ({exc})"
        files = {
            rel: registry.verified_bytes(publish, model, version, rel, manifest)
            for rel in sorted(manifest.get("artifacts") or {})
        }
        files[registry.MANIFEST_FILE] = storage.read_bytes(
            storage.join(registry.version_dir(publish, model, version), registry.MANIFEST_FILE)
        )
        storage.publish_dir(
            registry.version_dir(scratch_publish, model, version), files, registry.MANIFEST_FILE
        )
        registry.set_production(
            scratch_publish,
            model,
            version,
            actor="reproduce",
            reason="the champion the recorded run was compared with",
            extra={},
        )
        return None
    return f"version {version} is no longer in the registry"


def reproduce(
    cfg: PipelineConfig,
    subject: Subject,
    *,
    workdir: str | None = None,
    keep: bool = False,
    say: Callable[[str], None] = lambda _: None,
) -> Reproduction:
    """Re-execute ``subject`` in a scratch workspace and compare it with its manifest."""
    import tasks
    from mlcd.app.report import collect
    from mlcd.app.run import execute, run_error
    from mlcd.fingerprint import code_version
    from tasks.manifest import run_manifest

    manifest = subject.manifest
    recorded_cfg = manifest["config"]
    warnings: list[str] = []
    _, snapshot = find_snapshot(subject, [cfg.workspace, str(recorded_cfg.get("workspace") or "")])
    for difference in lineage.environment_differences(manifest.get("environment")):
        warnings.append(f"library versions differ: {difference}")
    env = manifest.get("environment") or {}
    here = code_version()
    if env.get("git_commit") and here.get("git_commit") != env.get("git_commit"):
        warnings.append(
            f"the code differs: recorded at git {str(env.get('git_commit'))[:12]}, running "
            f"{str(here.get('git_commit'))[:12]}"
        )
    for name, params in ((manifest.get("seeds") or {}).get("models") or {}).items():
        unseeded = [k for k, v in params.items() if v is None]
        if unseeded:
            warnings.append(
                f"{'the model' if name == 'model' else f'candidate {name}'} sets no "
                f"{', '.join(unseeded)}: if its estimator is random, its training will not "
                "reproduce"
            )

    scratch, temporary = _scratch(workdir)
    kept = keep or not temporary
    started = time.monotonic()
    try:
        config_path, scratch_cfg = scratch_config(subject, scratch, snapshot)
        if _settings(scratch_cfg.public_dict()) != _settings(recorded_cfg):
            warnings.append(
                "the recorded config reads differently with this mlcd (changed defaults?); "
                "the reproduction uses this mlcd's reading of it"
            )
        champions = recorded_champions(subject)
        champion_ok = True
        publishes = [cfg.publish, str(recorded_cfg.get("publish") or "")]
        for version in champions:
            problem = restore_champion(publishes, subject.model, version, scratch_cfg.publish)
            if problem is not None:
                champion_ok = False
                warnings.append(
                    f"the champion the run was compared with, version {version}, cannot be "
                    f"restored ({problem}): the champion gate is left out of the comparison"
                )
        say(
            f"reproducing {subject} (run {manifest.get('run_id')}, date "
            f"{manifest['run_date']}) in {scratch}"
        )

        date = dt.date.fromisoformat(str(manifest["run_date"]))
        root = tasks.RetrainPipeline(config_path=config_path, date=date)
        run_id = lineage.new_run_id()
        started_at = dt.datetime.now(dt.UTC)
        scheduler = {"local_scheduler": True}  # never a shared luigid: this is a private run
        result, failures = execute(root, workers=1, scheduler=scheduler, run_id=run_id)
        report = collect(root, result, failures)
        error = run_error(report, failures)
        code = 0 if error is None else error.exit_code
        reproduced = run_manifest(
            root,
            report,
            run_id=run_id,
            started_at=started_at,
            exit_code=code,
            scheduler=scheduler,
            workers=1,
        )
        lineage.write_run_manifest(scratch_cfg.workspace, reproduced)
        old_roots = {
            "workspace": cfg.workspace,
            "publish": cfg.publish,
            "version": subject.version_folder or "",
        }
        new_roots = {"workspace": scratch_cfg.workspace, "publish": scratch_cfg.publish}
        candidates = [c.name for c in scratch_cfg.candidates or []]
        checks = compare(
            lineage.recorded_tasks(manifest, subject.version_folder),
            reproduced,
            old_roots=old_roots,
            new_roots=new_roots,
            champion=champion_ok,
            candidates=candidates,
        )
        return Reproduction(
            subject=subject,
            tasks=checks,
            warnings=warnings,
            scratch=scratch,
            kept=kept,
            run_id=run_id,
            seconds=time.monotonic() - started,
            champion=champions[0] if champions else None,
            champion_compared=champion_ok,
        )
    finally:
        if not kept:
            shutil.rmtree(scratch, ignore_errors=True)


def render(rep: Reproduction) -> str:
    lines = [f"warning: {warning}" for warning in rep.warnings]
    champion = (
        "none (the first version)"
        if rep.champion is None
        else f"version {rep.champion}" + ("" if rep.champion_compared else " (not restorable)")
    )
    lines.append(
        f"mlcd reproduce: {rep.subject} (run {rep.subject.manifest.get('run_id')}, date "
        f"{rep.subject.manifest.get('run_date')}), champion {champion}"
    )
    for check in rep.tasks:
        compared = [o for o in check.outputs if o.result != "not compared"]
        names = ", ".join(
            o.name + (" (gate outcomes)" if o.compare == "verdict" else "") for o in compared
        )
        lines.append(f"  {check.label:<24} {check.result:<10} {names}".rstrip())
        differing = [o for o in check.outputs if o.result == "different"]
        for output in differing:
            lines.append(f"      {output.detail}")
        if not check.ok and not differing and check.detail:
            lines.append(f"      {check.detail}")
        skipped = [o.name for o in check.outputs if o.result == "not compared"]
        if skipped:
            lines.append(f"      not compared: {', '.join(skipped)} (no comparable record)")
    outputs = sum(1 for t in rep.tasks for o in t.outputs if o.result != "not compared")
    first = rep.first_difference
    if first is None:
        lines.append(
            f"identical: {len(rep.tasks)} tasks, {outputs} outputs match the manifest "
            f"(reproduced in {rep.seconds:.1f}s)"
        )
    else:
        lines.append(
            f"DIFFERENT: the first task whose output differs is {first.label}: "
            f"{first_detail(first)} (reproduced in {rep.seconds:.1f}s)"
        )
    if rep.kept:
        lines.append(f"the reproduction is kept in {rep.scratch}")
    return "\n".join(lines)


def first_detail(check: TaskCheck) -> str:
    """The first difference of a task, in words (its model, metrics or predictions first)."""
    differing = [o for o in check.outputs if o.result == "different"]
    if not differing:
        return check.detail
    rank = {"model.joblib": 0, "metrics.json": 1, "predictions.parquet": 2}
    differing.sort(key=lambda o: rank.get(o.name, 3))
    more = len(differing) - 1
    return differing[0].detail + (f" (and {more} more output(s))" if more else "")
