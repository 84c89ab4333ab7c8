"""Pipeline configuration: YAML in ``config/``, validated into typed objects.

Every problem is reported as one ConfigError naming the file, the key, the value and what is
allowed. Relative paths in a config are resolved against the config file's own folder, so a
config means the same thing from whatever directory it is run.
"""

from __future__ import annotations

import datetime as _dt
import functools
import importlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlcd.errors import ConfigError
from mlcd.metrics import METRICS, PRIMARY_METRIC

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
    test_size: float = Field(0.25, gt=0, lt=1)
    seed: int = 42
    stratify: bool = True


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
    and above how many rows its costly advisory checks are left out (None: never)."""

    enabled: bool = True
    blocking: list[str] | None = None
    known_broken: list[str] = Field(default_factory=list)
    skip: list[str] = Field(default_factory=list)
    n_samples: int | None = Field(None, gt=0)
    costly_checks_max_rows: int | None = Field(100_000, ge=0)


class ValidationConfig(_Strict):
    data_integrity: SuiteConfig = SuiteConfig()
    train_test: SuiteConfig = SuiteConfig()
    model_evaluation: SuiteConfig = SuiteConfig(known_broken=["WeakSegmentsPerformance"])


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
    thresholds: dict[str, Bound] = Field(default_factory=dict)
    champion: ChampionConfig | None = None


class PipelineConfig(_Strict):
    name: str
    task: TaskType
    source: SourceConfig
    target: str
    features: list[str] | None = None
    split: SplitConfig = SplitConfig()
    model: ModelConfig | None = None
    candidates: list[CandidateConfig] | None = None
    selection: SelectionConfig = SelectionConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    validation: ValidationConfig = ValidationConfig()
    gates: GatesConfig = GatesConfig()
    workspace: str
    publish: str

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
        if (self.model is None) == (self.candidates is None):
            raise ValueError(
                "give exactly one of 'model' (one estimator) or 'candidates' (a list of "
                "estimators, each with a 'name')"
            )
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


def _resolve(base: Path, location: str) -> str:
    if "://" in location or os.path.isabs(location):
        return location
    return os.path.normpath(str(base / location))


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """Walk the model classes along ``loc`` to list the keys allowed where a bad key stood."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        current = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


def _describe(error: Mapping[str, Any], path: str) -> str:
    loc = tuple(p for p in error["loc"] if not str(p).startswith("function-"))
    key = ".".join(str(p) for p in loc) or "(top level)"
    if not key.isprintable():  # a key with a newline or a control character
        key = key.encode("unicode_escape").decode("ascii")
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(PipelineConfig, loc[:-1])
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"{path}: unknown key '{key}'{hint}"
    if error["type"] == "missing":
        return f"{path}: missing required key '{key}'"
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
    if not loc:  # a check across keys: its message names them
        return f"{path}: {message}{shown}"
    return f"{path}: '{key}': {message}{shown}"


def parse_config(data: Any, path: str, base: Path) -> PipelineConfig:
    """Validate a mapping into a PipelineConfig; paths resolved against ``base``."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the config must be a YAML mapping of keys, got {type(data).__name__}"
        )
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = _describe(errors[0], path)
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ConfigError(first + more) from None
    except (TypeError, AttributeError) as exc:
        # pydantic reports a validator's ValueError, not these: braces in source.path such as
        # {date[0]} or {date.foo} raise them when the date is filled in.
        source = data.get("source")
        if isinstance(source, dict) and "{" in str(source.get("path")):
            raise ConfigError(
                f"{path}: 'source.path': {source.get('path')!r}: braces may only hold the run "
                f"date, as {{date}} or {{date:%Y/%m/%d}} (any strftime format); here: {exc}"
            ) from None
        raise ConfigError(f"{path}: a value cannot be used: {exc}") from None
    updates: dict[str, Any] = {
        "workspace": _resolve(base, cfg.workspace),
        "publish": _resolve(base, cfg.publish),
    }
    if cfg.source.path is not None:
        updates["source"] = cfg.source.model_copy(update={"path": _resolve(base, cfg.source.path)})
    cfg = cfg.model_copy(update=updates)
    from mlcd.storage import check_location

    for key, location in (
        ("source.path", cfg.source.path),
        ("workspace", cfg.workspace),
        ("publish", cfg.publish),
    ):
        if location is not None:
            try:
                check_location(location)
            except ConfigError as exc:
                raise ConfigError(f"{path}: '{key}': {exc}") from None
    check_estimator(cfg, path)
    from mlcd.validation import check_suite_names

    try:
        check_suite_names(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return cfg


def load_config(path: str | os.PathLike[str]) -> PipelineConfig:
    """Read and validate a pipeline config; raise ConfigError naming what is wrong."""
    file = Path(path)
    try:
        stat = file.stat()
    except OSError as exc:
        raise ConfigError(
            f"cannot read config {str(path)!r}: {exc.strerror}. Pass an existing YAML file "
            "with --config (the default is config/pipeline.yaml)"
        ) from None
    key = (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    return _load_cached(str(file.resolve()), key, str(path))


@functools.lru_cache(maxsize=32)
def _load_cached(resolved: str, _stat: tuple[int, ...], shown: str) -> PipelineConfig:
    try:
        text = Path(resolved).read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{shown}: not valid YAML: {exc}".replace("\n", " ")) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{shown}: not UTF-8 text; save the config as UTF-8") from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read config {shown!r}: {exc.strerror or exc}. Pass a readable YAML file "
            "with --config"
        ) from None
    return parse_config(data, shown, Path(resolved).parent)


def import_object(dotted: str) -> Any:
    """Import ``package.module.Name``; raise ImportError/AttributeError as Python does."""
    module_name, _, attr = dotted.rpartition(".")
    if not module_name or module_name.startswith("."):  # '..x.Y' would be a relative import
        raise ImportError(f"{dotted!r} is not a dotted path like 'sklearn.linear_model.Ridge'")
    return getattr(importlib.import_module(module_name), attr)


def check_estimator(cfg: PipelineConfig, path: str) -> None:
    """Build the configured estimator once, so a typo fails before anything runs."""
    from mlcd.training import check_spec

    for name, spec in cfg.models().items():
        where = "model" if cfg.candidates is None else f"candidates[{name}]"
        try:
            check_spec(spec, where)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}".replace("\n", "\\n")) from None
        except TypeError as exc:  # e.g. a Pipeline step whose name is not text
            raise ConfigError(
                f"{path}: '{where}': {spec.estimator} cannot be built from its params: {exc}"
            ) from None
        except ValidationError as exc:  # a nested {estimator, params} mapping of the wrong shape
            error = exc.errors()[0]
            key = ".".join(str(p) for p in error["loc"])
            raise ConfigError(
                f"{path}: '{where}.params': a nested estimator's '{key}': {error['msg']} "
                f"(got {error.get('input')!r}); a nested estimator is a mapping "
                "{estimator: import.path, params: {...}}"
            ) from None
