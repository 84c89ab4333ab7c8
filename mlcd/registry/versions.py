"""Immutable versions: publishing one whole, reading its manifest, and verifying every artifact
against it. A model file is unpickled only after its sha256 matches the version's manifest (and,
for the production version, the digest the alias recorded at promotion): joblib and pickle run
code on load."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from mlcd import storage
from mlcd.errors import StorageError
from mlcd.fingerprint import sha256_bytes
from mlcd.registry.layout import (
    EXAMPLE_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    RUN_LOCK_WAIT,
    SCHEMA_FILE,
    locked,
    version_dir,
)
from mlcd.registry.production import production
from mlcd.storage.integrity import mismatch, verified

if TYPE_CHECKING:
    import pandas as pd

    from mlcd.schema import InputSchema


def read_manifest(publish: str, name: str, version: str) -> dict[str, Any]:
    path = storage.join(version_dir(publish, name, version), MANIFEST_FILE)
    if not storage.exists(path):
        raise StorageError(f"version {version!r} of model {name!r} has no manifest at {path!r}")
    manifest = storage.read_json(path)
    if not isinstance(manifest, dict):
        raise StorageError(
            f"the manifest {path!r} is corrupted (not a JSON object); the version cannot be "
            "trusted: restore its folder or publish a new version"
        )
    if manifest.get("version", version) != version:
        raise StorageError(
            f"the manifest {path!r} names version {manifest.get('version')!r}, not {version!r}; "
            "the folder was copied or damaged: restore it or publish a new version"
        )
    return manifest


def _artifacts(manifest: dict[str, Any]) -> dict[str, Any]:
    artifacts = manifest.get("artifacts")
    return artifacts if isinstance(artifacts, dict) else {}


def recorded_sha256(manifest: dict[str, Any], rel: str) -> str | None:
    info = _artifacts(manifest).get(rel)
    digest = info.get("sha256") if isinstance(info, dict) else None
    return digest if isinstance(digest, str) and digest else None


def verified_bytes(
    publish: str, name: str, version: str, rel: str, manifest: dict[str, Any]
) -> bytes:
    """An artifact's bytes, after checking them against the sha256 the manifest records."""
    path = storage.join(version_dir(publish, name, version), rel)
    expected = recorded_sha256(manifest, rel)
    if expected is None:
        raise StorageError(
            f"the manifest of version {version!r} of model {name!r} records no sha256 for "
            f"{rel}: it cannot be verified, so mlcd will not use it. Republish the version"
        )
    return verified(
        storage.read_bytes(path),
        expected,
        lambda actual: (
            f"{path!r} does not match its recorded sha256 (expected {expected[:12]}, "
            f"got {actual[:12]}): it was changed or corrupted, so mlcd refuses to use it. Restore "
            "the version folder from a backup, or publish a new version with `mlcd run`"
        ),
    )


def _promoted_sha256(publish: str, name: str, version: str) -> str | None:
    """The model digest production.json recorded when ``version`` was promoted (None when it
    is not in production, or the pointer is unreadable: that is reported where it is read)."""
    try:
        pointer = production(publish, name)
    except StorageError:
        return None
    if pointer is None or pointer.get("version") != version:
        return None
    digest = pointer.get("model_sha256")
    return digest if isinstance(digest, str) and digest else None


def verify_version(
    publish: str, name: str, version: str, manifest: dict[str, Any] | None = None
) -> list[str]:
    """Every artifact re-hashed against the manifest: the problems found (empty: intact)."""
    manifest = manifest if manifest is not None else read_manifest(publish, name, version)
    folder = version_dir(publish, name, version)
    problems = []
    if recorded_sha256(manifest, MODEL_FILE) is None:
        problems.append(f"the manifest records no sha256 for {MODEL_FILE}")
    promoted = _promoted_sha256(publish, name, version)
    if promoted is not None and promoted != recorded_sha256(manifest, MODEL_FILE):
        problems.append(
            f"{MODEL_FILE} and the manifest were changed after the promotion (production.json "
            f"recorded model sha256 {promoted[:12]})"
        )
    for rel in sorted(_artifacts(manifest)):
        expected = recorded_sha256(manifest, rel)
        path = storage.join(folder, rel)
        if not storage.exists(path):
            problems.append(f"{rel} is missing")
            continue
        actual = mismatch(storage.read_bytes(path), expected)
        if actual is not None:
            problems.append(
                f"{rel} does not match its recorded sha256 (expected "
                f"{(expected or '?')[:12]}, got {actual[:12]})"
            )
    return problems


