"""Column roles inferred from generated real-looking tables, overrides checked against the data,
and the preprocessing built from the roles: it takes raw rows (blanks, NaN, unseen categories,
one row at a time) and ships inside the model."""

from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression

from mlcd import columns
from mlcd.columns.calendar import CalendarFeatures
from mlcd.errors import DataError
from tests import tables


def roles_of(frame: pd.DataFrame, target: str, **overrides: str) -> dict[str, str]:
    return {c: r["role"] for c, r in columns.infer_roles(frame, target, overrides).items()}


@pytest.mark.parametrize(("name", "expected"), sorted(tables.ROLES.items()))
def test_roles_are_inferred_from_the_data_of_real_looking_tables(name, expected):
    make, _, target = tables.TABLES[name]
    assert roles_of(make(), target) == expected


def test_a_wide_table_keeps_its_numbers_and_categories_and_drops_its_constant():
    roles = roles_of(tables.wide(), "label")
    assert len(roles) == 69
    assert roles["source_system"] == "constant"
    assert [c for c, r in roles.items() if r == "categorical"] == ["c0", "c1", "c2", "c3"]
    assert sum(r == "numeric" for r in roles.values()) == 64


def test_roles_say_why_and_describe_lists_the_non_features_apart():
    roles = columns.infer_roles(tables.churn(), "churned")
    assert "unique" in roles["customer_id"]["why"]
    text = columns.describe(roles)
    assert "id (not features): customer_id" in text
    assert "categorical: plan, region" in text
    assert columns.features(roles) == [
        "signup_date",
        "plan",
        "tenure",
        "monthly_charges",
        "region",
    ]


def test_an_override_sets_the_role_and_says_so():
    frame = tables.churn()
    roles = columns.infer_roles(frame, "churned", {"tenure": "categorical", "region": "dropped"})
    assert roles["tenure"] == {"role": "categorical", "why": "set by columns.tenure"}
    assert "region" not in columns.features(roles)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"plan": "numeric"},
            "columns.plan is numeric, but the column holds text ('pro' in data row 0)",
        ),
        ({"region": "datetime"}, "columns.region is datetime, but 3000 value(s) are not dates"),
        ({"plann": "categorical"}, "columns: 'plann' not in the data; the feature columns are"),
        ({"churned": "numeric"}, "'churned' is the target, which has no role"),
    ],
)
def test_an_override_that_does_not_fit_the_data_names_the_column_and_the_key(overrides, expected):
    with pytest.raises(DataError, match=re.escape(expected)):
        columns.infer_roles(tables.churn(), "churned", overrides)


def test_a_table_without_a_feature_column_is_refused_with_the_roles_it_has():
    frame = pd.DataFrame({"id": [f"u{i}" for i in range(50)], "k": ["x"] * 50, "y": [0, 1] * 25})
    with pytest.raises(DataError, match="no column can be a feature: id is id"):
        columns.infer_roles(frame, "y")


def fitted(name: str, estimator) -> tuple:
    make, _, target = tables.TABLES[name]
    frame = make()
    frame = frame[frame[target].notna()]
    roles = columns.infer_roles(frame, target)
    model = columns.wrap(estimator, roles).fit(frame[columns.features(roles)], frame[target])
    return model, frame[columns.features(roles)], frame[target]


@pytest.mark.parametrize(
    "estimator",
    [HistGradientBoostingClassifier(random_state=0), LogisticRegression(max_iter=500)],
    ids=["native-categories", "one-hot-and-scaling"],
)
def test_the_pipeline_learns_from_raw_rows_and_scores_one_row_at_a_time(estimator):
    model, x, y = fitted("churn", estimator)
    assert (model.predict(x) == y).mean() > 0.8
    for i in range(20):  # one row: a column may be NaN only (deepchecks scores one row first)
        assert model.predict(x.iloc[[i]])[0] in ("yes", "no")


