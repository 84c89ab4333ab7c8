"""Where mlcd's files live: one seam over local paths and ``s3://`` URIs (``seam``, ``s3``),
atomic writes, locks (``locks``), all-or-nothing folders (``publish``) and digest checks
(``integrity``)."""

from __future__ import annotations

from mlcd.storage.integrity import (
    mismatch,
    verified,
)
from mlcd.storage.locks import (
    S3_LOCK_LEASE,
    exclusive_lock,
)
from mlcd.storage.publish import (
    publish_dir,
)
from mlcd.storage.seam import (
    ObjectTarget,
    append_line,
    cache_dir,
    check_conditional_writes,
    check_local,
    check_location,
    delete,
    describe,
    dumps_json,
    exists,
    fetch,
    is_s3,
    join,
    list_dir,
    missing,
    modified_at,
    open_read,
    parent,
    read_bytes,
    read_json,
    target,
    write_bytes,
    write_json,
)

__all__ = [
    "ObjectTarget",
    "S3_LOCK_LEASE",
    "append_line",
    "cache_dir",
    "check_local",
    "check_conditional_writes",
    "check_location",
    "delete",
    "describe",
    "dumps_json",
    "exclusive_lock",
    "exists",
    "fetch",
    "is_s3",
    "join",
    "list_dir",
    "mismatch",
    "missing",
    "modified_at",
    "open_read",
    "parent",
    "publish_dir",
    "read_bytes",
    "read_json",
    "target",
    "verified",
    "write_bytes",
    "write_json",
]
