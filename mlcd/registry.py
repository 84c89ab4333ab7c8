"""The model registry at the publish destination: immutable versions, the production alias and
the append-only promotion log.

Layout under ``publish``::

    <name>/versions/<version>/   model.joblib, metrics.json, verdict.json, schema.json,
                                 input_example.json, predictions.parquet, manifest.json,
                                 plots/*.png, reports/*.html  (written whole, never changed)
    <name>/production.json       the production alias: which version, since when, by whom
                                 (replaced atomically)
    <name>/promotions.jsonl      append-only log of every change of production
    <name>/.lock                 held while production changes, so two changes never interleave

Every read and write goes through ``mlcd.storage``. A model file is unpickled only after its
sha256 matches the version's manifest (and, for the production version, the digest the alias
recorded at promotion): joblib and pickle run code on load.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import re
import socket
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mlcd import storage
from mlcd.errors import AlreadyRunning, NotFound, PromotionRefused, StorageError, UsageError
from mlcd.fingerprint import sha256_bytes

if TYPE_CHECKING:
    import pandas as pd

    from mlcd.schema import InputSchema

MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
METRICS_FILE = "metrics.json"
VERDICT_FILE = "verdict.json"
SCHEMA_FILE = "schema.json"
EXAMPLE_FILE = "input_example.json"
POINTER_FILE = "production.json"
LOG_FILE = "promotions.jsonl"
LOCK_FILE = ".lock"

# Seconds a change of production waits for another one to finish. A change holds the lock for
# milliseconds; a pipeline run waits longer than a person at a terminal.
LOCK_WAIT = 10.0
RUN_LOCK_WAIT = 60.0

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def current_user() -> str:
    """The login name of whoever runs mlcd, for the promotion log."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry)
        return "unknown"


# --- layout ----------------------------------------------------------------------------------


def model_root(publish: str, name: str) -> str:
    return storage.join(publish, name)


def version_dir(publish: str, name: str, version: str) -> str:
    return storage.join(publish, name, "versions", version)


def pointer_path(publish: str, name: str) -> str:
    return storage.join(publish, name, POINTER_FILE)


def log_path(publish: str, name: str) -> str:
    return storage.join(publish, name, LOG_FILE)


def lock_path(publish: str, name: str) -> str:
    return storage.join(publish, name, LOCK_FILE)


def _check_id(text: str, what: str) -> str:
    if not _ID.fullmatch(text):
        raise UsageError(
            f"{what} {text!r} is not valid: it is made of letters, digits, '.', '_' and '-' "
            "(no '/')"
        )
    return text


def list_models(publish: str) -> list[str]:
    """The models in the registry, by name."""
    return [
        name
        for name in storage.list_dir(publish)
        if _ID.fullmatch(name)
        and (
            storage.exists(storage.join(publish, name, "versions"))
            or storage.exists(pointer_path(publish, name))
        )
    ]


def require_model(publish: str, name: str) -> None:
    """NotFound (naming the models there are) unless ``name`` is a model of the registry."""
    _check_id(name, "model name")
    known = list_models(publish)
    if name in known:
        return
    if known:
        raise NotFound(
            f"no model {name!r} in the registry at {publish!r}; it has: {', '.join(known)}. "
            "Check the name, or point at another registry with --registry DIR or --config PATH"
        )
    raise NotFound(
        f"no model {name!r}: the registry at {publish!r} has no models. Publish one with "
        "`mlcd run`, or point at another registry with --registry DIR or --config PATH"
    )


def version_ids(publish: str, name: str) -> list[str]:
    """The version folders of a model (unordered names; see list_versions for the order)."""
    folder = storage.join(model_root(publish, name), "versions")
    return [v for v in storage.list_dir(folder) if _ID.fullmatch(v)]


def resolve_version(publish: str, name: str, text: str) -> str:
    """The full id of a version given by its id or a unique prefix of it."""
    _check_id(text, "version")
    ids = version_ids(publish, name)
    if text in ids:
        return text
    matches = sorted(v for v in ids if v.startswith(text))
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise UsageError(
            f"version prefix {text!r} of model {name!r} is ambiguous (it matches {shown}); "
            "give more characters"
        )
    raise NotFound(
        f"model {name!r} has no version {text!r}; `mlcd models list {name}` lists its "
        f"{len(ids)} version(s)"
    )


