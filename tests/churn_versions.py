"""Two published versions of the churn table's model (tests/tables.py: ids, dates, text
categoricals with blanks, NaN charges, a yes/no label), made once per test session by the real
pipeline, for the prediction-log and shadow tests: ``first``, a HistGradientBoosting model on
every column, and ``second`` (production), a logistic regression that no longer takes
``region``. The deepchecks suites are off: these tests are about what serving records."""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests import tables
from tests.conftest import production, run_json, versions

MODEL = "churn"
TARGET = "churned"
_SETTINGS = (
    "validation: {data_integrity: {enabled: false}, train_test: {enabled: false}, "
    "model_evaluation: {enabled: false}}\n"
    "gates: {champion: {metric: f1, tolerance: 1.0}}\n"
)
_cache: dict[str, Path] = {}


@dataclasses.dataclass(frozen=True)
class Site:
    folder: Path
    first: str
    second: str  # in production

    @property
    def registry(self) -> Path:
        return self.folder / "registry"

    def reg(self) -> list[str]:
        return ["--registry", str(self.registry)]

    def log_dir(self) -> Path:
        return self.registry / MODEL / "predictions"


@functools.cache
def _table() -> pd.DataFrame:
    return tables.churn()


def table() -> pd.DataFrame:
    return _table().copy()


def rows(start: int, stop: int, drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rows of the table as a client sends them (JSON: blanks, nulls, the id), no label."""
    frame = _table().iloc[start:stop].drop(columns=[TARGET, *drop])
    records: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
    return records


def _build(folder: Path) -> Path:
    _, config = tables.write(folder, "churn")
    config.write_text(config.read_text() + _SETTINGS)
    code, _, err = run_json(config, date="2026-01-15")
    assert code == 0, err
    second = folder / "churn2.yaml"
    features = [c for c in table().columns if c not in (TARGET, "region", "customer_id")]
    second.write_text(
        config.read_text()
        + f"features: {json.dumps(features)}\n"
        + "model: {estimator: sklearn.linear_model.LogisticRegression, params: {max_iter: 500}}\n"
    )
    code, _, err = run_json(second, date="2026-01-16")
    assert code == 0, err
    return folder


def site(tmp_path_factory: pytest.TempPathFactory, into: Path) -> Site:
    """A copy, in ``into``, of the registry built once per session."""
    if "built" not in _cache:
        _cache["built"] = _build(tmp_path_factory.mktemp("churn-versions"))
    built = _cache["built"]
    shutil.copytree(built / "registry", into / "registry")
    reg = into / "registry"
    second = production(reg, MODEL)
    (first,) = [v for v in versions(reg, MODEL) if v != second]
    assert second is not None
    return Site(into, first, second)
