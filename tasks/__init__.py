"""mlcd's Luigi tasks: ``luigi --module tasks RetrainPipeline --config-path ... --date ...``.

    ExtractData -> ValidateData -> SplitData -> ValidateSplit -> TrainModel -> EvaluateModel
        -> ValidateModel -> PublishModel -> RetrainPipeline

Each ``produce()`` loads its inputs, calls one function of ``mlcd``, and writes its outputs; the
work itself lives in the library.
"""

from tasks import notify as _notify  # noqa: F401  (registers the webhook event handlers)
from tasks.data import (
    ExtractData,
    SourcePartition,
    SplitData,
    ValidateData,
    ValidateSplit,
    WaitForSource,
)
from tasks.model import EvaluateModel, TrainModel, ValidateModel
from tasks.monitor import MonitorDrift
from tasks.publish import PublishModel, RetrainPipeline

__all__ = [
    "EvaluateModel",
    "ExtractData",
    "MonitorDrift",
    "PublishModel",
    "RetrainPipeline",
    "SourcePartition",
    "SplitData",
    "TrainModel",
    "ValidateData",
    "ValidateModel",
    "ValidateSplit",
    "WaitForSource",
]
