"""Tables like the ones data teams bring, generated with a fixed seed: text categoricals with
blanks, ids, dates, NaNs, text labels, rare classes, many columns. Each has signal, so a model
learns something, and each is written as CSV by ``write``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def churn(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """A churn export: an id, a signup date, text plans with blanks, NaN charges, yes/no label
    with some missing."""
    rng = _rng(seed)
    plan = rng.choice(["basic", "pro", "team", ""], n, p=[0.45, 0.3, 0.2, 0.05])
    tenure = rng.integers(0, 72, n)
    charges = np.round(rng.normal(60, 20, n), 2)
    charges[rng.random(n) < 0.08] = np.nan
    risk = (plan == "basic") * 1.2 - tenure / 40 + rng.normal(0, 0.6, n)
    churned = np.where(risk > 0.2, "yes", "no").astype(object)
    churned[rng.random(n) < 0.02] = None
    return pd.DataFrame(
        {
            "customer_id": [f"CUST-{i:06d}" for i in rng.permutation(n)],
            "signup_date": (
                pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 700, n), "D")
            ).strftime("%Y-%m-%d"),
            "plan": plan,
            "tenure": tenure,
            "monthly_charges": charges,
            "region": rng.choice(["north", "south", "east", "west"], n),
            "churned": churned,
        }
    )


def passengers(n: int = 1500, seed: int = 1) -> pd.DataFrame:
    """A passenger list: names (free text), cabin classes, ages with NaN, a text multiclass
    target (the port of embarkation is predictable from class and fare)."""
    rng = _rng(seed)
    cabin = rng.choice(["first", "second", "third"], n, p=[0.2, 0.3, 0.5])
    fare = np.where(cabin == "first", 80, np.where(cabin == "second", 30, 10)) * rng.uniform(
        0.7, 1.3, n
    )
    age = rng.normal(35, 14, n).round()
    age[rng.random(n) < 0.2] = np.nan
    port = np.where(
        fare > 50, "Cherbourg", np.where(rng.random(n) < 0.7, "Southampton", "Queenstown")
    )
    first = rng.choice(["John", "Mary", "Ann", "William", "Elizabeth", "James", "Thomas"], n)
    last = rng.choice(["Smith", "Brown", "Taylor", "Wilson", "Evans", "Walker", "Wright"], n)
    return pd.DataFrame(
        {
            "passenger_id": np.arange(1, n + 1),
            "name": [
                f"{a} {b}, travelling with family number {i}"
                for i, (a, b) in enumerate(zip(first, last, strict=True))
            ],
            "cabin_class": cabin,
            "age": age,
            "fare": fare.round(2),
            "port": port,
        }
    )


def rare_fraud(n: int = 5000, seed: int = 2) -> pd.DataFrame:
    """Imbalanced: 2% positives, integer label."""
    rng = _rng(seed)
    amount = rng.lognormal(3, 1, n)
    hour = rng.integers(0, 24, n)
    merchant = rng.choice([f"m{i}" for i in range(30)], n)
    score = (amount > 80) * 1.5 + (hour < 5) * 1.5 + rng.normal(0, 0.5, n)
    fraud = (score > np.quantile(score, 0.98)).astype(int)
    return pd.DataFrame(
        {"amount": amount.round(2), "hour": hour, "merchant": merchant, "fraud": fraud}
    )


def wide(n: int = 1200, columns: int = 64, seed: int = 3) -> pd.DataFrame:
    """A 70-column table: mostly numeric, some categoricals, a constant, a binary label."""
    rng = _rng(seed)
    data = {f"x{i:02d}": rng.normal(0, 1, n) for i in range(columns)}
    for i in range(4):
        data[f"c{i}"] = rng.choice(["a", "b", "c", None], n)
    data["source_system"] = "crm"
    y = (
        data["x00"]
        + data["x01"]
        - data["x02"]
        + (np.asarray(data["c0"]) == "a")
        + rng.normal(0, 0.5, n)
    )
    data["label"] = np.where(y > 0, "good", "bad")
    return pd.DataFrame(data)


def house_prices(n: int = 2000, seed: int = 4) -> pd.DataFrame:
    """Regression with a categorical feature and an integer column with NaN."""
    rng = _rng(seed)
    area = rng.uniform(30, 200, n)
    rooms = pd.array(rng.integers(1, 7, n), dtype="Int64")
    rooms[rng.random(n) < 0.05] = pd.NA
    district = rng.choice(["centre", "suburb", "rural"], n)
    base = {"centre": 5000, "suburb": 3000, "rural": 1500}
    price = area * np.vectorize(base.get)(district) + rng.normal(0, 20000, n)
    return pd.DataFrame(
        {"area": area.round(1), "rooms": rooms, "district": district, "price": price.round(0)}
    )


def survey(n: int = 1200, seed: int = 5) -> pd.DataFrame:
    """Survey answers: yes/no text, booleans with blanks, a free-text comment, an answered-at
    timestamp, a 3-class satisfaction label."""
    rng = _rng(seed)
    recommend = rng.choice(["Yes", "No"], n)
    visits = rng.integers(0, 20, n)
    wait = rng.uniform(0, 60, n).round(1)
    score = (recommend == "Yes") * 1.0 + visits / 10 - wait / 30 + rng.normal(0, 0.4, n)
    label = np.where(score > 1.0, "happy", np.where(score > 0.0, "neutral", "unhappy"))
    member = rng.choice(["true", "false", ""], n, p=[0.45, 0.45, 0.1])
    return pd.DataFrame(
        {
            "respondent": [f"r{i}" for i in range(n)],
            "answered_at": (
                pd.Timestamp("2024-03-01 08:00") + pd.to_timedelta(rng.integers(0, 90 * 24, n), "h")
            ).strftime("%Y-%m-%d %H:%M"),
            "would_recommend": recommend,
            "member": member,
            "visits": visits,
            "wait_minutes": wait,
            "comment": [
                f"the visit number {i} was {'great' if s > 1 else 'fine'} and I would say more"
                for i, s in enumerate(score)
            ],
            "satisfaction": label,
        }
    )


# The role of each column but the target, as mlcd infers it (tests/test_columns.py checks the
# inference, tests/test_real_tables.py what a run reports); the wide table's are counted there.
ROLES = {
    "churn": {
        "customer_id": "id",
        "signup_date": "datetime",
        "plan": "categorical",
        "tenure": "numeric",
        "monthly_charges": "numeric",
        "region": "categorical",
    },
    "passengers": {
        "passenger_id": "id",
        "name": "text",
        "cabin_class": "categorical",
        "age": "numeric",
        "fare": "numeric",
    },
    "rare_fraud": {"amount": "numeric", "hour": "numeric", "merchant": "categorical"},
    "house_prices": {"area": "numeric", "rooms": "numeric", "district": "categorical"},
    "survey": {
        "respondent": "id",
        "answered_at": "datetime",
        "would_recommend": "boolean",
        "member": "boolean",
        "visits": "numeric",
        "wait_minutes": "numeric",
        "comment": "text",
    },
}

TABLES = {
    "churn": (churn, "classification", "churned"),
    "passengers": (passengers, "classification", "port"),
    "rare_fraud": (rare_fraud, "classification", "fraud"),
    "wide": (wide, "classification", "label"),
    "house_prices": (house_prices, "regression", "price"),
    "survey": (survey, "classification", "satisfaction"),
}


def write(folder: Path, name: str) -> tuple[Path, Path]:
    """The table ``name`` as CSV and its minimal config (six keys); their paths."""
    make, task, target = TABLES[name]
    csv = folder / f"{name}.csv"
    make().to_csv(csv, index=False)
    config = folder / f"{name}.yaml"
    config.write_text(
        f"name: {name.replace('_', '-')}\n"
        f"task: {task}\n"
        f"source: {{path: {csv.name}}}\n"
        f"target: {target}\n"
        "workspace: ws\n"
        "publish: registry\n"
    )
    return csv, config
