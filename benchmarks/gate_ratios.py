"""The two ratio-judged gates on real-looking tables, clean and broken: what ratio each table
shows, against mlcd's defaults (ConflictingLabels 5% of rows, TrainTestSamplesMix 10% of test
rows: mlcd/catalogue.py DEFAULT_MAX_RATIO, docs/gates.md).

    .venv/bin/python benchmarks/gate_ratios.py

The tables are the generated ones of the tests (tests/tables.py). Clean: the table as it is,
split by mlcd's split. Broken labels: 10% of the rows duplicated with their label changed (an
export that joined two label sources). Broken split: 30% of the test rows replaced by copies of
training rows (a test set cut from overlapping exports). The ratios come from deepchecks' own
checks, given the column roles as mlcd gives them. Prints a table, writes
benchmarks/results/gate_ratios.json. Nothing is asserted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import mlcd.gates.compat  # noqa: E402, F401, I001  (first: mends deepchecks for the current stack)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from deepchecks.tabular.checks import ConflictingLabels, TrainTestSamplesMix  # noqa: E402

from mlcd import columns, data  # noqa: E402
from mlcd.catalogue import DEFAULT_MAX_RATIO  # noqa: E402
from mlcd.config import parse_config  # noqa: E402
from mlcd.gates.suites import dataset  # noqa: E402
from tests import tables  # noqa: E402


def config(name: str) -> Any:
    _, task, target = tables.TABLES[name]
    return parse_config(
        {
            "name": name.replace("_", "-"),
            "task": task,
            "source": {"path": f"{name}.csv"},
            "target": target,
            "workspace": "ws",
            "publish": "registry",
        },
        f"{name}.yaml",
        HERE,
    )


def flip_labels(frame: pd.DataFrame, target: str, share: float, rng: Any) -> pd.DataFrame:
    rows = frame.sample(frac=share, random_state=0).copy()
    labels = frame[target].dropna().unique()
    if frame[target].dtype.kind == "f":  # regression: another value
        rows[target] = rows[target] * 1.5 + 1
    else:
        rows[target] = [labels[(list(labels).index(v) + 1) % len(labels)] for v in rows[target]]
    return pd.concat([frame, rows], ignore_index=True)


def mix(train: pd.DataFrame, test: pd.DataFrame, share: float) -> pd.DataFrame:
    n = int(len(test) * share)
    copies = train.sample(n, random_state=0)
    return pd.concat([test.iloc[n:], copies])


def ratios(name: str, frame: pd.DataFrame, broken_split: bool = False) -> dict[str, float]:
    cfg = config(name)
    frame = frame[frame[cfg.target].notna()].reset_index(drop=True)
    roles = columns.infer_roles(frame, cfg.target)
    label_type = "regression" if cfg.task == "regression" else None
    if label_type is None:
        label_type = "binary" if frame[cfg.target].nunique() <= 2 else "multiclass"
    conflicting = (  # a classification check: deepchecks does not run it for regression
        ConflictingLabels(n_samples=10**7)
        .run(dataset(frame, cfg, label_type, roles))
        .value["percent_of_conflicting_samples"]
        if cfg.task == "classification"
        else float("nan")
    )
    train, test = data.split(frame, cfg, roles)
    if broken_split:
        test = mix(train, test, 0.3)
    samples_mix = (
        TrainTestSamplesMix(n_samples=10**7)
        .run(dataset(train, cfg, label_type, roles), dataset(test, cfg, label_type, roles))
        .value["ratio"]
    )
    return {"ConflictingLabels": float(conflicting), "TrainTestSamplesMix": float(samples_mix)}


def main() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for name, (make, _, target) in tables.TABLES.items():
        clean = make()
        rows.append({"table": name, "variant": "clean", **ratios(name, clean)})
        broken = flip_labels(clean[clean[target].notna()], target, 0.10, rng)
        rows.append(
            {"table": name, "variant": "labels flipped on 10% copies", **ratios(name, broken)}
        )
        rows.append(
            {"table": name, "variant": "30% of test copied from train", **ratios(name, clean, True)}
        )
    limits = {
        "ConflictingLabels": DEFAULT_MAX_RATIO["data_integrity"]["ConflictingLabels"],
        "TrainTestSamplesMix": DEFAULT_MAX_RATIO["train_test"]["TrainTestSamplesMix"],
    }
    print(f"{'table':<14}{'variant':<32}{'ConflictingLabels':>19}{'TrainTestSamplesMix':>21}")
    for row in rows:
        marks = {
            k: "n/a"
            if row[k] != row[k]
            else f"{row[k]:.2%}{' BLOCKS' if row[k] > limits[k] else ''}"
            for k in limits
        }
        print(
            f"{row['table']:<14}{row['variant']:<32}{marks['ConflictingLabels']:>19}"
            f"{marks['TrainTestSamplesMix']:>21}"
        )
    print(f"defaults: {limits}")
    out = HERE / "results" / "gate_ratios.json"
    clean = [{k: (None if v != v else v) for k, v in r.items()} for r in rows]  # NaN: n/a
    out.write_text(json.dumps({"limits": limits, "rows": clean}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
