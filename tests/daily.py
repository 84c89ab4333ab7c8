"""A daily-partitioned source for the trigger tests: a churn export (tests/tables.py) written
one CSV per day, ``data/<date>.csv``, and the smallest config that reads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tables
import yaml
from conftest import NO_SUITES


def daily_config(folder: Path, **changes: Any) -> Path:
    """The smallest config of a churn export written one CSV per day, ``data/<date>.csv``;
    without the suites and with a quick estimator, so each day takes seconds."""
    data: dict[str, Any] = {
        "name": "churn",
        "task": "classification",
        "source": {"path": "data/{date}.csv"},
        "target": "churned",
        "workspace": "ws",
        "publish": "registry",
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "validation": NO_SUITES,
    }
    for key, value in changes.items():
        merge = isinstance(value, dict) and isinstance(data.get(key), dict)
        data[key] = {**data[key], **value} if merge else value
    (folder / "data").mkdir(parents=True, exist_ok=True)
    path = folder / "churn.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_day(folder: Path, day: str, seed: int = 0) -> Path:
    """The day's partition, written whole (a temporary name, then a rename, as exports do)."""
    path = folder / "data" / f"{day}.csv"
    tmp = path.with_suffix(".tmp")
    tables.churn(400, seed=seed).to_csv(tmp, index=False)
    tmp.replace(path)
    return path
