"""The publish destination: immutable model versions and the production pointer.

Layout under ``publish``::

    <name>/versions/<version>/   model.joblib, metrics.json, verdict.json, manifest.json,
                                 plots/*.png, reports/*.html  (written whole, never changed)
    <name>/production.json       which version is in production (replaced atomically)
    <name>/promotions.jsonl      append-only log of every change of production
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from mlcd import storage
from mlcd.errors import StorageError
from mlcd.fingerprint import sha256_bytes

MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"


def model_root(publish: str, name: str) -> str:
    return storage.join(publish, name)


def version_dir(publish: str, name: str, version: str) -> str:
    return storage.join(publish, name, "versions", version)


def pointer_path(publish: str, name: str) -> str:
    return storage.join(publish, name, "production.json")


def production(publish: str, name: str) -> dict[str, Any] | None:
    """The production pointer, or None before the first publish."""
    path = pointer_path(publish, name)
    if not storage.exists(path):
        return None
    pointer = storage.read_json(path)
    if not isinstance(pointer, dict) or "version" not in pointer:
        raise StorageError(
            f"production pointer {path!r} is corrupted (no 'version'); restore it or run "
            "a promotion again"
        )
    return pointer


def read_manifest(publish: str, name: str, version: str) -> dict[str, Any]:
    path = storage.join(version_dir(publish, name, version), MANIFEST_FILE)
    if not storage.exists(path):
        raise StorageError(f"version {version!r} of model {name!r} has no manifest at {path!r}")
    manifest: dict[str, Any] = storage.read_json(path)
    return manifest


def load_model(publish: str, name: str, version: str) -> tuple[Any, dict[str, Any]]:
    """A published model, unpickled only after its sha256 matches the manifest."""
    from mlcd.training import load_verified

    manifest = read_manifest(publish, name, version)
    path = storage.join(version_dir(publish, name, version), MODEL_FILE)
    expected = manifest.get("artifacts", {}).get(MODEL_FILE, {}).get("sha256")
    if not expected:
        raise StorageError(
            f"the manifest of version {version!r} of model {name!r} records no sha256 for "
            f"{MODEL_FILE}: the model cannot be verified, so mlcd will not load it. Republish it"
        )
    return load_verified(storage.read_bytes(path), expected, path), manifest


def publish_version(
    publish: str, name: str, version: str, files: dict[str, bytes], manifest: dict[str, Any]
) -> bool:
    """Write a new immutable version folder; False if that version already exists."""
    manifest = dict(manifest)
    manifest["artifacts"] = {
        rel: {"sha256": sha256_bytes(data), "bytes": len(data)}
        for rel, data in sorted(files.items())
    }
    payload = dict(files)
    payload[MANIFEST_FILE] = storage.dumps_json(manifest)
    return storage.publish_dir(version_dir(publish, name, version), payload)


def set_production(
    publish: str, name: str, version: str, *, actor: str, reason: str, extra: dict[str, Any]
) -> dict[str, Any]:
    """Point production at ``version`` (one atomic replace) and log the change."""
    previous = production(publish, name)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    pointer = {"model": name, "version": version, "updated_at": now, "actor": actor}
    record = {
        "at": now,
        "model": name,
        "version": version,
        "previous": previous["version"] if previous else None,
        "actor": actor,
        "reason": reason,
        **extra,
    }
    storage.write_json(pointer_path(publish, name), pointer)
    storage.append_line(
        storage.join(model_root(publish, name), "promotions.jsonl"),
        json.dumps(record, sort_keys=True),
    )
    return pointer


def promotions(publish: str, name: str) -> list[dict[str, Any]]:
    """The promotion log, oldest first; unreadable lines are skipped, not fatal."""
    path = storage.join(model_root(publish, name), "promotions.jsonl")
    if not storage.exists(path):
        return []
    records = []
    for line in storage.read_bytes(path).decode("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def ever_promoted(publish: str, name: str, version: str) -> bool:
    return any(r.get("version") == version for r in promotions(publish, name))
