"""The pipeline configuration's typed shape: every key a config may hold, its type, default and
the checks pydantic runs on it."""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlcd.catalogue import METRICS, PRIMARY_METRIC, ROLES

SKLEARN_DATASETS = ("breast_cancer", "wine", "iris", "diabetes", "digits")


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


TaskType = Literal["classification", "regression"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Strict):
    """Where the raw data comes from: a bundled scikit-learn dataset, or a CSV/Parquet file."""

    dataset: str | None = Field(None, description="bundled scikit-learn dataset name")
    path: str | None = Field(None, description="CSV or Parquet file")
    format: Literal["csv", "parquet"] | None = None

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value: str | None) -> str | None:
        if value is not None and value not in SKLEARN_DATASETS:
            raise ValueError(f"unknown dataset {value!r}; allowed: {', '.join(SKLEARN_DATASETS)}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> SourceConfig:
        if (self.dataset is None) == (self.path is None):
            raise ValueError("give exactly one of 'dataset' (bundled) or 'path' (CSV/Parquet)")
        if self.path is not None and self.format is None:
            suffix = Path(self.path).suffix.lower()
            fmt = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(suffix)
            if fmt is None:
                raise ValueError(
                    f"cannot tell the format of {self.path!r} from its suffix; "
                    "set source.format to 'csv' or 'parquet'"
                )
            object.__setattr__(self, "format", fmt)
        if self.path is not None:
            try:
                self.path.format(date=_dt.date(2000, 1, 31))
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(
                    f"{self.path!r}: braces may only hold the run date, as {{date}} (2000-01-31) "
                    f"or {{date:%Y/%m/%d}} (any strftime format); here they hold {exc}"
                ) from None
        return self

    def for_date(self, date: _dt.date) -> SourceConfig:
        """This source on ``date``: ``{date}`` in the path is filled in (daily partitions)."""
        if self.path is None or "{" not in self.path:
            return self
        return self.model_copy(update={"path": self.path.format(date=date)})


class SplitConfig(_Strict):
    """``method: auto`` splits by time when the data has a datetime column (the newest rows are
    the test set: a model is judged on the future, and deepchecks' date-leakage gates hold), at
    random otherwise; ``time_column`` names the date to split on (default: the first)."""

    test_size: float = Field(0.25, gt=0, lt=1)
    seed: int = 42
    stratify: bool = True
    method: Literal["auto", "random", "time"] = "auto"
    time_column: str | None = None


class TargetConfig(_Strict):
    """The label column and what to do with rows that have none."""

    column: str
    drop_missing: bool = True


class ModelConfig(_Strict):
    """An estimator by import path with its parameters; values may nest further estimators."""

    estimator: str
    params: dict[str, Any] = Field(default_factory=dict)


class CandidateConfig(ModelConfig):
    """One model of a candidate grid; each trains, evaluates and is gated on its own."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$")

    def spec(self) -> ModelConfig:
        return ModelConfig(estimator=self.estimator, params=self.params)


class SelectionConfig(_Strict):
    """Which passing candidate is published: the best on ``metric``."""

    metric: str | None = None


class EvaluationConfig(_Strict):
    average: Literal["macro", "micro", "weighted"] = "macro"
    positive_label: int | str | None = None


class SuiteConfig(_Strict):
    """One deepchecks suite: which checks block, which are known to break, how much to sample,
    and above how many rows its costly advisory checks are left out (None: never).

    It merges with the defaults (catalogue.DEFAULT_KNOWN_BROKEN, DEFAULT_MAX_RATIO): a
    ``known_broken`` list adds to the suite's default one, ``max_ratio`` overrides the default
    ratio of the checks it names. ``blocking`` replaces the default list when given."""

    enabled: bool = True
    blocking: list[str] | None = None
    known_broken: list[str] = Field(default_factory=list)
    skip: list[str] = Field(default_factory=list)
    max_ratio: dict[str, float] = Field(default_factory=dict)
    n_samples: int | None = Field(None, gt=0)
    costly_checks_max_rows: int | None = Field(100_000, ge=0)


class ValidationConfig(_Strict):
    data_integrity: SuiteConfig = SuiteConfig()
    train_test: SuiteConfig = SuiteConfig()
    model_evaluation: SuiteConfig = SuiteConfig()


class Bound(_Strict):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("give 'min', 'max' or both")
        return self


class ChampionConfig(_Strict):
    """The challenger may be worse than production by at most ``tolerance`` on ``metric``."""

    metric: str
    tolerance: float = Field(0.0, ge=0)


class GatesConfig(_Strict):
    """``every_class``: a classifier must predict each class present in the test set at least
    once (a 2%-positive model that always answers "no" has 98% accuracy and is useless)."""

    thresholds: dict[str, Bound] = Field(default_factory=dict)
    champion: ChampionConfig | None = None
    every_class: bool = True


# The model a config without ``model`` or ``candidates`` trains: gradient boosting takes
# missing values and categories natively, and balanced class weights make a classifier find a
# rare class (docs/columns.md).
DEFAULT_MODELS: dict[str, dict[str, Any]] = {
    "classification": {
        "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
        "params": {"class_weight": "balanced", "random_state": 0},
    },
    "regression": {
        "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
        "params": {"random_state": 0},
    },
}


class PipelineConfig(_Strict):
    name: str
    task: TaskType
    source: SourceConfig
    target: str
    target_drop_missing: bool = True
    features: list[str] | None = None
    columns: dict[str, str] = Field(default_factory=dict)
    split: SplitConfig = SplitConfig()
    model: ModelConfig | None = None
    candidates: list[CandidateConfig] | None = None
    selection: SelectionConfig = SelectionConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    validation: ValidationConfig = ValidationConfig()
    gates: GatesConfig = GatesConfig()
    workspace: str
    publish: str

    @model_validator(mode="before")
    @classmethod
    def _target_mapping(cls, data: Any) -> Any:
        """``target: churned`` or ``target: {column: churned, drop_missing: false}``."""
        if isinstance(data, dict) and isinstance(data.get("target"), dict):
            if "target_drop_missing" in data:
                raise ValueError("give target.drop_missing, not target_drop_missing")
            spec = TargetConfig.model_validate(data["target"])
            data = {**data, "target": spec.column, "target_drop_missing": spec.drop_missing}
        return data

    @field_validator("columns")
    @classmethod
    def _known_roles(cls, value: dict[str, str]) -> dict[str, str]:
        for column, role in value.items():
            if role not in ROLES:
                raise ValueError(
                    f"columns.{column}: unknown role {role!r}; allowed: {', '.join(ROLES)}"
                )
        return value

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not re.match(NAME_PATTERN, value):
            raise ValueError(
                f"model name {value!r} must be 1-100 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        return value

    @model_validator(mode="after")
    def _one_model_or_candidates(self) -> PipelineConfig:
        if self.model is not None and self.candidates is not None:
            raise ValueError(
                "give one of 'model' (one estimator) or 'candidates' (a list of estimators, "
                "each with a 'name'), not both"
            )
        if self.model is None and self.candidates is None:
            object.__setattr__(self, "model", ModelConfig(**DEFAULT_MODELS[self.task]))
        if self.candidates is not None:
            if not self.candidates:
                raise ValueError("'candidates' is empty; list at least one model")
            names = [c.name for c in self.candidates]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"candidates: duplicated name(s) {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _known_metrics(self) -> PipelineConfig:
        allowed = METRICS[self.task]
        if self.selection.metric is not None and self.selection.metric not in allowed:
            raise ValueError(
                f"selection.metric: unknown metric {self.selection.metric!r} for a {self.task} "
                f"pipeline; allowed: {', '.join(allowed)}"
            )
        for metric in self.gates.thresholds:
            if metric not in allowed:
                raise ValueError(
                    f"gates.thresholds: unknown metric {metric!r} for a {self.task} pipeline; "
                    f"allowed: {', '.join(allowed)}"
                )
        champion = self.gates.champion
        if champion is not None and champion.metric not in allowed:
            raise ValueError(
                f"gates.champion.metric: unknown metric {champion.metric!r} for a {self.task} "
                f"pipeline; allowed: {', '.join(allowed)}"
            )
        return self

    def models(self) -> dict[str, ModelConfig]:
        """The model(s) to train, by candidate name ('model' when there is a single one)."""
        if self.candidates is None:
            assert self.model is not None
            return {"model": self.model}
        return {c.name: c.spec() for c in self.candidates}

    def selection_metric(self) -> str:
        if self.selection.metric is not None:
            return self.selection.metric
        if self.gates.champion is not None:
            return self.gates.champion.metric
        return PRIMARY_METRIC[self.task]

    def public_dict(self) -> dict[str, Any]:
        """The config as data, for digests and manifests."""
        return self.model_dump(mode="json")