# --- the production alias --------------------------------------------------------------------


def production(publish: str, name: str) -> dict[str, Any] | None:
    """The production pointer, or None before the first promotion."""
    path = pointer_path(publish, name)
    found = storage.fetch(path)
    if found is None:
        return None
    fix = (
        f"restore it with `mlcd models promote {name} VERSION --reason ...` "
        f"(`mlcd models history {name}` shows the last version promoted)"
    )
    try:
        pointer = json.loads(found[0])
    except ValueError:
        raise StorageError(
            f"production pointer {path!r} is corrupted (not valid JSON); {fix}"
        ) from None
    version = pointer.get("version") if isinstance(pointer, dict) else None
    if not isinstance(version, str) or not _ID.fullmatch(version):
        raise StorageError(f"production pointer {path!r} is corrupted (no valid 'version'); {fix}")
    assert isinstance(pointer, dict)
    return pointer


def production_version(publish: str, name: str) -> str:
    """The version in production; NotFound when there is none."""
    pointer = production(publish, name)
    if pointer is None:
        raise NotFound(
            f"model {name!r} has no version in production; promote one with "
            f"`mlcd models promote {name} VERSION --reason ...`, or name a version"
        )
    version = str(pointer["version"])
    if version not in version_ids(publish, name):
        raise StorageError(
            f"the production pointer of model {name!r} names version {version!r}, which is "
            f"not in the registry; promote an existing version with `mlcd models promote {name} "
            "VERSION --reason ...`"
        )
    return version


# --- versions --------------------------------------------------------------------------------


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
    return manifest


def _artifacts(manifest: dict[str, Any]) -> dict[str, Any]:
    artifacts = manifest.get("artifacts")
    return artifacts if isinstance(artifacts, dict) else {}


def _recorded_sha256(manifest: dict[str, Any], rel: str) -> str | None:
    info = _artifacts(manifest).get(rel)
    digest = info.get("sha256") if isinstance(info, dict) else None
    return digest if isinstance(digest, str) and digest else None


def verified_bytes(
    publish: str, name: str, version: str, rel: str, manifest: dict[str, Any]
) -> bytes:
    """An artifact's bytes, after checking them against the sha256 the manifest records."""
    path = storage.join(version_dir(publish, name, version), rel)
    expected = _recorded_sha256(manifest, rel)
    if expected is None:
        raise StorageError(
            f"the manifest of version {version!r} of model {name!r} records no sha256 for "
            f"{rel}: it cannot be verified, so mlcd will not use it. Republish the version"
        )
    data = storage.read_bytes(path)
    actual = sha256_bytes(data)
    if actual != expected:
        raise StorageError(
            f"{path!r} does not match its recorded sha256 (expected {expected[:12]}, got "
            f"{actual[:12]}): it was changed or corrupted, so mlcd refuses to use it. Restore "
            "the version folder from a backup, or publish a new version with `mlcd run`"
        )
    return data


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
    if _recorded_sha256(manifest, MODEL_FILE) is None:
        problems.append(f"the manifest records no sha256 for {MODEL_FILE}")
    promoted = _promoted_sha256(publish, name, version)
    if promoted is not None and promoted != _recorded_sha256(manifest, MODEL_FILE):
        problems.append(
            f"{MODEL_FILE} and the manifest were changed after the promotion (production.json "
            f"recorded model sha256 {promoted[:12]})"
        )
    for rel in sorted(_artifacts(manifest)):
        expected = _recorded_sha256(manifest, rel)
        path = storage.join(folder, rel)
        if not storage.exists(path):
            problems.append(f"{rel} is missing")
            continue
        actual = sha256_bytes(storage.read_bytes(path))
        if actual != expected:
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
    expected = _recorded_sha256(manifest, MODEL_FILE)
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
        model_sha256=_recorded_sha256(manifest, MODEL_FILE) or "",
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
    with _locked(publish, name, f"publish {version}", RUN_LOCK_WAIT):
        return storage.publish_dir(version_dir(publish, name, version), payload, MANIFEST_FILE)


