"""Pipeline configuration: YAML in ``config/``, validated into typed objects (``model``), read and
checked (``loader``), with the estimators it names built and checked (``estimator``)."""

from __future__ import annotations

from mlcd.config.estimator import (
    build_estimator,
    check_spec,
    import_object,
)
from mlcd.config.loader import (
    check_estimator,
    check_suite_names,
    load_config,
    parse_config,
)
from mlcd.config.model import (
    NAME_PATTERN,
    SKLEARN_DATASETS,
    Bound,
    CandidateConfig,
    ChampionConfig,
    EvaluationConfig,
    GatesConfig,
    ModelConfig,
    PipelineConfig,
    SelectionConfig,
    SourceConfig,
    SplitConfig,
    SuiteConfig,
    TaskType,
    ValidationConfig,
)

__all__ = [
    "Bound",
    "CandidateConfig",
    "ChampionConfig",
    "EvaluationConfig",
    "GatesConfig",
    "ModelConfig",
    "NAME_PATTERN",
    "PipelineConfig",
    "SKLEARN_DATASETS",
    "SelectionConfig",
    "SourceConfig",
    "SplitConfig",
    "SuiteConfig",
    "TaskType",
    "ValidationConfig",
    "build_estimator",
    "check_estimator",
    "check_spec",
    "check_suite_names",
    "import_object",
    "load_config",
    "parse_config",
]
