"""Test-set metrics and their plots, as plain data and PNG bytes.

``METRICS`` names every metric a gate may use and whether higher or lower is better; it is
imported by the config loader, so scikit-learn and matplotlib are imported only inside the
functions.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd


def _round(value: float) -> float:
    # Twelve significant digits: stable across platforms' last-bit differences, exact enough.
    return float(f"{float(value):.12g}")


# Labels that name the positive class of a binary target, whatever the other label is.
_AFFIRMATIVE = {"yes", "y", "true", "t", "1", "positive", "pos"}


def positive_label(classes: list[Any], configured: Any = None) -> Any:
    """The positive class of a binary classifier: the configured one, else the class that reads
    as yes/true/1, else the last class in sorted order (scikit-learn's convention)."""
    if configured is not None:
        return configured
    affirmative = [c for c in classes if str(c).strip().lower() in _AFFIRMATIVE]
    return affirmative[0] if len(affirmative) == 1 else classes[-1]


def scorer(task: str, metric: str, classes: list[Any] | None, average: str, positive: Any) -> Any:
    """A scikit-learn scorer of ``metric`` as mlcd computes it (the positive label, the
    averaging), for deepchecks' baseline comparison. deepchecks gives a scorer of a binary
    model labels encoded as 0 and 1 (the first and second of the model's classes), so the
    positive label is given as its index."""
    from sklearn import metrics as skm

    if task == "regression":
        names = {
            "mae": "neg_mean_absolute_error",
            "rmse": "neg_root_mean_squared_error",
            "r2": "r2",
            "median_ae": "neg_median_absolute_error",
        }
        return skm.get_scorer(names[metric])
    binary = classes is not None and len(classes) == 2
    if metric in ("accuracy", "balanced_accuracy"):
        return skm.get_scorer(metric)
    if metric == "log_loss":
        return skm.get_scorer("neg_log_loss")
    if metric == "roc_auc":
        return skm.get_scorer(
            "roc_auc" if binary else f"roc_auc_ovr{'_weighted' if average == 'weighted' else ''}"
        )
    function = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[
        metric
    ]
    if binary:
        pos = list(classes or []).index(positive_label(list(classes or []), positive))
        return skm.make_scorer(function, pos_label=pos, average="binary", zero_division=0)
    return skm.make_scorer(function, average=average, zero_division=0)


def classification_metrics(
    y_true: pd.Series,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    classes: list[Any],
    average: str,
    positive_label: Any = None,
) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, ROC AUC, log loss and the confusion matrix."""
    from sklearn import metrics as skm

    binary = len(classes) == 2
    pos = positive_label_of(classes, positive_label) if binary else None
    avg_kwargs: dict[str, Any] = (
        {"average": "binary", "pos_label": pos} if binary else {"average": average}
    )
    out: dict[str, Any] = {
        "accuracy": _round(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": _round(skm.balanced_accuracy_score(y_true, y_pred)),
        "precision": _round(skm.precision_score(y_true, y_pred, zero_division=0, **avg_kwargs)),
        "recall": _round(skm.recall_score(y_true, y_pred, zero_division=0, **avg_kwargs)),
        "f1": _round(skm.f1_score(y_true, y_pred, zero_division=0, **avg_kwargs)),
        "roc_auc": None,
        "log_loss": None,
    }
    if proba is not None:
        present = set(pd.unique(y_true))
        if len(present) >= 2:
            if binary:
                col = classes.index(pos)
                out["roc_auc"] = _round(skm.roc_auc_score(y_true == pos, proba[:, col]))
            elif present == set(classes):
                out["roc_auc"] = _round(
                    skm.roc_auc_score(
                        y_true, proba, multi_class="ovr", average=average, labels=classes
                    )
                )
        out["log_loss"] = _round(skm.log_loss(y_true, proba, labels=classes))
    matrix = skm.confusion_matrix(y_true, y_pred, labels=classes)
    out["confusion_matrix"] = {
        "labels": [_plain(c) for c in classes],
        "matrix": matrix.tolist(),
    }
    out["averaging"] = "binary" if binary else average
    if binary:
        out["positive_label"] = _plain(pos)
    return out


def regression_metrics(y_true: pd.Series, y_pred: np.ndarray) -> dict[str, Any]:
    """MAE, RMSE, R2 and median absolute error."""
    from sklearn import metrics as skm

    return {
        "mae": _round(skm.mean_absolute_error(y_true, y_pred)),
        "rmse": _round(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "r2": _round(skm.r2_score(y_true, y_pred)),
        "median_ae": _round(skm.median_absolute_error(y_true, y_pred)),
    }


def score(
    cfg: Any,
    y: pd.Series,
    predicted: tuple[np.ndarray, np.ndarray | None],
    classes: list[Any] | None = None,
) -> dict[str, Any]:
    """The metrics of ``predicted`` (predictions, probabilities; see ``training.predict``) against
    ``y`` for the pipeline's task type; ``classes`` is the model's ``classes_`` (classifiers)."""
    y_pred, proba = predicted
    if cfg.task == "regression":
        return {"task": "regression", "n_test": len(y), **regression_metrics(y, y_pred)}
    return {
        "task": "classification",
        "n_test": len(y),
        **classification_metrics(
            y,
            y_pred,
            proba,
            list(classes or []),
            cfg.evaluation.average,
            cfg.evaluation.positive_label,
        ),
    }


def predictions(
    model: Any, x: pd.DataFrame, y: pd.Series, y_pred: np.ndarray, proba: np.ndarray | None
) -> tuple[pd.DataFrame, list[Any] | None]:
    """Actual and predicted values (and class probabilities) per test row, by row id."""
    classes = list(getattr(model, "classes_", [])) or None
    frame = pd.DataFrame({"actual": y, "predicted": y_pred}, index=x.index)
    if proba is not None and classes is not None:
        for i, label in enumerate(classes):
            frame[f"proba_{label}"] = proba[:, i]
    return frame, classes


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    # No software/date metadata: the same figure gives the same bytes.
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def plots(
    task: str,
    y_true: pd.Series,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    classes: list[Any] | None,
    metrics: dict[str, Any],
) -> dict[str, bytes]:
    """Confusion matrix and ROC curve (classification) or predicted vs actual (regression)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

    out: dict[str, bytes] = {}
    if task == "regression":
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.scatter(y_true, y_pred, s=10, alpha=0.6)
        low = float(min(np.min(y_true), np.min(y_pred)))
        high = float(max(np.max(y_true), np.max(y_pred)))
        ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel("actual")
        ax.set_ylabel("predicted")
        ax.set_title(f"Predicted vs actual (R2 = {metrics['r2']:.3f})")
        fig.tight_layout()
        out["predicted_vs_actual.png"] = _png(fig)
        return out

    assert classes is not None
    cm = np.array(metrics["confusion_matrix"]["matrix"])
    fig, ax = plt.subplots(figsize=(5, 5))
    ConfusionMatrixDisplay(cm, display_labels=[str(c) for c in classes]).plot(ax=ax, colorbar=False)
    ax.set_title("Confusion matrix (test set)")
    fig.tight_layout()
    out["confusion_matrix.png"] = _png(fig)

    if proba is not None:
        fig, ax = plt.subplots(figsize=(5, 5))
        if len(classes) == 2:
            pos = metrics.get("positive_label", classes[-1])
            RocCurveDisplay.from_predictions(
                y_true == pos, proba[:, classes.index(pos)], ax=ax, name=f"class {pos}"
            )
        else:
            for i, label in enumerate(classes):
                if (y_true == label).any():
                    RocCurveDisplay.from_predictions(
                        y_true == label, proba[:, i], ax=ax, name=f"class {label} vs rest"
                    )
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
        ax.set_title("ROC curve (test set)")
        fig.tight_layout()
        out["roc_curve.png"] = _png(fig)
    return out


positive_label_of = positive_label  # classification_metrics' argument shadows the function
