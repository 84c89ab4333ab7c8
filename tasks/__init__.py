"""mlcd's Luigi tasks: ``luigi --module tasks RetrainPipeline --config-path ... --date ...``."""

from tasks.pipeline import (
    EvaluateModel,
    ExtractData,
    PublishModel,
    RetrainPipeline,
    SplitData,
    TrainModel,
    ValidateData,
    ValidateModel,
    ValidateSplit,
)

__all__ = [
    "EvaluateModel",
    "ExtractData",
    "PublishModel",
    "RetrainPipeline",
    "SplitData",
    "TrainModel",
    "ValidateData",
    "ValidateModel",
    "ValidateSplit",
]
