"""Where a model registry keeps what, and how its models and versions are named and found.

Layout under ``publish``::

    <name>/versions/<version>/   model.joblib, metrics.json, verdict.json, schema.json,
                                 input_example.json, predictions.parquet, profile.json,
                                 manifest.json, plots/*.png, reports/*.html
                                 (written whole, never changed)
    <name>/production.json       the production alias: which version, since when, by whom
                                 (replaced atomically)
    <name>/promotions.jsonl      append-only log of every change of production
    <name>/.lock                 held while production changes, so two changes never interleave
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mlcd import storage
from mlcd.errors import AlreadyRunning, NotFound, UsageError

if TYPE_CHECKING:
    pass


MODEL_FILE = "model.joblib"


MANIFEST_FILE = "manifest.json"


METRICS_FILE = "metrics.json"


VERDICT_FILE = "verdict.json"


SCHEMA_FILE = "schema.json"


EXAMPLE_FILE = "input_example.json"


# The reference profile of the training data (mlcd.monitoring.profile): what drift is measured
# against, so that monitoring never reads the training set again.
PROFILE_FILE = "profile.json"


POINTER_FILE = "production.json"


LOG_FILE = "promotions.jsonl"


LOCK_FILE = ".lock"


# Seconds a change of production waits for another one to finish. A change holds the lock for
# milliseconds; a pipeline run waits longer than a person at a terminal.
LOCK_WAIT = 10.0


RUN_LOCK_WAIT = 60.0


ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def now_text() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def current_user() -> str:
    """The login name of whoever runs mlcd, for the promotion log."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry)
        return "unknown"


def model_root(publish: str, name: str) -> str:
    return storage.join(publish, name)


def version_dir(publish: str, name: str, version: str) -> str:
    return storage.join(publish, name, "versions", version)


def pointer_path(publish: str, name: str) -> str:
    return storage.join(publish, name, POINTER_FILE)


def log_path(publish: str, name: str) -> str:
    return storage.join(publish, name, LOG_FILE)


def lock_path(publish: str, name: str) -> str:
    return storage.join(publish, name, LOCK_FILE)


def _check_id(text: str, what: str) -> str:
    if not ID_PATTERN.fullmatch(text):
        raise UsageError(
            f"{what} {text!r} is not valid: it is made of letters, digits, '.', '_' and '-' "
            "(no '/')"
        )
    return text


def list_models(publish: str) -> list[str]:
    """The models in the registry, by name."""
    return [
        name
        for name in storage.list_dir(publish)
        if ID_PATTERN.fullmatch(name)
        and (
            storage.exists(storage.join(publish, name, "versions"))
            or storage.exists(pointer_path(publish, name))
        )
    ]


def require_model(publish: str, name: str) -> None:
    """NotFound (naming the models there are) unless ``name`` is a model of the registry."""
    _check_id(name, "model name")
    known = list_models(publish)
    if name in known:
        return
    if known:
        raise NotFound(
            f"no model {name!r} in the registry at {publish!r}; it has: {', '.join(known)}. "
            "Check the name, or point at another registry with --registry DIR or --config PATH"
        )
    raise NotFound(
        f"no model {name!r}: the registry at {publish!r} has no models. Publish one with "
        "`mlcd run`, or point at another registry with --registry DIR or --config PATH"
    )


def version_ids(publish: str, name: str) -> list[str]:
    """The version folders of a model (unordered names; see list_versions for the order)."""
    folder = storage.join(model_root(publish, name), "versions")
    return [v for v in storage.list_dir(folder) if ID_PATTERN.fullmatch(v)]


def resolve_version(publish: str, name: str, text: str) -> str:
    """The full id of a version given by its id or a unique prefix of it."""
    _check_id(text, "version")
    ids = version_ids(publish, name)
    if text in ids:
        return text
    matches = sorted(v for v in ids if v.startswith(text))
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise UsageError(
            f"version prefix {text!r} of model {name!r} is ambiguous (it matches {shown}); "
            "give more characters"
        )
    raise NotFound(
        f"model {name!r} has no version {text!r}; `mlcd models list {name}` lists its "
        f"{len(ids)} version(s)"
    )


@contextlib.contextmanager
def locked(publish: str, name: str, doing: str, wait: float) -> Iterator[None]:
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "user": current_user(),
        "since": now_text(),
        "doing": doing,
    }
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(storage.exclusive_lock(lock_path(publish, name), holder, wait))
        except AlreadyRunning as exc:
            raise AlreadyRunning(
                f"another change of model {name!r}'s production is in progress: {exc}. Retry "
                "when it ends, or give it longer with --wait SECONDS"
            ) from None
        yield
