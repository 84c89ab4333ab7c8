"""The one seam between mlcd and where its files live.

Tasks and library functions ask this module for targets and for whole-file reads and writes;
none of them opens paths itself. Every write is atomic (Luigi's ``LocalTarget`` writes a temporary
file and renames it), so a killed run never leaves a file that looks complete. Only local paths
are served today; an ``s3://`` URI is refused with a clear message.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from mlcd.errors import AlreadyRunning, StorageError

if TYPE_CHECKING:
    import luigi


def _check_local(path: str) -> str:
    if "://" in path:
        scheme = path.split("://", 1)[0]
        raise StorageError(
            f"location {path!r}: the {scheme}:// scheme is not supported by this version of mlcd; "
            "use a local path"
        )
    return path


def join(base: str, *parts: str) -> str:
    """Join a location and relative parts, whatever the location's kind."""
    return os.path.join(_check_local(base), *parts)


def target(path: str) -> luigi.LocalTarget:
    """A Luigi target for ``path``; binary, written atomically."""
    # Imported here: luigi takes over a second to import, and the registry commands
    # (``mlcd models ...``) read and write through this module without needing it.
    import luigi
    import luigi.format

    return luigi.LocalTarget(_check_local(path), format=luigi.format.Nop)


def exists(path: str) -> bool:
    return os.path.exists(_check_local(path))


def write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, then rename)."""
    try:
        with target(path).open("w") as handle:
            handle.write(data)
    except OSError as exc:
        raise StorageError(f"cannot write {path!r}: {exc.strerror or exc}") from None


def read_bytes(path: str) -> bytes:
    try:
        with open(_check_local(path), "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise StorageError(f"{path!r} does not exist") from None
    except OSError as exc:
        raise StorageError(f"cannot read {path!r}: {exc.strerror or exc}") from None


def dumps_json(obj: Any) -> bytes:
    """Canonical JSON as written by mlcd: sorted keys, two-space indent, final newline."""
    return (json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def write_json(path: str, obj: Any) -> None:
    write_bytes(path, dumps_json(obj))


def read_json(path: str) -> Any:
    data = read_bytes(path)
    try:
        return json.loads(data)
    except ValueError:
        raise StorageError(
            f"{path!r} is not valid JSON (corrupted or half-written by another tool); "
            "delete it so mlcd can write it again"
        ) from None


def append_line(path: str, line: str) -> None:
    """Append one line to a log file, creating it; one write call, flushed and synced.

    A last line left without its newline (a writer killed mid-write) is closed first, so the
    new line is never glued to it.
    """
    path = _check_local(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a+b") as handle:
        prefix = b""
        if handle.tell() > 0:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                prefix = b"\n"
        handle.write(prefix + line.rstrip("\n").encode("utf-8") + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


def list_dir(path: str) -> list[str]:
    """The names directly inside folder ``path``, sorted; empty when it does not exist."""
    try:
        return sorted(os.listdir(_check_local(path)))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise StorageError(f"cannot list {path!r}: {exc.strerror or exc}") from None


def modified_at(path: str) -> float:
    """When ``path`` was last written (seconds since the epoch)."""
    try:
        return os.stat(_check_local(path)).st_mtime
    except OSError as exc:
        raise StorageError(f"cannot read {path!r}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def exclusive_lock(path: str, holder: Mapping[str, Any], wait: float) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the ``with`` block.

    Waits up to ``wait`` seconds for another holder, then raises AlreadyRunning naming it.
    ``flock`` is released by the kernel when its holder dies, so a killed process never leaves
    a stale lock; the file itself stays (deleting it would let two processes lock two files).
    ``holder`` (who and why) is written into the file for the message others get.
    """
    import fcntl

    path = _check_local(path)
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageError(f"cannot create the lock {path!r}: {exc.strerror or exc}") from None
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raw = os.pread(fd, 4096, 0).decode("utf-8", errors="replace").strip()
                    try:
                        info = json.loads(raw)
                        who = ", ".join(f"{k} {v}" for k, v in sorted(info.items()))
                    except ValueError:
                        who = raw or "unknown holder"
                    raise AlreadyRunning(f"{path!r} is locked ({who}); waited {wait:g}s") from None
                time.sleep(0.02)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(dict(holder), sort_keys=True).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing releases the lock


def publish_dir(dest: str, files: Mapping[str, bytes]) -> bool:
    """Write ``files`` (relative name -> bytes) as the folder ``dest``, all or nothing.

    The folder is staged under a hidden name beside ``dest`` and renamed into place, so a reader
    sees either no folder or a complete one. Returns False when ``dest`` already exists (another
    publisher got there first): folders are immutable and never overwritten.
    """
    dest = _check_local(dest).rstrip("/")
    parent, name = os.path.split(dest)
    os.makedirs(parent, exist_ok=True)
    if os.path.exists(dest):
        return False
    staging = os.path.join(parent, f".staging-{name}-{uuid.uuid4().hex[:8]}")
    try:
        for rel, data in files.items():
            path = os.path.join(staging, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        try:
            os.rename(staging, dest)
        except OSError:
            if os.path.isdir(dest):
                return False
            raise
    except OSError as exc:
        raise StorageError(f"cannot publish to {dest!r}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True
