"""Publishing a folder all or nothing: readers see no folder or a complete one."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Mapping

from mlcd.errors import StorageError
from mlcd.storage import seam
from mlcd.storage.s3 import Conflict
from mlcd.storage.seam import check_local, is_s3, join


def publish_dir(
    dest: str,
    files: Mapping[str, bytes],
    marker: str,
    complete: Callable[[bytes], bool] | None = None,
) -> bool:
    """Write ``files`` (relative name -> bytes) as the folder ``dest``, all or nothing.

    A reader sees either no folder or a complete one; ``marker`` (one of ``files``) is what says
    the folder is complete. Returns False when ``dest`` already exists (another publisher got
    there first): folders are immutable and never overwritten.

    Local: the folder is staged under a hidden name beside ``dest`` and renamed into place.
    S3 has no rename (and a copy and delete is not atomic): every file but the marker is written
    first, then the marker with a conditional PUT, so a killed publisher leaves a folder
    without a marker, which counts as absent and is overwritten by the next publisher. A store
    that is not atomic per object (s3rver) can leave a truncated marker when its writer is
    killed: a marker for which ``complete(bytes)`` is False counts as absent too, and is
    replaced with a conditional PUT on its ETag.
    """
    if marker not in files:
        raise ValueError(f"the marker {marker!r} is not among the files")
    if is_s3(dest):
        marker_path = join(dest, marker)
        found = seam.fetch(marker_path)
        if found is not None and (complete is None or complete(found[0])):
            return False
        for rel, data in sorted(files.items()):
            if rel != marker:
                seam.write_bytes(join(dest, rel), data)
        try:
            if found is None:
                seam.write_bytes(marker_path, files[marker], if_absent=True)
            else:
                seam.write_bytes(marker_path, files[marker], if_tag=found[1])
        except Conflict:
            return False
        return True
    dest = check_local(dest).rstrip("/")
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