def load_model(
    publish: str,
    name: str,
    version: str,
    *,
    expected_sha256: str | None = None,
    manifest: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """A published model, unpickled only after its sha256 matches the manifest (and
    ``expected_sha256``, the digest the production alias recorded, when given)."""
    from mlcd.training import load_verified

    manifest = manifest if manifest is not None else read_manifest(publish, name, version)
    path = storage.join(version_dir(publish, name, version), MODEL_FILE)
    expected = recorded_sha256(manifest, MODEL_FILE)
    if expected_sha256 is None:
        # Whoever loads the version in production (the champion gate too) checks it against
        # the digest recorded when it was promoted: a model swapped together with its
        # manifest matches the manifest.
        expected_sha256 = _promoted_sha256(publish, name, version)
    if not expected:
        raise StorageError(
            f"the manifest of version {version!r} of model {name!r} records no sha256 for "
            f"{MODEL_FILE}: the model cannot be verified, so mlcd will not load it. Republish it"
        )
    if expected_sha256 is not None and expected_sha256 != expected:
        raise StorageError(
            f"version {version!r} of model {name!r} was changed after its promotion: its "
            f"manifest records model sha256 {expected[:12]}, the production pointer recorded "
            f"{expected_sha256[:12]}; mlcd will not load it. Restore the version folder from a "
            "backup, or promote another version"
        )
    return load_verified(storage.read_bytes(path), expected, path), manifest


@dataclasses.dataclass(frozen=True)
class LoadedVersion:
    """A verified, unpickled model version with what is needed to score with it."""

    name: str
    version: str
    model: Any
    manifest: dict[str, Any]
    schema: InputSchema
    example: list[dict[str, Any]] | None
    model_sha256: str


def load_version(
    publish: str, name: str, version: str, *, expected_sha256: str | None = None
) -> LoadedVersion:
    """Verify a version's model, schema and input example against its manifest, then load it.

    Nothing is unpickled before every digest matched."""
    from mlcd.schema import InputSchema

    manifest = read_manifest(publish, name, version)
    schema_path = storage.join(version_dir(publish, name, version), SCHEMA_FILE)
    try:
        schema_obj = json.loads(verified_bytes(publish, name, version, SCHEMA_FILE, manifest))
    except ValueError:
        raise StorageError(f"{schema_path!r} is not valid JSON; republish the version") from None
    schema = InputSchema.from_json(schema_obj, schema_path)
    example = None
    if EXAMPLE_FILE in _artifacts(manifest):
        try:
            rows = json.loads(verified_bytes(publish, name, version, EXAMPLE_FILE, manifest))
        except ValueError:
            rows = None
        example = rows.get("rows") if isinstance(rows, dict) else None
    model, _ = load_model(
        publish, name, version, expected_sha256=expected_sha256, manifest=manifest
    )
    return LoadedVersion(
        name=name,
        version=version,
        model=model,
        manifest=manifest,
        schema=schema,
        example=example if isinstance(example, list) else None,
        model_sha256=recorded_sha256(manifest, MODEL_FILE) or "",
    )


def publish_version(
    publish: str, name: str, version: str, files: dict[str, bytes], manifest: dict[str, Any]
) -> bool:
    """Write a new immutable version folder; False if that version already exists.

    The manifest is written last and marks the folder complete (see ``storage.publish_dir``).
    Publishers of one model take turns, so two runs racing to publish the same version cannot
    interleave their files on a store without rename (S3).
    """
    manifest = dict(manifest)
    manifest.setdefault("created_at", dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"))
    manifest["artifacts"] = {
        rel: {"sha256": sha256_bytes(data), "bytes": len(data)}
        for rel, data in sorted(files.items())
    }
    payload = dict(files)
    payload[MANIFEST_FILE] = storage.dumps_json(manifest)
    with locked(publish, name, f"publish {version}", RUN_LOCK_WAIT):
        return storage.publish_dir(
            version_dir(publish, name, version),
            payload,
            MANIFEST_FILE,
            complete=lambda data: manifest_names(data, version),
        )


def manifest_names(data: bytes, version: str) -> bool:
    """Whether ``data`` is a whole version manifest, of ``version``: a version is complete only
    then (a killed writer on a store that is not atomic per object leaves a truncated one)."""
    import json

    try:
        manifest = json.loads(data)
    except ValueError:
        return False
    return isinstance(manifest, dict) and manifest.get("version", version) == version


def input_example(frame: pd.DataFrame, features: list[str], rows: int = 5) -> bytes:
    """``input_example.json`` of a version: a few rows in the body format of POST /predict."""
    from mlcd.schema import example_rows

    return storage.dumps_json({"rows": example_rows(frame, features, rows)})
