"""Crash harness for tests/test_crash_e2e.py: SIGKILLs (or holds) an ``mlcd`` process at a
chosen point of a chosen write. Python imports this module at start-up when tests/crash is on
PYTHONPATH; it does nothing unless one of these is set:

``MLCD_TEST_CRASH=POINT:REGEX``  SIGKILL this process at POINT of the first write whose
    destination matches REGEX (``re.search`` on the local path or ``s3://BUCKET/KEY``).
``MLCD_TEST_HOLD=POINT:REGEX`` with ``MLCD_TEST_HOLD_DIR=DIR``  at that point, create
    ``DIR/reached-<pid>`` and wait until ``DIR/go`` exists (a test does something meanwhile).

POINT is ``before`` the write, ``during`` it or ``after`` it (before the task's seal, which is
written last). "During" means: on local disk, the temporary file (or a version's staging
folder) is written but not yet renamed into place; on S3, every part of a multipart upload is
sent but the upload is not completed (the harness lowers
``mlcd.storage.s3.MULTIPART_THRESHOLD`` so that any object over 64 bytes goes up in parts).

Each action is announced on stderr (``crash-harness: ...``) before it happens, so a test can
tell that the process died where it was meant to and not elsewhere.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from typing import Any

POINTS = ("before", "during", "after")


def _spec(name: str) -> tuple[str, re.Pattern[str]] | None:
    text = os.environ.get(name)
    if not text:
        return None
    point, _, regex = text.partition(":")
    if point not in POINTS or not regex:
        raise SystemExit(f"crash-harness: {name}={text!r}: expected POINT:REGEX, POINT in {POINTS}")
    return point, re.compile(regex)


def _install() -> None:
    crash, hold = _spec("MLCD_TEST_CRASH"), _spec("MLCD_TEST_HOLD")
    if crash is None and hold is None:
        return
    actions = [(spec, kind) for spec, kind in ((crash, "kill"), (hold, "hold")) if spec]
    fired: set[str] = set()

    def act(point: str, path: str, what: str) -> None:
        for (want, regex), kind in actions:
            if kind in fired or want != point or not regex.search(path):
                continue
            fired.add(kind)
            print(f"crash-harness: {kind} {point} {what} {path}", file=sys.stderr, flush=True)
            if kind == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(60)  # never reached: SIGKILL cannot be caught
            else:
                folder = os.environ["MLCD_TEST_HOLD_DIR"]
                open(os.path.join(folder, f"reached-{os.getpid()}"), "w").close()
                deadline = time.monotonic() + 300
                while not os.path.exists(os.path.join(folder, "go")):
                    if time.monotonic() > deadline:
                        raise SystemExit("crash-harness: nobody said go in 300 s")
                    time.sleep(0.05)

    from mlcd import storage
    from mlcd.storage import publish, s3, seam

    # Modules call storage.write_bytes & co. by attribute lookup (storage's own modules through
    # mlcd.storage.seam), so patching the attributes of the package and of the modules that
    # define them reaches every caller, storage's own functions included.
    write_bytes, publish_dir, append_line = (
        storage.write_bytes,
        storage.publish_dir,
        storage.append_line,
    )

    def patched_write_bytes(path: str, data: bytes, **kwargs: Any) -> str:
        act("before", path, "write")
        tag = write_bytes(path, data, **kwargs)
        act("after", path, "write")
        return tag

    def patched_publish_dir(dest: str, files: Any, marker: str, **kwargs: Any) -> bool:
        act("before", dest, "publish_dir")
        created = publish_dir(dest, files, marker, **kwargs)
        act("after", dest, "publish_dir")
        return created

    def patched_append_line(path: str, line: str) -> None:
        act("before", path, "append")
        append_line(path, line)
        act("after", path, "append")

    storage.write_bytes = seam.write_bytes = patched_write_bytes  # type: ignore[assignment]
    storage.publish_dir = publish.publish_dir = patched_publish_dir  # type: ignore[assignment]
    storage.append_line = seam.append_line = patched_append_line  # type: ignore[assignment]

    # Local "during": the temporary file or staging folder is complete, the rename is not done.
    replace, rename = os.replace, os.rename

    def patched_replace(src: Any, dst: Any, **kwargs: Any) -> None:
        act("during", os.fspath(dst), "rename")
        replace(src, dst, **kwargs)

    def patched_rename(src: Any, dst: Any, **kwargs: Any) -> None:
        act("during", os.fspath(dst), "rename")
        rename(src, dst, **kwargs)

    os.replace = patched_replace  # type: ignore[assignment]
    os.rename = patched_rename  # type: ignore[assignment]

    # S3 "during": every part is uploaded, CompleteMultipartUpload is about to be sent.
    s3.MULTIPART_THRESHOLD = 64
    client = s3.client
    hooked: set[int] = set()

    def before_complete(params: dict[str, Any], **_: Any) -> None:
        act("during", f"s3://{params.get('Bucket')}/{params.get('Key')}", "multipart upload")

    def patched_client() -> tuple[Any, Any]:
        made, conf = client()
        if id(made) not in hooked:
            hooked.add(id(made))
            made.meta.events.register(
                "before-parameter-build.s3.CompleteMultipartUpload", before_complete
            )
        return made, conf

    s3.client = patched_client  # type: ignore[assignment]


_install()
