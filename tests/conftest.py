"""Shared fixtures: pipeline configs in a temporary folder and ``mlcd`` run as a real process."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "config"
MLCD = str(Path(sys.executable).parent / "mlcd")


def deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def write_config(
    folder: Path, base: str = "pipeline.yaml", filename: str = "pipeline.yaml", **changes: Any
) -> Path:
    """A copy of a shipped config with its workspace and registry inside ``folder``."""
    data = yaml.safe_load((CONFIGS / base).read_text())
    data["workspace"] = "workspace"
    data["publish"] = "registry"
    data = deep_merge(data, changes)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_mlcd(
    *args: str, cwd: Path = ROOT, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLCD, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def run_json(
    config: Path, *extra: str, date: str = "2026-01-15"
) -> tuple[int, dict[str, Any], str]:
    """``mlcd run --json``: exit code, the summary, and stderr."""
    proc = run_mlcd("run", "--config", str(config), "--date", date, "--json", *extra)
    report = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
    return proc.returncode, report, proc.stderr


def versions(registry: Path, model: str) -> list[str]:
    folder = registry / model / "versions"
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def production(registry: Path, model: str) -> str | None:
    pointer = registry / model / "production.json"
    return json.loads(pointer.read_text())["version"] if pointer.exists() else None


def tree_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def config_in(tmp_path: Path) -> Callable[..., Path]:
    def make(base: str = "pipeline.yaml", **changes: Any) -> Path:
        return write_config(tmp_path, base, **changes)

    return make


# --- reproducibility and lineage (tests/test_lineage.py, tests/test_reproduce_e2e.py) ---------

NO_SUITES = {s: {"enabled": False} for s in ("data_integrity", "train_test", "model_evaluation")}


def csv_source(folder: Path, rows: int | None = None, name: str = "data.csv") -> Path:
    """scikit-learn's breast-cancer data as a CSV file in ``folder`` (its first ``rows`` rows)."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    (frame if rows is None else frame.iloc[:rows]).to_csv(path, index=False)
    return path


def csv_config(folder: Path, *, suites: bool = True, **changes: Any) -> Path:
    """The default pipeline reading ``folder/data.csv`` (written if missing); without the
    deepchecks suites (seconds instead of a dozen) unless ``suites``."""
    if not (folder / "data.csv").exists():
        csv_source(folder)
    path = write_config(folder, source={"path": "data.csv"}, **changes)
    data = yaml.safe_load(path.read_text())
    data["source"] = {"path": "data.csv"}
    if not suites:
        data["validation"] = NO_SUITES
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def set_model_params(config: Path, **params: Any) -> None:
    """Replace the config's model parameters (``write_config`` would merge them)."""
    data = yaml.safe_load(config.read_text())
    data["model"]["params"] = params
    config.write_text(yaml.safe_dump(data, sort_keys=False))


class _PickleThatWrites:
    """Unpickling this creates ``marker``: proof, when the file is absent, that a tampered model
    was never loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def evil_pickle(marker: Path) -> bytes:
    """joblib bytes that create ``marker`` when they are loaded."""
    import io

    import joblib

    buf = io.BytesIO()
    joblib.dump(_PickleThatWrites(marker), buf)
    return buf.getvalue()
