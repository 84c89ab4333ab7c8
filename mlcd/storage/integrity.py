"""Checking bytes against the sha256 recorded for them: the one place mlcd decides whether an
artifact (a model, a snapshot, a version's file) is the one that was written."""

from __future__ import annotations

from collections.abc import Callable

from mlcd.errors import StorageError
from mlcd.fingerprint import sha256_bytes


def mismatch(data: bytes, expected: str | None) -> str | None:
    """The sha256 of ``data`` when it is not ``expected``; None when they match."""
    actual = sha256_bytes(data)
    return None if actual == expected else actual


def verified(data: bytes, expected: str, problem: Callable[[str], str]) -> bytes:
    """``data``, when its sha256 is ``expected``; otherwise StorageError with ``problem(actual)``,
    a message that names the artifact, the two digests and the fix."""
    actual = mismatch(data, expected)
    if actual is not None:
        raise StorageError(problem(actual))
    return data
