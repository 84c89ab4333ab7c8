"""The names mlcd's layers share: metrics and which way is better, the deepchecks suites and their
checks, and the pipeline's steps. Plain data that imports nothing, so the config loader can check
a name without importing scikit-learn, deepchecks or Luigi."""

from __future__ import annotations

from typing import Literal

Direction = Literal["max", "min"]

METRICS: dict[str, dict[str, Direction]] = {
    "classification": {
        "accuracy": "max",
        "balanced_accuracy": "max",
        "precision": "max",
        "recall": "max",
        "f1": "max",
        "roc_auc": "max",
        "log_loss": "min",
    },
    "regression": {"mae": "min", "rmse": "min", "r2": "max", "median_ae": "min"},
}


# The metric that ranks candidates and guards against regressions when the config names none.
PRIMARY_METRIC = {"classification": "f1", "regression": "rmse"}


SUITES = ("data_integrity", "train_test", "model_evaluation")

# The checks of each default deepchecks 0.19.1 suite (tests/test_validation.py checks this list
# against deepchecks itself), so a misspelt check name in a config fails at load time without
# importing deepchecks.
SUITE_CHECKS: dict[str, tuple[str, ...]] = {
    "data_integrity": (
        "IsSingleValue",
        "SpecialCharacters",
        "MixedNulls",
        "MixedDataTypes",
        "StringMismatch",
        "DataDuplicates",
        "StringLengthOutOfBounds",
        "ConflictingLabels",
        "OutlierSampleDetection",
        "FeatureLabelCorrelation",
        "FeatureFeatureCorrelation",
        "IdentifierLabelCorrelation",
    ),
    "train_test": (
        "DatasetsSizeComparison",
        "NewLabelTrainTest",
        "NewCategoryTrainTest",
        "StringMismatchComparison",
        "DateTrainTestLeakageDuplicates",
        "DateTrainTestLeakageOverlap",
        "IndexTrainTestLeakage",
        "TrainTestSamplesMix",
        "FeatureLabelCorrelationChange",
        "FeatureDrift",
        "LabelDrift",
        "MultivariateDrift",
    ),
    "model_evaluation": (
        "TrainTestPerformance",
        "RocReport",
        "ConfusionMatrixReport",
        "PredictionDrift",
        "SimpleModelComparison",
        "WeakSegmentsPerformance",
        "CalibrationScore",
        "RegressionErrorDistribution",
        "UnusedFeatures",
        "BoostingOverfit",
        "ModelInferenceTime",
    ),
}

# Conditions that mean the data or the model is broken block by default; the rest advise.
DEFAULT_BLOCKING: dict[str, tuple[str, ...]] = {
    "data_integrity": ("ConflictingLabels", "MixedDataTypes"),
    "train_test": (
        "DatasetsSizeComparison",
        "NewLabelTrainTest",
        "TrainTestSamplesMix",
        "IndexTrainTestLeakage",
        "DateTrainTestLeakageDuplicates",
        "DateTrainTestLeakageOverlap",
    ),
    "model_evaluation": ("SimpleModelComparison",),
}


# Advisory checks that take a second or more even on a 10,000-row sample (UnusedFeatures: the
# permutation importance it needs when the model has none of its own), as measured by
# benchmarks/validation_cost.py. On data of more than ``costly_checks_max_rows`` rows they are
# not run, unless they block.
COSTLY_CHECKS: dict[str, tuple[str, ...]] = {
    "data_integrity": ("OutlierSampleDetection", "FeatureLabelCorrelation"),
    "train_test": ("FeatureLabelCorrelationChange", "MultivariateDrift"),
    "model_evaluation": ("WeakSegmentsPerformance", "UnusedFeatures"),
}
# Checks that read only the number of rows of train and test: with n_samples they still see all
# of it (their verdict would change on a sample), the others see the sampled rows.
SIZE_ONLY_CHECKS = ("DatasetsSizeComparison",)
# The checks of model_evaluation that read the model's feature importance.
NEEDS_IMPORTANCE = ("UnusedFeatures", "WeakSegmentsPerformance")


# The pipeline's steps (its Luigi task families) in order: summaries list tasks in this order,
# and a reproduction reports a difference at the first of them that differs.
STEPS = (
    "ExtractData",
    "ValidateData",
    "SplitData",
    "ValidateSplit",
    "TrainModel",
    "EvaluateModel",
    "ValidateModel",
    "PublishModel",
)


# Column roles (mlcd/columns/roles.py): what each column is to the model. Only the first four are
# features; an id is deepchecks' index, free text, constant and dropped columns are left out.
ROLES = ("numeric", "categorical", "boolean", "datetime", "id", "text", "constant", "dropped")
FEATURE_ROLES = ("numeric", "categorical", "boolean", "datetime")

# Checks every config lists as known-broken unless it makes them block (a config's own
# ``known_broken`` adds to these): WeakSegmentsPerformance cannot fit its error model on small or
# few-featured data (DeepchecksProcessError).
DEFAULT_KNOWN_BROKEN: dict[str, tuple[str, ...]] = {
    "data_integrity": (),
    "train_test": (),
    "model_evaluation": ("WeakSegmentsPerformance",),
}
# The blocking checks judged on a ratio, and the largest ratio that passes (deepchecks' own
# default is 0: one pair of identical rows with two labels blocked a release). Chosen to pass
# clean real tables and fail broken ones (docs/gates.md): `validation.<suite>.max_ratio` sets them.
DEFAULT_MAX_RATIO: dict[str, dict[str, float]] = {
    "data_integrity": {"ConflictingLabels": 0.05},
    "train_test": {"TrainTestSamplesMix": 0.10},
    "model_evaluation": {},
}

# The metrics a run's summary and a finished EvaluateModel show, in this order.
HEADLINE_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"),
    "regression": ("mae", "rmse", "r2", "median_ae"),
}
