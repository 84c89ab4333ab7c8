"""deepchecks' three default suites on fixed data, on whichever stack runs this: the verdict of
every check, to compare one stack with another (tests/test_deepchecks_stack.py).

Three tasks (binary, multiclass with text labels, regression) on generated tables with text
categoricals and NaNs. deepchecks is given precomputed predictions, probabilities and feature
importance, made once on the old stack (numpy 1.26, pandas 2.3, scikit-learn 1.5.2) and kept in
tests/data/, so that every stack judges the same predictions: scikit-learn 1.9 fits some models
differently, which is not deepchecks' doing.

Recording the reference again needs the old stack (Python 3.11, the pins of mlcd 0.x before
docs/decisions.md's "deepchecks on the current stack"):

    python tests/deepchecks_stack.py --record   # writes tests/data/deepchecks_old_stack.*
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"
REFERENCE = DATA / "deepchecks_old_stack.json"
PREDICTIONS = DATA / "deepchecks_old_stack_predictions.npz"
TASKS = ("binary", "multiclass", "regression")
SUITES = ("data_integrity", "train_test_validation", "model_evaluation")
CATEGORICAL = ["color", "size"]


def make_data(task: str, n: int = 3000) -> tuple[Any, Any]:
    import numpy as np
    import pandas as pd

    rng = np.random.RandomState({"binary": 1, "multiclass": 2, "regression": 3}[task])
    x = rng.normal(size=(n, 6))
    x[:, 5] = 0.6 * x[:, 0] + 0.8 * rng.normal(size=n)  # a moderate correlation (r ~ 0.6)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(6)])
    colors = np.array(["red", "green", "blue", "yellow"], dtype=object)
    frame["color"] = pd.Series(colors[rng.randint(0, 4, size=n)], dtype=object)
    sizes = np.array(["S", "M", "L"], dtype=object)
    frame["size"] = pd.Series(sizes[rng.randint(0, 3, size=n)], dtype=object)
    effect = frame["color"].map({"red": 1.0, "green": -0.5, "blue": 0.0, "yellow": 0.5})
    score = 1.5 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2] * x[:, 3] + effect.to_numpy()
    score = score + 0.5 * rng.normal(size=n)
    if task == "binary":
        y = pd.Series(np.where(score > 0.2, 1, 0), name="target")
    elif task == "multiclass":
        labels = np.array(["alpha", "beta", "gamma"], dtype=object)
        y = pd.Series(labels[np.digitize(score, [-0.7, 0.9])], name="target", dtype=object)
    else:
        y = pd.Series(score * 10 + 50, name="target")
    for column, fraction in (("x2", 0.05), ("x4", 0.02)):
        frame.loc[rng.rand(n) < fraction, column] = np.nan
    frame.loc[rng.rand(n) < 0.03, "color"] = np.nan
    frame["target"] = y
    cut = n * 2 // 3
    train, test = frame.iloc[:cut].copy(), frame.iloc[cut:].copy()
    test["x1"] = test["x1"] + 0.3  # a little drift
    return train, test


def _model(task: str) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder, StandardScaler

    encode = OrdinalEncoder(
        handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2
    )
    rest: Any = "passthrough"
    if task == "binary":
        model: Any = HistGradientBoostingClassifier(max_iter=60, random_state=0)
    elif task == "multiclass":
        rest = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
        model = LogisticRegression(max_iter=500, random_state=0)
    else:
        model = RandomForestRegressor(n_estimators=40, max_depth=8, random_state=0, n_jobs=1)
    columns = ColumnTransformer([("cat", encode, CATEGORICAL)], remainder=rest)
    return Pipeline([("columns", columns), ("model", model)])


def _predictions(task: str, train: Any, test: Any) -> dict[str, Any]:
    """What the reference stack's model predicted (only ``--record`` fits one)."""
    import numpy as np
    import pandas as pd
    from sklearn.inspection import permutation_importance

    features = [c for c in train.columns if c != "target"]
    model = _model(task).fit(train[features], train["target"])
    out = {}
    for part, rows in (("train", train), ("test", test)):
        predicted = np.asarray(model.predict(rows[features]))
        text = predicted.dtype == object
        out[f"{task}/pred_{part}"] = predicted.astype(str) if text else predicted
        if task != "regression":
            out[f"{task}/proba_{part}"] = model.predict_proba(rows[features])
    rows = test.sample(1000, random_state=0)
    found = permutation_importance(
        model, rows[features], rows["target"], n_repeats=5, random_state=0
    )
    importance = pd.Series(np.clip(found.importances_mean, 0, None), index=features)
    out[f"{task}/importance"] = (importance / importance.sum()).to_numpy()
    return out


def verdicts(predictions: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Each (task, suite): every check's status, and the category of each of its conditions."""
    import mlcd.gates.compat  # noqa: F401, I001  (first: mends deepchecks for the current stack)
    import deepchecks
    import logging

    import pandas as pd
    from deepchecks.core.check_result import CheckFailure
    from deepchecks.tabular import Dataset, suites
    from threadpoolctl import threadpool_limits

    deepchecks.set_verbosity(logging.WARNING)
    out: dict[str, list[dict[str, Any]]] = {}
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for task in TASKS:
            train, test = make_data(task)
            features = [c for c in train.columns if c != "target"]
            given: dict[str, Any] = {
                "y_pred_train": predictions[f"{task}/pred_train"],
                "y_pred_test": predictions[f"{task}/pred_test"],
                "feature_importance": pd.Series(predictions[f"{task}/importance"], index=features),
            }
            if task != "regression":
                given["y_proba_train"] = predictions[f"{task}/proba_train"]
                given["y_proba_test"] = predictions[f"{task}/proba_test"]
            for name in SUITES:
                kw = {"label": "target", "cat_features": CATEGORICAL, "label_type": task}
                result = getattr(suites, name)(random_state=0).run(
                    train_dataset=Dataset(train, **kw),
                    test_dataset=Dataset(test, **kw),
                    with_display=False,
                    **given,
                )
                checks = []
                for res in result.results:
                    entry: dict[str, Any] = {"check": type(res.check).__name__}
                    if isinstance(res, CheckFailure):
                        entry["status"] = "error"
                        entry["error"] = f"{type(res.exception).__name__}: {res.exception}"[:300]
                    else:
                        entry["status"] = "ran"
                        entry["conditions"] = [
                            [c.name, c.category.name] for c in res.conditions_results
                        ]
                    checks.append(entry)
                out[f"{task}/{name}"] = checks
    return out


def load_predictions() -> dict[str, Any]:
    import numpy as np

    with np.load(PREDICTIONS, allow_pickle=False) as found:
        return dict(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--record", action="store_true", help="record the reference (old stack)")
    args = parser.parse_args()
    if not args.record:
        json.dump(verdicts(load_predictions()), sys.stdout, indent=1)
        return
    import numpy as np
    import pandas as pd
    import sklearn

    predictions: dict[str, Any] = {}
    for task in TASKS:
        predictions.update(_predictions(task, *make_data(task)))
    np.savez(PREDICTIONS, **predictions)
    stack = {"numpy": np.__version__, "pandas": pd.__version__, "scikit-learn": sklearn.__version__}
    reference = {"stack": stack, "verdicts": verdicts(load_predictions())}
    REFERENCE.write_text(json.dumps(reference, indent=1) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
