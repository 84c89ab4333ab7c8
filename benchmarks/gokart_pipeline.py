"""mlcd's pipeline with validation off, written as a gokart user would write it: extract a
snapshot, split, train HistGradientBoosting, evaluate (the metrics, the predictions and the two
plots of mlcd's EvaluateModel). benchmarks/peers.py runs it in its own virtualenv
(benchmarks/.venv-gokart, gokart 1.12.2) beside `mlcd run` and benchmarks/plain_pipeline.py.

    benchmarks/.venv-gokart/bin/python benchmarks/gokart_pipeline.py DATA.parquet WORKSPACE

Idiomatic gokart, not handicapped: upstream tasks are TaskInstanceParameters (gokart derives
requires() from them), each output is named by a hash of the task's parameters and of its inputs'
(gokart's own cache: a second run with the same parameters finds every output and runs nothing),
frames and the model go through gokart's default target (a dill pickle), the plots through its
.png target, all under ``workspace_directory``. This file imports neither mlcd nor anything
mlcd-specific: the metrics and plots are rewritten here to match mlcd/metrics.py.
"""

from __future__ import annotations

import io
import sys
from typing import Any

import gokart
import luigi
import numpy as np
import pandas as pd


class ExtractSnapshot(gokart.TaskOnKart[pd.DataFrame]):
    """A snapshot of the source table, kept in the workspace."""

    source: luigi.Parameter[str] = luigi.Parameter()

    def output(self) -> Any:
        return self.make_target("snapshot/snapshot.pkl")

    def run(self) -> None:
        self.dump(pd.read_parquet(self.source))


class SplitData(gokart.TaskOnKart[dict[str, pd.DataFrame]]):
    """Stratified random train/test split, as mlcd's SplitData does without a date column."""

    data = gokart.TaskInstanceParameter()
    target: luigi.Parameter[str] = luigi.Parameter(default="label")
    test_size: luigi.FloatParameter = luigi.FloatParameter(default=0.25)
    seed: luigi.IntParameter = luigi.IntParameter(default=42)

    def output(self) -> dict[str, Any]:
        return {
            "train": self.make_target("split/train.pkl"),
            "test": self.make_target("split/test.pkl"),
        }

    def run(self) -> None:
        from sklearn.model_selection import train_test_split

        frame = self.load("data")
        train, test = train_test_split(
            frame, test_size=self.test_size, random_state=self.seed, stratify=frame[self.target]
        )
        self.dump(train, "train")
        self.dump(test, "test")


class TrainModel(gokart.TaskOnKart[Any]):
    """HistGradientBoostingClassifier(max_iter=100, random_state=0): mlcd's benchmark config."""

    split = gokart.TaskInstanceParameter()
    target: luigi.Parameter[str] = luigi.Parameter(default="label")
    max_iter: luigi.IntParameter = luigi.IntParameter(default=100)
    random_state: luigi.IntParameter = luigi.IntParameter(default=0)

    def output(self) -> Any:
        return self.make_target("model/model.pkl")

    def run(self) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier

        train = self.load(self.input()["split"]["train"])
        model = HistGradientBoostingClassifier(
            max_iter=self.max_iter, random_state=self.random_state
        )
        model.fit(train.drop(columns=[self.target]), train[self.target])
        self.dump(model)


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


class EvaluateModel(gokart.TaskOnKart[dict[str, Any]]):
    """Test-set metrics, per-row predictions and the confusion-matrix and ROC plots."""

    model = gokart.TaskInstanceParameter()
    split = gokart.TaskInstanceParameter()
    target: luigi.Parameter[str] = luigi.Parameter(default="label")

    def output(self) -> dict[str, Any]:
        return {
            "metrics": self.make_target("evaluate/metrics.pkl"),
            "predictions": self.make_target("evaluate/predictions.pkl"),
            "confusion_matrix": self.make_target("evaluate/confusion_matrix.png"),
            "roc_curve": self.make_target("evaluate/roc_curve.png"),
        }

    def run(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from sklearn import metrics as skm

        model = self.load("model")
        test = self.load(self.input()["split"]["test"])
        x, y = test.drop(columns=[self.target]), test[self.target]
        pred, proba = model.predict(x), model.predict_proba(x)
        classes = list(model.classes_)
        pos = classes[-1]
        kw: dict[str, Any] = {"average": "binary", "pos_label": pos, "zero_division": 0}
        matrix = skm.confusion_matrix(y, pred, labels=classes)
        scores = {
            "task": "classification",
            "n_test": len(y),
            "accuracy": float(skm.accuracy_score(y, pred)),
            "balanced_accuracy": float(skm.balanced_accuracy_score(y, pred)),
            "precision": float(skm.precision_score(y, pred, **kw)),
            "recall": float(skm.recall_score(y, pred, **kw)),
            "f1": float(skm.f1_score(y, pred, **kw)),
            "roc_auc": float(skm.roc_auc_score(y == pos, proba[:, classes.index(pos)])),
            "log_loss": float(skm.log_loss(y, proba, labels=classes)),
            "confusion_matrix": {
                "labels": [c.item() for c in model.classes_],
                "matrix": matrix.tolist(),
            },
            "averaging": "binary",
            "positive_label": pos.item() if isinstance(pos, np.generic) else pos,
        }
        predictions = pd.DataFrame({"actual": y, "predicted": pred}, index=x.index)
        for i, label in enumerate(classes):
            predictions[f"proba_{label}"] = proba[:, i]

        fig, ax = plt.subplots(figsize=(5, 5))
        skm.ConfusionMatrixDisplay(matrix, display_labels=[str(c) for c in classes]).plot(
            ax=ax, colorbar=False
        )
        ax.set_title("Confusion matrix (test set)")
        fig.tight_layout()
        confusion_png = _png(fig)
        fig, ax = plt.subplots(figsize=(5, 5))
        skm.RocCurveDisplay.from_predictions(
            y == pos, proba[:, classes.index(pos)], ax=ax, name=f"class {pos}"
        )
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
        ax.set_title("ROC curve (test set)")
        fig.tight_layout()
        roc_png = _png(fig)

        self.dump(predictions, "predictions")
        self.dump(confusion_png, "confusion_matrix")
        self.dump(roc_png, "roc_curve")
        self.dump(scores, "metrics")


def pipeline(source: str) -> EvaluateModel:
    split = SplitData(data=ExtractSnapshot(source=source))
    return EvaluateModel(model=TrainModel(split=split), split=split)


def main(source: str, workspace: str) -> None:
    # gokart's workspace: every TaskOnKart writes under it (usually set in a luigi config file's
    # [TaskOnKart] section; set here so the benchmark needs no file).
    config = luigi.configuration.get_config()
    config.set("TaskOnKart", "workspace_directory", workspace)
    config.set("TaskOnKart", "local_temporary_directory", f"{workspace}/tmp")
    scores = gokart.build(pipeline(source))["metrics"]
    print(f"test set, {scores['n_test']} rows: accuracy {scores['accuracy']:.4f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