def test_unseen_and_blank_categories_and_nan_numbers_are_scored_not_refused():
    model, x, _ = fitted("churn", HistGradientBoostingClassifier(random_state=0))
    rows = x.head(3).copy()
    rows["plan"] = ["enterprise", "", None]
    rows["tenure"] = [np.nan, 3.0, np.nan]
    rows["signup_date"] = ["2031-05-01", "not a date", None]
    assert len(model.predict_proba(rows)) == 3


def test_linear_models_get_imputed_scaled_numbers_and_one_hot_categories():
    model, x, _ = fitted("churn", LogisticRegression(max_iter=500))
    prepare = model.named_steps["prepare"]
    names = list(prepare.get_feature_names_out())
    assert "plan_basic" in names and "signup_date_month" in names
    assert "customer_id" not in " ".join(names)
    assert not prepare.transform(x.head(50)).isna().any().any()


def test_native_categories_are_told_to_gradient_boosting_and_regression_works_too():
    model, x, y = fitted("house_prices", HistGradientBoostingRegressor(random_state=0))
    assert model.named_steps["model"].categorical_features == ["district"]
    assert 1 - ((model.predict(x) - y) ** 2).sum() / ((y - y.mean()) ** 2).sum() > 0.9


def test_a_users_pipeline_is_used_as_given():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    own = make_pipeline(StandardScaler(), LogisticRegression())
    assert columns.wrap(own, {"a": {"role": "numeric", "why": ""}}) is own


def test_calendar_features_read_text_dates_times_and_zones():
    dates = pd.DataFrame({"at": ["2024-03-01 08:00", "2024-12-31 23:00", None]})
    out = CalendarFeatures().fit(dates).transform(dates)
    assert list(out.columns) == [
        "at_year",
        "at_month",
        "at_day",
        "at_weekday",
        "at_dayofyear",
        "at_days",
        "at_hour",
    ]
    assert out.iloc[1][["at_year", "at_month", "at_hour"]].tolist() == [2024, 12, 23]
    assert out.iloc[2].isna().all()
    zoned = pd.DataFrame({"at": pd.to_datetime(["2024-03-01 08:00"]).tz_localize("Europe/Paris")})
    assert CalendarFeatures().fit(zoned).transform(zoned)["at_hour"].iloc[0] == 7


OWN_PIPELINE = {
    "estimator": "sklearn.pipeline.Pipeline",
    "params": {
        "steps": [
            [
                "prepare",
                {
                    "estimator": "sklearn.compose.ColumnTransformer",
                    "params": {
                        "transformers": [
                            [
                                "codes",
                                {
                                    "estimator": "sklearn.preprocessing.OneHotEncoder",
                                    "params": {"handle_unknown": "ignore"},
                                },
                                {
                                    "estimator": "sklearn.compose.make_column_selector",
                                    "params": {"dtype_include": "object"},
                                },
                            ],
                            ["numbers", "passthrough", ["tenure"]],
                        ]
                    },
                },
            ],
            ["classify", {"estimator": "sklearn.ensemble.HistGradientBoostingClassifier"}],
        ]
    },
}


def test_a_users_column_transformer_with_a_column_selector_is_built_checked_and_fitted():
    from mlcd import training
    from mlcd.config import ModelConfig

    frame = tables.churn().fillna({"plan": "", "churned": "no"}).astype({"plan": object})
    frame["region"] = frame["region"].astype(object)
    roles = columns.infer_roles(frame, "churned", {"signup_date": "dropped"})
    spec = ModelConfig.model_validate(OWN_PIPELINE)
    training.check_fits(spec, roles, frame, "churned")  # passes: every named column is there
    model = training.fit(spec, frame[columns.features(roles)], frame["churned"], roles)
    assert model.named_steps["prepare"].transformers_[0][2] == ["plan", "region"]

    spec_data = copy.deepcopy(OWN_PIPELINE)
    spec_data["params"]["steps"][0][1]["params"]["transformers"][1][2] = ["tenure", "customer_id"]
    wrong = ModelConfig.model_validate(spec_data)
    with pytest.raises(DataError, match="step 'numbers' names column\\(s\\) 'customer_id' that"):
        training.check_fits(wrong, roles, frame, "churned")
