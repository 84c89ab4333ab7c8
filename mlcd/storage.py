"""The one seam between mlcd and where its files live.

Tasks and library functions ask this module for targets and for whole-file reads and writes;
none of them opens paths or branches on the kind of location. A location is a local path or an
``s3://BUCKET/KEY`` URI (``mlcd.s3`` does the S3 side). Every write is atomic: a local file is
written under a temporary name and renamed, an S3 object appears when its upload completes, so a
killed run never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

from mlcd import s3
from mlcd.errors import AlreadyRunning, StorageError
from mlcd.s3 import Conflict


def is_s3(path: str) -> bool:
    return path.startswith("s3://")


def _check_local(path: str) -> str:
    if "://" in path:
        scheme = path.split("://", 1)[0]
        raise StorageError(
            f"location {path!r}: the {scheme}:// scheme is not supported; use a local path or "
            "an s3://BUCKET/KEY URI"
        )
    return path


def check_location(path: str) -> str:
    """``path`` if mlcd can store there (a local path or a well-formed s3:// URI)."""
    if is_s3(path):
        return s3.check_uri(path)
    if "://" in path:
        from mlcd.errors import ConfigError

        scheme = path.split("://", 1)[0]
        raise ConfigError(
            f"location {path!r}: the {scheme}:// scheme is not supported; use a local path or "
            "an s3://BUCKET/KEY URI"
        )
    return path


def join(base: str, *parts: str) -> str:
    """Join a location and relative parts, whatever the location's kind."""
    if is_s3(base):
        return s3.join(base, *parts)
    return os.path.join(_check_local(base), *parts)


def parent(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[0] if is_s3(path) else os.path.dirname(path)


class ObjectTarget:
    """What a task's ``output()`` hands to Luigi: a location that exists or not.

    Reads and writes go through this module's functions (atomic on every backend), not through
    the target, so a task never holds a half-written file.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def exists(self) -> bool:
        return exists(self.path)

    def __repr__(self) -> str:
        return f"ObjectTarget({self.path!r})"


def target(path: str) -> ObjectTarget:
    """A Luigi target for ``path`` (local or S3)."""
    return _target_class()(check_location(path))


@functools.cache
def _target_class() -> type[ObjectTarget]:
    # luigi is imported here: it takes over a second to import, and the registry commands
    # (``mlcd models ...``) read and write through this module without needing it.
    import luigi

    class Target(ObjectTarget, luigi.Target):
        pass

    return Target


def exists(path: str) -> bool:
    if is_s3(path):
        return s3.head(path) is not None
    return os.path.exists(_check_local(path))


def missing(folder: str, paths: Iterable[str]) -> list[str]:
    """Those of ``paths`` that do not exist, asking as little as possible: on S3 one listing of
    ``folder`` answers for everything under it, and one listing of their common folder for each
    group of the other paths (a HEAD for a path alone)."""
    paths = list(paths)
    gone = {p for p in paths if not is_s3(p) and not os.path.exists(_check_local(p))}
    groups: dict[str, list[str]] = {folder.rstrip("/"): []} if is_s3(folder) else {}
    remote = [p for p in paths if is_s3(p)]
    for path in sorted(remote, key=lambda p: p.count("/")):  # shallow first: folders merge
        home = next((g for g in groups if path.startswith(g + "/")), None)
        if home is None:
            home = parent(path)
            for other in [g for g in groups if g.startswith(home + "/")]:
                groups.setdefault(home, []).extend(groups.pop(other))
        groups.setdefault(home, []).append(path)
    for home, members in groups.items():
        if len(members) == 1 and home != folder.rstrip("/"):
            gone.update(p for p in members if not exists(p))
        elif members:
            listed = s3.list_prefix(home, recursive=True)
            gone.update(p for p in members if p[len(home) + 1 :] not in listed)
    return [p for p in paths if p in gone]


def describe(path: str) -> dict[str, Any]:
    """What identifies a file's content without reading it twice: on S3 its ETag and size (no
    download), on local disk its sha256 and size (hashed once per change of its stat)."""
    if is_s3(path):
        meta = s3.head(path)
        if meta is None:
            raise StorageError(f"{path!r} does not exist")
        return {"etag": str(meta["ETag"]).strip('"'), "size": int(meta["ContentLength"])}
    try:
        stat = os.stat(_check_local(path))
    except FileNotFoundError:
        raise StorageError(f"{path!r} does not exist") from None
    except OSError as exc:
        raise StorageError(f"cannot read {path!r}: {exc.strerror or exc}") from None
    # ctime changes on every write and on utime, so a copy that keeps the mtime is noticed too.
    key = (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    return {"sha256": _file_digest(path, key), "size": stat.st_size}


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, _stat: tuple[int, ...]) -> str:
    from mlcd.fingerprint import sha256_file

    return sha256_file(path)


def open_read(path: str, *, seekable: bool = False) -> IO[bytes]:
    """A binary file to read ``path`` from. On S3 a plain reader streams the object once; a
    seekable one fetches only the byte ranges read (a Parquet footer and the columns used)."""
    if is_s3(path):
        if not seekable:
            return s3.stream(path)
        meta = s3.head(path)
        if meta is None:
            raise FileNotFoundError(path)
        reader = s3.RangeReader(path, int(meta["ContentLength"]))
        return io.BufferedReader(reader, buffer_size=4 * 1024 * 1024)
    return open(_check_local(path), "rb")


def write_bytes(
    path: str, data: bytes, *, if_absent: bool = False, if_tag: str | None = None
) -> str:
    """Write ``data`` to ``path`` atomically; the new content's tag (see ``fetch``).

    ``if_absent`` / ``if_tag`` make it conditional: Conflict when ``path`` exists / no longer has
    that tag. On S3 the condition is checked by the server (a conditional PUT); on local disk the
    caller holds the lock that serialises writers (``exclusive_lock``).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"write_bytes takes bytes, not {type(data).__name__}")
    if is_s3(path):
        return s3.put(path, data, if_absent=if_absent, if_etag=if_tag)
    if if_absent or if_tag:
        current = fetch(path)
        if if_absent and current is not None:
            raise Conflict(f"{path!r} exists already (another writer)")
        if if_tag and (current is None or current[1] != if_tag):
            raise Conflict(f"{path!r} changed meanwhile (another writer)")
    try:
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory or ".", prefix=f".{os.path.basename(path)}-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise StorageError(f"cannot write {path!r}: {exc.strerror or exc}") from None
    return _local_tag(data)


