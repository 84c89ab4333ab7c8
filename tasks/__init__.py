"""mlcd's Luigi tasks: ``luigi --module tasks RetrainPipeline --config-path ... --date ...``.

    ExtractData -> ValidateData -> SplitData -> ValidateSplit -> TrainModel -> EvaluateModel
        -> ValidateModel -> PublishModel -> RetrainPipeline

Each ``produce()`` loads its inputs, calls one function of ``mlcd``, and writes its outputs; the
work itself lives in the library.
"""

from tasks.data import ExtractData, SplitData, ValidateData, ValidateSplit
from tasks.model import EvaluateModel, TrainModel, ValidateModel
from tasks.publish import PublishModel, RetrainPipeline

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
