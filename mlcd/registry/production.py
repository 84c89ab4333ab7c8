"""What is in production: the alias ``production.json`` and the append-only promotion log."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mlcd import storage
from mlcd.errors import NotFound, StorageError
from mlcd.registry.layout import ID_PATTERN, log_path, pointer_path, version_ids

if TYPE_CHECKING:
    pass


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
    if not isinstance(version, str) or not ID_PATTERN.fullmatch(version):
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