def input_example(frame: pd.DataFrame, features: list[str], rows: int = 5) -> bytes:
    """``input_example.json`` of a version: a few rows in the body format of POST /predict."""
    from mlcd.schema import example_rows

    return storage.dumps_json({"rows": example_rows(frame, features, rows)})


# --- what a version is -----------------------------------------------------------------------


def gates_summary(verdict: Any) -> dict[str, Any]:
    """Whether a version passed its gates, and each stage's blocking failures."""
    if not isinstance(verdict, dict):
        return {"passed": False, "stages": {}, "problem": "no verdict recorded"}
    raw = verdict.get("stages")
    stages: dict[str, Any] = raw if isinstance(raw, dict) else {}
    out = {
        stage: {
            "passed": bool(v.get("passed")) if isinstance(v, dict) else False,
            "blocking_failures": list(v.get("blocking_failures") or [])
            if isinstance(v, dict)
            else [],
        }
        for stage, v in sorted(stages.items())
    }
    passed = verdict.get("passed") is True and all(s["passed"] for s in out.values())
    return {"passed": passed, "stages": out}


def gate_failures(gates: dict[str, Any]) -> str:
    """The blocking failures of a gates summary, for a message."""
    if gates.get("problem"):
        return str(gates["problem"])
    failures = [
        f"{stage}: {', '.join(s['blocking_failures']) or 'failed'}"
        for stage, s in gates.get("stages", {}).items()
        if not s["passed"]
    ]
    return "; ".join(failures) or "the verdict is not marked passed"


def _headline_metric(verdict: Any) -> str | None:
    """The metric the pipeline ranked and compared this version on."""
    if not isinstance(verdict, dict):
        return None
    if isinstance(verdict.get("selection_metric"), str):
        return str(verdict["selection_metric"])
    stage = (verdict.get("stages") or {}).get("model_evaluation") or {}
    for gate in stage.get("gates") or []:
        if isinstance(gate, dict) and gate.get("kind") == "champion" and gate.get("metric"):
            return str(gate["metric"])
    return None


def estimator_of(manifest: dict[str, Any]) -> tuple[str | None, Any]:
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    assert isinstance(config, dict)
    model = config.get("model")
    if not isinstance(model, dict):
        model = next(
            (
                c
                for c in config.get("candidates") or []
                if isinstance(c, dict) and c.get("name") == manifest.get("candidate")
            ),
            None,
        )
    if not isinstance(model, dict):
        return None, None
    return model.get("estimator"), model.get("params")


def _read_optional_json(path: str) -> Any:
    try:
        return storage.read_json(path) if storage.exists(path) else None
    except StorageError:
        return None


def _sort_time(stamp: str | None) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(stamp or "")
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def version_summary(
    publish: str,
    name: str,
    version: str,
    *,
    records: list[dict[str, Any]] | None = None,
    current: str | None = None,
) -> dict[str, Any]:
    """What a version is: when it was made, from what, its metrics and gates. A damaged version
    is summarised too, with its ``problem``."""
    records = records if records is not None else promotions(publish, name)
    folder = version_dir(publish, name, version)
    info: dict[str, Any] = {
        "model": name,
        "version": version,
        "path": folder,
        "created_at": None,
        "run_date": None,
        "candidate": None,
        "estimator": None,
        "params": None,
        "metrics": {},
        "headline_metric": None,
        "gates": {"passed": False, "stages": {}},
        "production": version == current,
        "promotions": sum(1 for r in records if r.get("version") == version),
        "problem": None,
    }
    try:
        manifest = read_manifest(publish, name, version)
    except StorageError as exc:
        info["problem"] = str(exc)
        manifest = {}
    created = manifest.get("created_at")
    if not isinstance(created, str):
        # Versions published before mlcd recorded it: their first promotion, or the folder.
        created = next(
            (r["at"] for r in records if r.get("version") == version and "at" in r), None
        )
    if not isinstance(created, str):
        stamp = storage.modified_at(folder) if storage.exists(folder) else 0.0
        created = dt.datetime.fromtimestamp(stamp, dt.UTC).isoformat(timespec="seconds")
    verdict = _read_optional_json(storage.join(folder, VERDICT_FILE))
    metrics = manifest.get("metrics")
    if not isinstance(metrics, dict):
        metrics = _read_optional_json(storage.join(folder, METRICS_FILE)) or {}
    estimator, params = estimator_of(manifest)
    info.update(
        created_at=created,
        run_date=manifest.get("run_date"),
        candidate=manifest.get("candidate"),
        estimator=estimator,
        params=params,
        metrics=metrics,
        headline_metric=_headline_metric(verdict),
        gates=gates_summary(verdict),
    )
    return info


