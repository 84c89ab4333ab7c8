"""The one seam between mlcd and where its files live.

Tasks and library functions ask this module for targets and for whole-file reads and writes;
none of them opens paths or branches on the kind of location. A location is a local path or an
``s3://BUCKET/KEY`` URI (``mlcd.storage.s3`` does the S3 side). Every write is atomic: a local
file is written under a temporary name and renamed, an S3 object appears when its upload
completes, so a killed run never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import tempfile
import time
from collections.abc import Iterable
from typing import IO, Any

from mlcd.errors import ConfigError, StorageError
from mlcd.storage import s3
from mlcd.storage.s3 import Conflict


def is_s3(path: str) -> bool:
    return path.startswith("s3://")


def check_local(path: str) -> str:
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
    try:
        return check_local(path)
    except StorageError as exc:  # in a config: the config is what to fix
        raise ConfigError(str(exc)) from None


def join(base: str, *parts: str) -> str:
    """Join a location and relative parts, whatever the location's kind."""
    if is_s3(base):
        return s3.join(base, *parts)
    return os.path.join(check_local(base), *parts)


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
    return os.path.exists(check_local(path))


def missing(folder: str, paths: Iterable[str]) -> list[str]:
    """Those of ``paths`` that do not exist, asking as little as possible: on S3 one listing of
    ``folder`` answers for everything under it, and one listing of their common folder for each
    group of the other paths (a HEAD for a path alone)."""
    paths = list(paths)
    gone = {p for p in paths if not is_s3(p) and not os.path.exists(check_local(p))}
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
        stat = os.stat(check_local(path))
    except FileNotFoundError:
        raise StorageError(f"{path!r} does not exist") from None
    except OSError as exc:
        raise StorageError(f"cannot read {path!r}: {exc.strerror or exc}") from None
    # ctime changes on every write and on utime, so a copy that keeps the mtime is noticed too.
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    return {"sha256": _file_digest(path, key), "size": stat.st_size}


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, stat: tuple[int, ...]) -> str:
    """The file's sha256, hashed once per change of its stat: also across runs, through
    ``<cache_dir>/digests/`` (a cron no-op on a 800 MB source otherwise spends a second
    hashing it). The stat includes the ctime, which only the kernel sets, so a file rewritten
    in place, renamed over or given back its old mtime is hashed again."""
    from mlcd.fingerprint import digest, sha256_file

    entry = os.path.join(cache_dir(), "digests", digest([os.path.realpath(path), list(stat)]))
    try:
        with open(entry, encoding="ascii") as handle:
            kept = handle.read().strip()
        if len(kept) == 64 and all(c in "0123456789abcdef" for c in kept):
            return kept
    except (OSError, ValueError):
        pass
    found = sha256_file(path)
    try:
        write_bytes(entry, found.encode())
    except (StorageError, OSError):
        pass  # no cache: hashed again next time
    return found


def cache_dir() -> str:
    """mlcd's local cache: ``MLCD_CACHE_DIR``, else ``$XDG_CACHE_HOME/mlcd`` (``~/.cache/mlcd``).
    Only answers that can be computed again live there."""
    if os.environ.get("MLCD_CACHE_DIR"):
        return os.environ["MLCD_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mlcd")


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
    return open(check_local(path), "rb")


def check_conditional_writes(path: str) -> None:
    """On S3, StorageError unless the store under ``path`` honours conditional writes, which
    mlcd's locks, promotions and logs rely on (probed once per bucket; local disk: nothing)."""
    if is_s3(path):
        s3.conditional_mode(path, folder=True)


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
        with open(check_local(path), "rb") as handle:
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
        os.unlink(check_local(path))


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
    path = check_local(path)
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
        return sorted(os.listdir(check_local(path)))
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
        return os.stat(check_local(path)).st_mtime
    except OSError as exc:
        raise StorageError(f"cannot read {path!r}: {exc.strerror or exc}") from None
