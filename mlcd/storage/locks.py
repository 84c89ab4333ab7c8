"""Exclusive locks on a location: a local file lock the kernel drops when its holder dies, or an
S3 object created with a conditional PUT."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

from mlcd.errors import AlreadyRunning, StorageError
from mlcd.storage import s3, seam
from mlcd.storage.s3 import Conflict
from mlcd.storage.seam import check_local, fetch, is_s3

# How long an S3 lock lives without its holder renewing it: a killed holder cannot release it,
# so after this it is taken over. Far longer than any change of production takes.
S3_LOCK_LEASE = 120.0


def _holder_text(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        info = json.loads(text)
        return ", ".join(f"{k} {v}" for k, v in sorted(info.items()) if k != "expires")
    except (ValueError, AttributeError):
        return text or "unknown holder"


@contextlib.contextmanager
def exclusive_lock(path: str, holder: Mapping[str, Any], wait: float) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the ``with`` block.

    Waits up to ``wait`` seconds for another holder, then raises AlreadyRunning naming it.
    ``holder`` (who and why) is written into the lock for the message others get.

    Local: ``flock``, released by the kernel when its holder dies, so a killed process never
    leaves a stale lock; the file itself stays (deleting it would let two processes lock two
    files). S3: an object created with a conditional PUT (If-None-Match), deleted on release; one
    left by a killed holder is taken over once its lease (``S3_LOCK_LEASE``) has run out.
    """
    if is_s3(path):
        with _s3_lock(path, holder, wait):
            yield
        return
    import fcntl

    path = check_local(path)
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
                    who = _holder_text(os.pread(fd, 4096, 0))
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


def _holder_died_here(raw: bytes) -> bool:
    """Whether an S3 lock's holder was a process on this host that no longer exists (killed:
    a rerun on the same host need not wait out the lease). A holder on another host, or one
    that did not record its pid and host, is waited for."""
    import socket

    try:
        info = json.loads(raw)
        pid, host = int(info["pid"]), info["host"]
    except (ValueError, KeyError, TypeError):
        return False
    if host != socket.gethostname() or pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, owned by another user
    return False


@contextlib.contextmanager
def _s3_lock(path: str, holder: Mapping[str, Any], wait: float) -> Iterator[None]:
    deadline = time.monotonic() + max(wait, 0.0)
    body = json.dumps({**holder, "expires": time.time() + S3_LOCK_LEASE}, sort_keys=True).encode()
    while True:
        try:
            tag = seam.write_bytes(path, body, if_absent=True)
            break
        except Conflict:
            current = fetch(path)
            if current is None:
                continue  # released meanwhile
            try:
                expires = float(json.loads(current[0]).get("expires", 0))
            except (ValueError, AttributeError, TypeError):
                expires = 0.0
            if expires < time.time() or _holder_died_here(current[0]):
                # The holder died without releasing; only one taker's conditional delete wins.
                with contextlib.suppress(Conflict):
                    s3.delete(path, if_etag=current[1])
                continue
            if time.monotonic() >= deadline:
                who = _holder_text(current[0])
                raise AlreadyRunning(f"{path!r} is locked ({who}); waited {wait:g}s") from None
            time.sleep(0.2)
    try:
        yield
    finally:
        with contextlib.suppress(StorageError):
            s3.delete(path, if_etag=tag)
