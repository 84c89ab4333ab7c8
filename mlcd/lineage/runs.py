"""The runs a workspace records: ``<workspace>/runs/<run-id>/manifest.json``, read, checked,
found by prefix and summarised."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mlcd import storage
from mlcd.errors import NotFound, StorageError, UsageError
from mlcd.fingerprint import digest, package_versions
from mlcd.lineage.records import (
    MANIFEST_FILE,
    RUN_ID,
    RUNS_DIR,
    compare_mode,
    mapping,
    verdict_outcomes,
)
from mlcd.storage.integrity import mismatch

if TYPE_CHECKING:
    pass


def check_manifest(obj: Any, where: str) -> dict[str, Any]:
    """``obj`` if it is a manifest mlcd can use; otherwise a StorageError naming ``where``."""
    fix = (
        "it is corrupted or was not written by mlcd; restore it from a backup (a version's "
        "manifest is also listed by `mlcd models show`)"
    )
    if not isinstance(obj, dict):
        raise StorageError(f"{where} is not a manifest (not a JSON object): {fix}")
    for key, kind in (("tasks", dict), ("config", dict), ("run_date", str)):
        if not isinstance(obj.get(key), kind):
            raise StorageError(f"{where} is not a valid manifest (no '{key}'): {fix}")
    recorded_digest = obj.get("config_digest")
    if recorded_digest is not None and recorded_digest != digest(obj["config"]):
        raise StorageError(
            f"{where} does not match itself: its config's digest is not the recorded "
            f"config_digest (the file was edited or damaged): {fix}"
        )
    for label, record in obj["tasks"].items():
        if not isinstance(record, dict) or not isinstance(record.get("outputs", {}), dict):
            raise StorageError(f"{where} is not a valid manifest (task {label!r}): {fix}")
        outputs = record.get("outputs", {})
        family = str(record.get("family") or label.partition("[")[0])
        record.setdefault("family", family)
        record.setdefault("complete", True)
        for name, output in list(outputs.items()):
            if isinstance(output, str):  # manifests of mlcd before run manifests: name -> sha256
                outputs[name] = {"sha256": output, "compare": compare_mode(family, name)}
            elif not isinstance(output, dict):
                raise StorageError(
                    f"{where} is not a valid manifest (output {label}/{name}): {fix}"
                )
    return obj


def read_manifest_file(path: str, what: str) -> dict[str, Any]:
    if not storage.exists(path):
        raise StorageError(f"{what} has no manifest at {path!r} (deleted?)")
    try:
        obj = json.loads(storage.read_bytes(path))
    except ValueError:
        raise StorageError(
            f"the manifest of {what} at {path!r} is corrupted (not valid JSON); restore it from "
            "a backup, or choose another run (`mlcd runs list`)"
        ) from None
    return check_manifest(obj, f"the manifest of {what} at {path!r}")


def runs_dir(workspace: str) -> str:
    return storage.join(workspace, RUNS_DIR)


def run_manifest_path(workspace: str, run_id: str) -> str:
    return storage.join(workspace, RUNS_DIR, run_id, MANIFEST_FILE)


def write_run_manifest(workspace: str, manifest: dict[str, Any]) -> str:
    path = run_manifest_path(workspace, str(manifest["run_id"]))
    storage.write_json(path, manifest)
    return path


def run_ids(workspace: str) -> list[str]:
    """The ids of the runs recorded in a workspace, oldest first."""
    return [name for name in storage.list_dir(runs_dir(workspace)) if RUN_ID.fullmatch(name)]


def resolve_run(workspace: str, text: str) -> str | None:
    """The run id ``text`` names (the id or a unique prefix); None when it names no run."""
    ids = run_ids(workspace)
    if text in ids:
        return text
    matches = [r for r in ids if r.startswith(text)] if text else []
    if len(matches) > 1:
        shown = ", ".join(matches[:4]) + (", ..." if len(matches) > 4 else "")
        raise UsageError(
            f"run prefix {text!r} is ambiguous (it matches {shown}); give more characters"
        )
    return matches[0] if matches else None


def read_run(workspace: str, run_id: str) -> dict[str, Any]:
    return read_manifest_file(run_manifest_path(workspace, run_id), f"run {run_id}")


def require_run(workspace: str, text: str) -> str:
    run_id = resolve_run(workspace, text)
    if run_id is None:
        raise NotFound(
            f"no run {text!r} in {runs_dir(workspace)!r}; `mlcd runs list` lists the runs of a "
            "config (pass the run's config with --config)"
        )
    return run_id


def run_summaries(workspace: str, model: str | None) -> Iterator[dict[str, Any]]:
    """One line's worth of each run (newest first); a run whose manifest cannot be read is
    listed with its problem."""
    for run_id in reversed(run_ids(workspace)):
        try:
            m = read_run(workspace, run_id)
        except StorageError as exc:
            yield {"run_id": run_id, "problem": str(exc)}
            continue
        if model is not None and m.get("model") != model:
            continue
        published = m.get("published") if isinstance(m.get("published"), dict) else None
        env = mapping(m, "environment")
        yield {
            "run_id": run_id,
            "model": m.get("model"),
            "run_date": m.get("run_date"),
            "status": m.get("status"),
            "exit_code": m.get("exit_code"),
            "ran": len(m.get("ran") or []),
            "already_complete": len(m.get("already_complete") or []),
            "version": m.get("version"),
            "published": published.get("version") if published else None,
            "promoted": published.get("promoted") if published else None,
            "by_this_run": published.get("by_this_run", True) if published else None,
            "snapshot_sha256": m.get("snapshot_sha256"),
            "seconds": m.get("seconds"),
            "git_commit": env.get("git_commit"),
            "git_dirty": env.get("git_dirty"),
        }


def recorded_tasks(manifest: dict[str, Any], version_folder: str | None) -> dict[str, Any]:
    """The manifest's tasks; for a version's manifest, with PublishModel's outputs taken from
    the version's artifacts (PublishModel writes that manifest while it runs)."""
    tasks = dict(manifest["tasks"])
    artifacts = manifest.get("artifacts")
    if "PublishModel" in tasks or not isinstance(artifacts, dict):
        return tasks
    outputs: dict[str, Any] = {}
    for rel, info in sorted(artifacts.items()):
        sha = info.get("sha256") if isinstance(info, dict) else None
        mode = compare_mode("PublishModel", rel)
        out: dict[str, Any] = {"root": "version", "path": rel, "sha256": sha, "compare": mode}
        if isinstance(info, dict):
            out["bytes"] = info.get("bytes")
        if mode == "verdict" and version_folder is not None:
            path = storage.join(version_folder, rel)
            if storage.exists(path):
                blob = storage.read_bytes(path)
                if not mismatch(blob, sha):
                    try:
                        out["outcomes"] = verdict_outcomes(json.loads(blob))
                    except ValueError:
                        pass
        outputs[rel] = out
    tasks["PublishModel"] = {
        "family": "PublishModel",
        "candidate": None,
        "identity": manifest.get("version"),
        "params": {},
        "requires": list(manifest.get("published_from") or tasks),
        "complete": True,
        "outputs": outputs,
    }
    return tasks


def environment_differences(recorded: Any) -> list[str]:
    """Each result-shaping library (and Python) whose version differs from the recorded one."""
    if not isinstance(recorded, dict):
        return ["the manifest records no environment"]
    out = []
    python = sys.version.split()[0]
    if recorded.get("python") not in (None, python):
        out.append(f"Python {recorded.get('python')} recorded, {python} here")
    packages = mapping(recorded, "packages")
    now = package_versions()
    for name in sorted(set(packages) | set(now)):
        if name == "mlcd":
            continue
        before, after = packages.get(name), now.get(name)
        if name in packages and before != after:
            out.append(f"{name} {before or 'absent'} recorded, {after or 'absent'} here")
    return out