def list_versions(publish: str, name: str) -> list[dict[str, Any]]:
    """Every version of a model, oldest first, each summarised (see version_summary)."""
    records = promotions(publish, name)
    try:
        pointer = production(publish, name)
    except StorageError:
        pointer = None
    current = pointer["version"] if pointer else None
    infos = [
        version_summary(publish, name, v, records=records, current=current)
        for v in version_ids(publish, name)
    ]
    infos.sort(key=lambda i: (_sort_time(i["created_at"]), i["version"]))
    return infos


def metric_deltas(new: Any, old: Any) -> dict[str, dict[str, float]]:
    """Each metric both versions recorded: its value before, after, and the difference."""
    from mlcd.metrics import METRICS

    if not isinstance(new, dict) or not isinstance(old, dict):
        return {}
    known = {m for task in METRICS.values() for m in task}
    out = {}
    for metric in sorted(known & set(new) & set(old)):
        before, after = old[metric], new[metric]
        if isinstance(before, bool) or isinstance(after, bool):
            continue
        if isinstance(before, int | float) and isinstance(after, int | float):
            out[metric] = {
                "from": before,
                "to": after,
                "delta": float(f"{after - before:.12g}"),
            }
    return out


# --- the promotion log -----------------------------------------------------------------------


def read_log(publish: str, name: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The promotion log, oldest first, and a description of each unreadable line."""
    path = log_path(publish, name)
    if not storage.exists(path):
        return [], []
    records, problems = [], []
    for number, raw in enumerate(storage.read_bytes(path).split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            problems.append(f"line {number} is not valid JSON")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("version"), str):
            problems.append(f"line {number} is not a promotion record (no 'version')")
            continue
        records.append(record)
    return records, problems


def log_problem_message(publish: str, name: str, problems: list[str]) -> str:
    return (
        f"{log_path(publish, name)!r}: {'; '.join(problems)}. "
        f"{'That line was' if len(problems) == 1 else 'Those lines were'} skipped; the other "
        "records are intact and production is unaffected. mlcd only ever appends to the log: "
        "inspect the line(s) and repair or remove them by hand"
    )


def promotions(publish: str, name: str) -> list[dict[str, Any]]:
    """The promotion log, oldest first; unreadable lines are skipped, not fatal."""
    return read_log(publish, name)[0]


def ever_promoted(publish: str, name: str, version: str) -> bool:
    return any(r.get("version") == version for r in promotions(publish, name))


def production_history(records: list[dict[str, Any]], current: str | None) -> list[str]:
    """The versions production went through, oldest first, with rolled-back ones removed.

    A rollback to a version still in this history cuts the history back to it, so successive
    rollbacks walk further back instead of undoing each other. ``current`` (the pointer) ends
    the history even if its log line is missing.
    """
    history: list[str] = []
    for record in records:
        version = record["version"]
        if record.get("action") == "rollback" and version in history:
            del history[len(history) - history[::-1].index(version) :]
        elif not history or history[-1] != version:
            history.append(version)
    if current is not None and (not history or history[-1] != current):
        history.append(current)
    return history


# --- changing production ---------------------------------------------------------------------


@dataclasses.dataclass
class _State:
    pointer: dict[str, Any] | None
    pointer_problem: str | None
    records: list[dict[str, Any]]
    log_problems: list[str]

    @property
    def current(self) -> str | None:
        if self.pointer is not None:
            return str(self.pointer["version"])
        if self.pointer_problem and self.records:
            return str(self.records[-1]["version"])  # the pointer is unreadable: the log's word
        return None


def _read_state(publish: str, name: str) -> _State:
    records, problems = read_log(publish, name)
    try:
        pointer, pointer_problem = production(publish, name), None
    except StorageError as exc:
        pointer, pointer_problem = None, str(exc)
    return _State(pointer, pointer_problem, records, problems)


@contextlib.contextmanager
def _locked(publish: str, name: str, doing: str, wait: float) -> Iterator[None]:
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "user": current_user(),
        "since": _now(),
        "doing": doing,
    }
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(storage.exclusive_lock(lock_path(publish, name), holder, wait))
        except AlreadyRunning as exc:
            raise AlreadyRunning(
                f"another change of model {name!r}'s production is in progress: {exc}. Retry "
                "when it ends, or give it longer with --wait SECONDS"
            ) from None
        yield


def _recover(publish: str, name: str, state: _State) -> None:
    """Log a change of production whose log line was lost (killed between pointer and log)."""
    pointer = state.pointer
    promotion_id = pointer.get("promotion_id") if pointer else None
    if not pointer or not promotion_id:
        return
    if any(r.get("id") == promotion_id for r in state.records):
        return
    record = {k: v for k, v in pointer.items() if k not in ("updated_at", "promotion_id")}
    record.update(
        id=promotion_id,
        at=pointer.get("updated_at"),
        recovered=True,
        note="logged later from production.json: the change was made but its log line was lost",
    )
    storage.append_line(log_path(publish, name), json.dumps(record, sort_keys=True))
    state.records.append(record)


def _move(
    publish: str,
    name: str,
    version: str,
    state: _State,
    *,
    action: str,
    actor: str,
    user: str | None,
    reason: str,
    forced: bool,
    extra: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Point production at ``version`` and log it; the caller holds the lock."""
    _recover(publish, name, state)
    previous = state.current
    folder = version_dir(publish, name, version)
    try:
        manifest: dict[str, Any] | None = read_manifest(publish, name, version)
    except StorageError:
        manifest = None  # a version published by hand without a manifest: nothing to record
    gates = gates_summary(_read_optional_json(storage.join(folder, VERDICT_FILE)))
    deltas: dict[str, Any] = {}
    if manifest is not None and previous is not None and previous != version:
        try:
            before = read_manifest(publish, name, previous).get("metrics")
        except StorageError:
            before = None
        deltas = metric_deltas(manifest.get("metrics"), before)
    now = _now()
    promotion_id = uuid.uuid4().hex
    model_sha256 = _recorded_sha256(manifest, MODEL_FILE) if manifest else None
    pointer = {
        "model": name,
        "version": version,
        "updated_at": now,
        "previous": previous,
        "action": action,
        "actor": actor,
        "user": user,
        "reason": reason,
        "forced": forced,
        "model_sha256": model_sha256,
        "promotion_id": promotion_id,
    }
    record: dict[str, Any] = {
        "id": promotion_id,
        "at": now,
        "model": name,
        "version": version,
        "previous": previous,
        "action": action,
        "actor": actor,
        "user": user,
        "reason": reason,
        "forced": forced,
        "gates_passed": gates["passed"] if manifest is not None else None,
        "gates": gates["stages"],
        "metric_deltas": deltas,
        "model_sha256": model_sha256,
    }
    if state.pointer_problem:
        record["replaced_corrupted_pointer"] = state.pointer_problem
    record.update(extra)
    storage.write_json(pointer_path(publish, name), pointer)
    storage.append_line(log_path(publish, name), json.dumps(record, sort_keys=True, default=str))
    return pointer, record


def set_production(
    publish: str,
    name: str,
    version: str,
    *,
    actor: str,
    reason: str,
    extra: dict[str, Any],
    action: str = "publish",
    user: str | None = None,
    forced: bool = False,
    wait: float = RUN_LOCK_WAIT,
) -> dict[str, Any]:
    """Point production at ``version`` (one atomic replace) and log the change, under the lock.

    Used by PublishModel after a run passed every gate; people use ``promote`` and
    ``rollback``, which check the version first."""
    with _locked(publish, name, f"{action} {version}", wait):
        state = _read_state(publish, name)
        if state.pointer is not None and state.current == version:
            # A run killed between the pointer and its log line, run again: log the lost line
            # instead of a second change of production from the version to itself.
            _recover(publish, name, state)
            return state.pointer
        pointer, _ = _move(
            publish,
            name,
            version,
            state,
            action=action,
            actor=actor,
            user=user,
            reason=reason,
            forced=forced,
            extra=extra,
        )
    return pointer


def check_promotable(publish: str, name: str, version: str, *, force: bool) -> dict[str, Any]:
    """Refuse a damaged version always, and one whose gates failed unless ``force``."""
    if version not in version_ids(publish, name):
        raise NotFound(
            f"model {name!r} has no version {version!r}; `mlcd models list {name}` lists them"
        )
    manifest = read_manifest(publish, name, version)
    problems = verify_version(publish, name, version, manifest)
    if problems:
        raise StorageError(
            f"version {version} of model {name!r} is damaged ({'; '.join(problems)}); it was "
            "not promoted and production is unchanged. Restore "
            f"{version_dir(publish, name, version)!r} from a backup, or publish a new version "
            "with `mlcd run`"
        )
    gates = gates_summary(
        _read_optional_json(storage.join(version_dir(publish, name, version), VERDICT_FILE))
    )
    if not gates["passed"] and not force:
        raise PromotionRefused(
            f"version {version} of model {name!r} did not pass its gates ({gate_failures(gates)}); "
            "it was not promoted. Promote a version that passed, or pass --force to promote it "
            "anyway (the log records it as forced)"
        )
    return gates


def _validate_reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if not reason:
        raise UsageError(
            'a change of production needs a reason: add --reason "why" (it goes to the '
            "promotion log)"
        )
    return reason


def promote(
    publish: str,
    name: str,
    version: str,
    *,
    reason: str,
    user: str | None = None,
    force: bool = False,
    wait: float = LOCK_WAIT,
) -> dict[str, Any] | None:
    """A person puts ``version`` in production: the log record, or None if it already was."""
    reason = _validate_reason(reason)
    require_model(publish, name)
    with _locked(publish, name, f"promote {version}", wait):
        state = _read_state(publish, name)
        if state.pointer is not None and state.current == version:
            return None
        record = _move_by_person(
            publish, name, version, state, "promote", reason=reason, user=user, force=force
        )
    return record


def rollback_target(publish: str, name: str) -> str:
    """The version a rollback returns to by default: the one before the current production
    (see production_history)."""
    state = _read_state(publish, name)
    return _default_target(publish, name, state)


def _default_target(publish: str, name: str, state: _State) -> str:
    current = state.current
    if current is None:
        raise NotFound(
            f"model {name!r} has no version in production: there is nothing to roll back. "
            f"Promote one with `mlcd models promote {name} VERSION --reason ...`"
        )
    history = production_history(state.records, current)
    if len(history) < 2:
        raise NotFound(
            f"model {name!r} has no earlier version to roll back to: {current} is the first in "
            "production's history (a rollback removes the versions it undoes from it). Name a "
            "version with --to VERSION"
        )
    target = history[-2]
    if target not in version_ids(publish, name):
        raise NotFound(
            f"the version production had before {current}, {target}, is no longer in the "
            "registry; name another one with --to VERSION"
        )
    return target


def rollback(
    publish: str,
    name: str,
    *,
    reason: str,
    to: str | None = None,
    user: str | None = None,
    force: bool = False,
    wait: float = LOCK_WAIT,
) -> dict[str, Any]:
    """A person puts an earlier version back in production (by default the one before the
    current one); the log record."""
    reason = _validate_reason(reason)
    require_model(publish, name)
    with _locked(publish, name, f"rollback to {to or 'the previous version'}", wait):
        state = _read_state(publish, name)
        target = to if to is not None else _default_target(publish, name, state)
        if state.pointer is not None and state.current == target:
            raise UsageError(
                f"version {target} of model {name!r} is already in production; name an earlier "
                "version with --to VERSION"
            )
        record = _move_by_person(
            publish, name, target, state, "rollback", reason=reason, user=user, force=force
        )
    return record


def _move_by_person(
    publish: str,
    name: str,
    version: str,
    state: _State,
    action: str,
    *,
    reason: str,
    user: str | None,
    force: bool,
) -> dict[str, Any]:
    """A promotion or rollback by hand: the version's gates (or --force), then the move."""
    gates = check_promotable(publish, name, version, force=force)
    _, record = _move(
        publish,
        name,
        version,
        state,
        action=action,
        actor="person",
        user=user or current_user(),
        reason=reason,
        forced=force and not gates["passed"],
        extra={},
    )
    return record
