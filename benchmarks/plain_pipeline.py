"""The work of the pipeline without mlcd: read, split, fit, evaluate, plot and save, in one
plain script. benchmarks/pipeline_cost.py times it against `mlcd run` to get mlcd's overhead.

    python benchmarks/plain_pipeline.py DATA.parquet OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import joblib
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn import metrics  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402


def main(data: str, out: str) -> None:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.read_parquet(data)
    frame.to_parquet(folder / "snapshot.parquet")
    train, test = train_test_split(frame, test_size=0.25, random_state=42, stratify=frame["label"])
    train.to_parquet(folder / "train.parquet")
    test.to_parquet(folder / "test.parquet")
    x, y = train.drop(columns=["label"]), train["label"]
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(x, y)
    joblib.dump(model, folder / "model.joblib")
    xt, yt = test.drop(columns=["label"]), test["label"]
    pred, proba = model.predict(xt), model.predict_proba(xt)
    scores = {
        "accuracy": metrics.accuracy_score(yt, pred),
        "precision": metrics.precision_score(yt, pred),
        "recall": metrics.recall_score(yt, pred),
        "f1": metrics.f1_score(yt, pred),
        "roc_auc": metrics.roc_auc_score(yt, proba[:, 1]),
        "log_loss": metrics.log_loss(yt, proba),
        "confusion_matrix": metrics.confusion_matrix(yt, pred).tolist(),
    }
    (folder / "metrics.json").write_text(json.dumps(scores, indent=2))
    pd.DataFrame({"actual": yt, "predicted": pred, "proba_1": proba[:, 1]}).to_parquet(
        folder / "predictions.parquet"
    )
    fig, ax = plt.subplots(figsize=(5, 5))
    metrics.ConfusionMatrixDisplay(metrics.confusion_matrix(yt, pred)).plot(ax=ax)
    fig.savefig(folder / "confusion_matrix.png")
    fig, ax = plt.subplots(figsize=(5, 5))
    metrics.RocCurveDisplay.from_predictions(yt, proba[:, 1], ax=ax)
    fig.savefig(folder / "roc_curve.png")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