def _local_tag(data: bytes) -> str:
    from mlcd.fingerprint import sha256_bytes

    return sha256_bytes(data)


def fetch(path: str) -> tuple[bytes, str] | None:
    """The bytes at ``path`` and a tag of this content (an S3 ETag, a local sha256), for a
    conditional write back; None when there is nothing there."""
    if is_s3(path):
        return s3.fetch(path)
    try:
        data = read_bytes(path)
    except StorageError:
        if not os.path.exists(path):
            return None
        raise
    return data, _local_tag(data)


def read_bytes(path: str) -> bytes:
    if is_s3(path):
        found = s3.fetch(path)
        if found is None:
            raise StorageError(f"{path!r} does not exist")
        return found[0]
    try:
        with open(_check_local(path), "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise StorageError(f"{path!r} does not exist") from None
    except OSError as exc:
        raise StorageError(f"cannot read {path!r}: {exc.strerror or exc}") from None


def delete(path: str) -> None:
    """Remove one file or object (nothing when it is not there)."""
    if is_s3(path):
        s3.delete(path)
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_check_local(path))


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
    """Append one line to a log file, creating it.

    Local: one write call, flushed and synced; a last line left without its newline (a writer
    killed mid-write) is closed first, so the new line is never glued to it. S3 has no append:
    the object is read and written back with a conditional PUT, retried when another writer got
    in between, so no line is ever lost.
    """
    text = line.rstrip("\n").encode("utf-8") + b"\n"
    if is_s3(path):
        for _ in range(20):
            current = fetch(path)
            body = b"" if current is None else current[0]
            if body and not body.endswith(b"\n"):
                body += b"\n"
            try:
                if current is None:
                    write_bytes(path, text, if_absent=True)
                else:
                    write_bytes(path, body + text, if_tag=current[1])
                return
            except Conflict:
                time.sleep(0.05)
        raise StorageError(f"cannot append to {path!r}: too many concurrent writers; try again")
    path = _check_local(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a+b") as handle:
        prefix = b""
        if handle.tell() > 0:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                prefix = b"\n"
        handle.write(prefix + text)
        handle.flush()
        os.fsync(handle.fileno())


def list_dir(path: str) -> list[str]:
    """The names directly inside folder ``path``, sorted; empty when it does not exist."""
    if is_s3(path):
        return sorted(s3.list_prefix(path))
    try:
        return sorted(os.listdir(_check_local(path)))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise StorageError(f"cannot list {path!r}: {exc.strerror or exc}") from None


def modified_at(path: str) -> float:
    """When ``path`` was last written (seconds since the epoch)."""
    if is_s3(path):
        meta = s3.head(path)
        if meta is None:
            raise StorageError(f"{path!r} does not exist")
        return float(meta["LastModified"].timestamp())
    try:
        return os.stat(_check_local(path)).st_mtime
    except OSError as exc:
        raise StorageError(f"cannot read {path!r}: {exc.strerror or exc}") from None


def _holder_text(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        info = json.loads(text)
        return ", ".join(f"{k} {v}" for k, v in sorted(info.items()) if k != "expires")
    except (ValueError, AttributeError):
        return text or "unknown holder"


# How long an S3 lock lives without its holder renewing it: a killed holder cannot release it,
# so after this it is taken over. Far longer than any change of production takes.
S3_LOCK_LEASE = 120.0


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
            tag = write_bytes(path, body, if_absent=True)
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


def publish_dir(dest: str, files: Mapping[str, bytes], marker: str) -> bool:
    """Write ``files`` (relative name -> bytes) as the folder ``dest``, all or nothing.

    A reader sees either no folder or a complete one; ``marker`` (one of ``files``) is what says
    the folder is complete. Returns False when ``dest`` already exists (another publisher got
    there first): folders are immutable and never overwritten.

    Local: the folder is staged under a hidden name beside ``dest`` and renamed into place.
    S3 has no rename (and a copy and delete is not atomic): every file but the marker is written
    first, then the marker with a conditional PUT, so a killed publisher leaves a folder
    without a marker, which counts as absent and is overwritten by the next publisher.
    """
    if marker not in files:
        raise ValueError(f"the marker {marker!r} is not among the files")
    if is_s3(dest):
        marker_path = join(dest, marker)
        if exists(marker_path):
            return False
        for rel, data in sorted(files.items()):
            if rel != marker:
                write_bytes(join(dest, rel), data)
        try:
            write_bytes(marker_path, files[marker], if_absent=True)
        except Conflict:
            return False
        return True
    dest = _check_local(dest).rstrip("/")
    parent_dir, name = os.path.split(dest)
    try:
        os.makedirs(parent_dir, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot publish to {dest!r}: {exc.strerror or exc}") from None
    if os.path.exists(dest):
        return False
    staging = os.path.join(parent_dir, f".staging-{name}-{uuid.uuid4().hex[:8]}")
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
