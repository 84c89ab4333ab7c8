"""Digests that give tasks their identity, and the record of the environment a run used.

A task's identity is the digest of its family, its own configuration and its inputs' identities
(the idea of gokart's ``_make_hash_id``), so any upstream change gives new locations downstream
and old results stay valid.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from importlib import metadata
from typing import Any

# Bump when the layout or meaning of task outputs changes, so old outputs are not reused.
FORMAT_VERSION = 1

RESULT_SHAPING_PACKAGES = (
    "mlcd",
    "luigi",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "deepchecks",
    "joblib",
    "pyarrow",
    "matplotlib",
    "pydantic",
)


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def digest(obj: Any) -> str:
    """sha256 of the canonical JSON form of ``obj``."""
    return hashlib.sha256(canonical(obj)).hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            h.update(block)
    return h.hexdigest()


def task_identity(family: str, params: Any, inputs: Iterable[str]) -> str:
    """The short identity that names a task's output folder."""
    record = {"format": FORMAT_VERSION, "family": family, "params": params, "inputs": list(inputs)}
    return digest(record)[:16]


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in RESULT_SHAPING_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def code_version() -> dict[str, Any]:
    """The git commit of the mlcd checkout (and whether it had changes), where there is one."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(
            ["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return {"git_commit": None, "git_dirty": None}
        status = subprocess.run(
            ["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"git_commit": commit.stdout.strip(), "git_dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}


def environment() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        **code_version(),
    }
