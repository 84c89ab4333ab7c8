"""The pipeline configuration's typed shape: every key a config may hold, its type, default and
the checks pydantic runs on it."""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlcd.catalogue import METRICS, PRIMARY_METRIC, ROLES
from mlcd.notify import check_events, check_url

SKLEARN_DATASETS = ("breast_cancer", "wine", "iris", "diabetes", "digits")


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


TaskType = Literal["classification", "regression"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """Seconds in ``value``: a number of seconds, or text such as ``90s``, ``15m``, ``6h``,
    ``1h30m``, ``1d``; ValueError naming the accepted forms otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; give one like 60s, 15m, 6h or 1h30m")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().lower()
        parts = list(_DURATION.finditer(text))
        if not parts or "".join(p.group(0) for p in parts).replace(" ", "") != text.replace(
            " ", ""
        ):
            raise ValueError(
                f"{value!r} is not a duration; give one like 60s, 15m, 6h or 1h30m "
                "(s, m, h, d), or a number of seconds"
            )
        seconds = sum(float(p.group(1)) * _UNIT_SECONDS[p.group(2)] for p in parts)
    else:
        raise ValueError(f"{value!r} is not a duration; give one like 60s, 15m, 6h or 1h30m")
    if not seconds > 0:
        raise ValueError(f"{value!r}: a duration must be more than 0 seconds")
    return seconds


def format_duration(seconds: float) -> str:
    """``6h``, ``1h30m``, ``45s``: the inverse of parse_duration, for messages."""
    whole = int(round(seconds))
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size:
            out += f"{whole // size}{unit}"
            whole %= size
    return out + (f"{whole}s" if whole or not out else "")


class WaitConfig(_Strict):
    """``source.wait``: how long a run waits for its day's source partition to appear, and
    how often it looks (docs/triggers.md). Durations: 60s, 15m, 6h, 1h30m, or seconds."""

    timeout: float
    poll: float = 60.0

    @field_validator("timeout", "poll", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @model_validator(mode="after")
    def _poll_within_timeout(self) -> WaitConfig:
        if self.poll > self.timeout:
            raise ValueError(
                f"poll ({format_duration(self.poll)}) is longer than timeout "
                f"({format_duration(self.timeout)}); poll more often than the wait lasts"
            )
        return self


class SourceConfig(_Strict):
    """Where the raw data comes from: a bundled scikit-learn dataset, or a CSV/Parquet file."""

    dataset: str | None = Field(None, description="bundled scikit-learn dataset name")
    path: str | None = Field(None, description="CSV or Parquet file")
    format: Literal["csv", "parquet"] | None = None
    wait: WaitConfig | None = None

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
        if self.wait is not None and self.path is None:
            raise ValueError(
                "source.wait waits for a file to appear: it needs source.path, not a bundled "
                "dataset; remove source.wait"
            )
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


class DriftThresholds(_Strict):
    """When a column of production's inputs has drifted from the training data: each test's
    limit (``null``: the test is reported, never judged). See docs/monitoring.md."""

    psi: float | None = Field(0.2, ge=0)
    ks: float | None = Field(0.1, ge=0, le=1)
    wasserstein: float | None = Field(0.1, ge=0)
    chi_square_p: float | None = Field(0.01, ge=0, le=1)
    null_rate: float | None = Field(0.1, ge=0, le=1)
    unseen: float | None = Field(0.05, ge=0, le=1)


class LabelsConfig(_Strict):
    """Where the real outcomes of logged rows arrive: a CSV or Parquet file with the ``id``
    column and the config's target column."""

    path: str
    id: str


class MonitorConfig(_Strict):
    """``mlcd monitor``: the drift thresholds, per-column overrides, the fewest logged rows
    judged, where the prediction log and the labels are (docs/monitoring.md)."""

    thresholds: DriftThresholds = DriftThresholds()
    columns: dict[str, DriftThresholds] = Field(default_factory=dict)
    prediction_psi: float | None = Field(0.2, ge=0)
    min_rows: int = Field(200, ge=1)
    log: str | None = None
    labels: LabelsConfig | None = None
    metric_tolerance: float = Field(0.05, ge=0)


class NotifyConfig(_Strict):
    """``notify``: the webhooks this pipeline's events are POSTed to (instead of luigi.cfg's
    ``[mlcd] webhook_url``), and which events (default: all). See docs/triggers.md."""

    webhooks: list[str] = Field(default_factory=list)
    events: list[str] | None = None

    @field_validator("webhooks")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        return [check_url(url) for url in value]

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_events(value)


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
    monitor: MonitorConfig = MonitorConfig()
    notify: NotifyConfig = NotifyConfig()
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
