"""Changing production: by a run that passed its gates, or by a person (promote, rollback), always
under the model's lock, as one atomic replace of the alias and one line of the log."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import TYPE_CHECKING, Any

from mlcd import storage
from mlcd.errors import NotFound, PromotionRefused, StorageError, UsageError
from mlcd.registry.layout import (
    LOCK_WAIT,
    MODEL_FILE,
    RUN_LOCK_WAIT,
    VERDICT_FILE,
    current_user,
    locked,
    log_path,
    now_text,
    pointer_path,
    require_model,
    version_dir,
    version_ids,
)
from mlcd.registry.production import production, production_history, read_log
from mlcd.registry.summaries import gate_failures, gates_summary, metric_deltas, read_optional_json
from mlcd.registry.versions import read_manifest, recorded_sha256, verify_version

if TYPE_CHECKING:
    pass


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
    gates = gates_summary(read_optional_json(storage.join(folder, VERDICT_FILE)))
    deltas: dict[str, Any] = {}
    if manifest is not None and previous is not None and previous != version:
        try:
            before = read_manifest(publish, name, previous).get("metrics")
        except StorageError:
            before = None
        deltas = metric_deltas(manifest.get("metrics"), before)
    now = now_text()
    promotion_id = uuid.uuid4().hex
    model_sha256 = recorded_sha256(manifest, MODEL_FILE) if manifest else None
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
    run_date: str | None = None,
) -> dict[str, Any] | None:
    """Point production at ``version`` (one atomic replace) and log the change, under the lock.

    Used by PublishModel after a run passed every gate; people use ``promote`` and
    ``rollback``, which check the version first. With ``run_date`` (a run's, YYYY-MM-DD),
    production does not go back in time: when it holds a version of a later run date, it is
    left as it is and None is returned (a backfill of older dates, docs/triggers.md)."""
    with locked(publish, name, f"{action} {version}", wait):
        state = _read_state(publish, name)
        if state.pointer is not None and state.current == version:
            # A run killed between the pointer and its log line, run again: log the lost line
            # instead of a second change of production from the version to itself.
            _recover(publish, name, state)
            return state.pointer
        if run_date is not None and state.current is not None:
            newer = _run_date(publish, name, state.current)
            if newer is not None and newer > run_date:
                return None
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


def _run_date(publish: str, name: str, version: str) -> str | None:
    """The run date recorded in a version's manifest (None when it has none or is unreadable)."""
    try:
        found = read_manifest(publish, name, version).get("run_date")
    except StorageError:
        return None
    return found if isinstance(found, str) else None


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
        read_optional_json(storage.join(version_dir(publish, name, version), VERDICT_FILE))
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
    with locked(publish, name, f"promote {version}", wait):
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
    with locked(publish, name, f"rollback to {to or 'the previous version'}", wait):
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
