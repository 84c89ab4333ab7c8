"""mlcd.metrics: the numbers agree with scikit-learn called directly, and the plots are
reproducible PNG bytes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from mlcd.catalogue import METRICS
from mlcd.metrics import classification_metrics, plots, regression_metrics

PNG = b"\x89PNG\r\n\x1a\n"


def binary_case(seed: int = 0) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = pd.Series(rng.integers(0, 2, size=120))
    p1 = 0.35 * y_true.to_numpy() + rng.uniform(0, 0.65, size=120)  # overlapping classes
    proba = np.column_stack([1 - p1, p1])
    y_pred = (p1 >= 0.5).astype(int)
    return y_true, y_pred, proba


def multiclass_case(seed: int = 0) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = pd.Series(rng.integers(0, 3, size=150))
    scores = rng.uniform(size=(150, 3)) + 1.5 * np.eye(3)[y_true]
    proba = scores / scores.sum(axis=1, keepdims=True)
    return y_true, proba.argmax(axis=1), proba


def test_binary_metrics_match_scikit_learn_with_the_last_class_positive():
    y_true, y_pred, proba = binary_case()
    got = classification_metrics(y_true, y_pred, proba, [0, 1], average="macro")
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred), rel=1e-10)
    assert got["balanced_accuracy"] == pytest.approx(
        skm.balanced_accuracy_score(y_true, y_pred), rel=1e-10
    )
    assert got["precision"] == pytest.approx(skm.precision_score(y_true, y_pred), rel=1e-10)
    assert got["recall"] == pytest.approx(skm.recall_score(y_true, y_pred), rel=1e-10)
    assert got["f1"] == pytest.approx(skm.f1_score(y_true, y_pred), rel=1e-10)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y_true, proba[:, 1]), rel=1e-10)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y_true, proba), rel=1e-10)
    assert got["averaging"] == "binary" and got["positive_label"] == 1


def test_binary_metrics_honour_an_explicit_positive_label():
    y_true, y_pred, proba = binary_case(seed=1)
    names = np.array(["benign", "malignant"])
    y_true_s, y_pred_s = pd.Series(names[y_true]), names[y_pred]
    got = classification_metrics(
        y_true_s, y_pred_s, proba, ["benign", "malignant"], average="macro", positive_label="benign"
    )
    assert got["positive_label"] == "benign"
    assert got["precision"] == pytest.approx(
        skm.precision_score(y_true_s, y_pred_s, pos_label="benign"), rel=1e-10
    )
    assert got["recall"] == pytest.approx(
        skm.recall_score(y_true_s, y_pred_s, pos_label="benign"), rel=1e-10
    )
    assert got["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y_true_s == "benign", proba[:, 0]), rel=1e-10
    )
    # the positive class changes the answer, so the label was really used
    assert got["recall"] != pytest.approx(
        skm.recall_score(y_true_s, y_pred_s, pos_label="malignant")
    )


@pytest.mark.parametrize("average", ["macro", "weighted", "micro"])
def test_multiclass_metrics_match_scikit_learn_for_the_configured_average(average):
    y_true, y_pred, proba = multiclass_case()
    got = classification_metrics(y_true, y_pred, proba, [0, 1, 2], average=average)
    assert got["averaging"] == average and "positive_label" not in got
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred), rel=1e-10)
    for name, fn in (
        ("precision", skm.precision_score),
        ("recall", skm.recall_score),
        ("f1", skm.f1_score),
    ):
        assert got[name] == pytest.approx(fn(y_true, y_pred, average=average), rel=1e-10), name
    assert got["log_loss"] == pytest.approx(skm.log_loss(y_true, proba), rel=1e-10)
    if average != "micro":
        expected_auc = skm.roc_auc_score(y_true, proba, multi_class="ovr", average=average)
        assert got["roc_auc"] == pytest.approx(expected_auc, rel=1e-10)


def test_multiclass_macro_differs_from_weighted_on_imbalanced_classes():
    # guards the test above: on this data the averaging choice changes the F1
    y_true = pd.Series([0] * 8 + [1] * 2 + [2] * 2)
    y_pred = np.array([0] * 8 + [0, 1] + [2, 1])
    macro = classification_metrics(y_true, y_pred, None, [0, 1, 2], average="macro")["f1"]
    weighted = classification_metrics(y_true, y_pred, None, [0, 1, 2], average="weighted")["f1"]
    assert macro == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    assert macro != pytest.approx(weighted)


def test_without_probabilities_roc_auc_and_log_loss_are_none():
    y_true, y_pred, _ = binary_case()
    got = classification_metrics(y_true, y_pred, None, [0, 1], average="macro")
    assert got["roc_auc"] is None and got["log_loss"] is None
    assert got["accuracy"] is not None


def test_roc_auc_is_none_when_the_test_set_has_a_single_class():
    y_true = pd.Series([1, 1, 1, 1])
    proba = np.array([[0.2, 0.8], [0.4, 0.6], [0.7, 0.3], [0.1, 0.9]])
    got = classification_metrics(y_true, np.array([1, 1, 0, 1]), proba, [0, 1], average="macro")
    assert got["roc_auc"] is None
    assert got["log_loss"] == pytest.approx(skm.log_loss(y_true, proba, labels=[0, 1]), rel=1e-10)


def test_confusion_matrix_is_square_over_all_classes_in_the_given_order():
    y_true = pd.Series(["b", "a", "c", "a", "b", "b"])
    y_pred = np.array(["b", "a", "a", "a", "c", "b"])
    classes = ["c", "b", "a", "d"]  # includes a class absent from the test set
    got = classification_metrics(y_true, y_pred, None, classes, average="macro")["confusion_matrix"]
    assert got["labels"] == classes
    matrix = np.array(got["matrix"])
    assert matrix.shape == (4, 4) and matrix.sum() == len(y_true)
    np.testing.assert_array_equal(matrix, skm.confusion_matrix(y_true, y_pred, labels=classes))
    assert matrix[3].sum() == 0 and matrix[:, 3].sum() == 0


def test_metric_values_are_plain_json_types():
    y_true, y_pred, proba = binary_case()
    got = classification_metrics(y_true, y_pred, proba, [np.int64(0), np.int64(1)], average="macro")
    assert type(got["accuracy"]) is float
    assert all(type(label) is int for label in got["confusion_matrix"]["labels"])
    assert type(got["positive_label"]) is int


def test_regression_metrics_match_scikit_learn():
    rng = np.random.default_rng(2)
    y_true = pd.Series(rng.normal(100, 20, size=80))
    y_pred = y_true.to_numpy() + rng.normal(0, 5, size=80)
    got = regression_metrics(y_true, y_pred)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y_true, y_pred), rel=1e-10)
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y_true, y_pred)), rel=1e-10)
    assert got["r2"] == pytest.approx(skm.r2_score(y_true, y_pred), rel=1e-10)
    assert got["median_ae"] == pytest.approx(skm.median_absolute_error(y_true, y_pred), rel=1e-10)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_every_gateable_metric_is_computed(task):
    if task == "classification":
        y_true, y_pred, proba = binary_case()
        got = classification_metrics(y_true, y_pred, proba, [0, 1], average="macro")
    else:
        got = regression_metrics(pd.Series([1.0, 2.0, 3.0]), np.array([1.1, 1.9, 3.2]))
    for metric in METRICS[task]:
        assert isinstance(got[metric], float), metric


def test_metric_directions_are_max_or_min():
    assert METRICS["classification"]["log_loss"] == "min"
    assert METRICS["regression"]["r2"] == "max"
    assert {d for task in METRICS.values() for d in task.values()} == {"max", "min"}


# --- plots -----------------------------------------------------------------------------------


def classification_plots(
    seed: int, with_proba: bool = True, multiclass: bool = False
) -> dict[str, bytes]:
    y_true, y_pred, proba = multiclass_case(seed) if multiclass else binary_case(seed)
    classes = [0, 1, 2] if multiclass else [0, 1]
    m = classification_metrics(y_true, y_pred, proba, classes, average="macro")
    return plots("classification", y_true, y_pred, proba if with_proba else None, classes, m)


def test_binary_classification_plots_are_png_confusion_matrix_and_roc_curve():
    out = classification_plots(0)
    assert sorted(out) == ["confusion_matrix.png", "roc_curve.png"]
    assert all(png.startswith(PNG) for png in out.values())


def test_multiclass_plots_are_png_confusion_matrix_and_roc_curve():
    out = classification_plots(0, multiclass=True)
    assert sorted(out) == ["confusion_matrix.png", "roc_curve.png"]
    assert all(png.startswith(PNG) for png in out.values())


def test_without_probabilities_only_the_confusion_matrix_is_plotted():
    assert sorted(classification_plots(0, with_proba=False)) == ["confusion_matrix.png"]


def test_regression_plot_is_a_png_of_predicted_vs_actual():
    y_true = pd.Series([10.0, 20.0, 30.0, 40.0])
    y_pred = np.array([12.0, 18.0, 33.0, 39.0])
    out = plots("regression", y_true, y_pred, None, None, regression_metrics(y_true, y_pred))
    assert list(out) == ["predicted_vs_actual.png"]
    assert out["predicted_vs_actual.png"].startswith(PNG)


def test_plots_are_byte_identical_for_identical_inputs_and_differ_for_other_inputs():
    first, second = classification_plots(0), classification_plots(0)
    assert first == second
    other = classification_plots(5)
    assert other["roc_curve.png"] != first["roc_curve.png"]
