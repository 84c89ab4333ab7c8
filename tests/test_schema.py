"""mlcd.schema: a model gets exactly its training columns, in order and of the training types;
anything else is refused with a message naming every offending column (and row)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcd.errors import DataError, StorageError
from mlcd.schema import InputSchema, SchemaError, example_rows, kind_of

SCHEMA = InputSchema(
    features=("age", "income", "plan", "active"),
    dtypes={"age": "int64", "income": "float64", "plan": "object", "active": "bool"},
    target="churned",
    task="classification",
)


def good_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "active": [True, False],
            "plan": ["basic", "pro"],
            "income": [1200, 3400],  # integers for a float column: converted
            "age": [31.0, 45.0],  # whole floats for an integer column: converted
        }
    )


def test_conform_orders_the_columns_as_in_training_and_converts_representations():
    x = SCHEMA.conform(good_frame())
    assert list(x.columns) == ["age", "income", "plan", "active"]
    assert str(x["age"].dtype) == "int64" and x["age"].tolist() == [31, 45]
    assert str(x["income"].dtype) == "float64" and x["income"].tolist() == [1200.0, 3400.0]
    assert x["plan"].tolist() == ["basic", "pro"]


def test_missing_and_extra_columns_are_all_named_in_one_error():
    frame = good_frame().drop(columns=["income", "plan"]).assign(customer_id=[1, 2], zip=[1, 2])
    with pytest.raises(SchemaError) as err:
        SCHEMA.conform(frame)
    message = str(err.value)
    assert "missing column(s) 'income', 'plan'" in message
    assert "extra column(s) 'customer_id', 'zip'" in message
    assert "The model takes 4 column(s): 'age', 'income', 'plan', 'active'" in message
    assert isinstance(err.value, DataError) and err.value.exit_code == 4


def test_kept_columns_are_allowed_and_not_given_to_the_model():
    frame = good_frame().assign(customer_id=[7, 8])
    x = SCHEMA.conform(frame, keep=["customer_id"])
    assert "customer_id" not in x.columns
    with pytest.raises(SchemaError, match="column\\(s\\) to keep not in the input: 'nope'"):
        SCHEMA.conform(good_frame(), keep=["nope"])


@pytest.mark.parametrize(
    ("column", "values", "expected"),
    [
        (
            "income",
            [1200.0, "a lot"],
            "column 'income' expects numbers (float64) but row 1 has 'a lot'",
        ),
        ("income", [True, False], "column 'income' expects numbers (float64) but row 0 has True"),
        ("age", [31.0, 45.5], "column 'age' expects integers (int64) but row 1 has 45.5"),
        ("age", [31.0, np.nan], "column 'age' (int64) has a missing value at row 1"),
        ("plan", ["basic", 3], "column 'plan' expects text (object) but row 1 has 3 (a number)"),
        ("active", ["yes", True], "column 'active' expects true/false (bool) but row 0 has 'yes'"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_column_row_and_value(column, values, expected):
    frame = good_frame()
    frame[column] = pd.Series(values, dtype=object)
    with pytest.raises(SchemaError) as err:
        SCHEMA.conform(frame)
    assert expected in str(err.value)


def test_every_badly_typed_column_is_reported_not_only_the_first():
    frame = good_frame()
    frame["income"] = pd.Series(["x", 1.0], dtype=object)
    frame["plan"] = pd.Series([1, 2])
    with pytest.raises(SchemaError) as err:
        SCHEMA.conform(frame)
    assert len(err.value.problems) == 2


def test_numbers_as_text_pass_only_when_the_input_is_text_based():
    frame = good_frame()
    frame["income"] = pd.Series(["1200.5", None], dtype=object)
    x = SCHEMA.conform(frame, text_numbers=True)
    assert x["income"].iloc[0] == 1200.5 and np.isnan(x["income"].iloc[1])
    with pytest.raises(SchemaError, match="row 0 has '1200.5'"):
        SCHEMA.conform(frame)


def test_missing_values_pass_in_float_columns():
    frame = good_frame()
    frame["income"] = [np.nan, 10.0]
    assert np.isnan(SCHEMA.conform(frame)["income"].iloc[0])


def test_records_with_a_missing_or_extra_key_name_the_row():
    rows = [
        {"age": 1, "income": 2.0, "plan": "a", "active": True},
        {"age": 1, "income": 2.0, "plan": "a", "activ": True},
    ]
    with pytest.raises(SchemaError) as err:
        SCHEMA.frame_from_records(rows)
    assert "row 1: missing column(s) 'active'" in str(err.value)
    assert "row 1: extra column(s) 'activ'" in str(err.value)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [({"age": 1}, "'rows' must be a list"), ([["a", 1]], "row 0 is not an object")],
)
def test_records_that_are_not_a_list_of_objects_are_refused(rows, expected):
    with pytest.raises(SchemaError, match=expected):
        SCHEMA.frame_from_records(rows)


def test_records_build_the_same_input_as_a_frame():
    rows = [
        {"age": 31, "income": 1200, "plan": "basic", "active": True},
        {"age": 45, "income": 3400.5, "plan": "pro", "active": False},
    ]
    x = SCHEMA.frame_from_records(rows)
    assert x.to_dict(orient="list") == {
        "age": [31, 45],
        "income": [1200.0, 3400.5],
        "plan": ["basic", "pro"],
        "active": [True, False],
    }


def test_a_malformed_schema_file_is_a_storage_error():
    with pytest.raises(StorageError, match="not a valid input schema"):
        InputSchema.from_json({"features": "age"}, "schema.json")
    schema = InputSchema.from_json({"features": ["a"], "dtypes": {"a": "float64"}}, "s.json")
    assert schema.features == ("a",) and schema.kind("a") == "float"


def test_example_rows_are_json_ready_with_missing_values_as_null():
    frame = pd.DataFrame({"a": [1.5, np.nan], "b": [np.int64(3), np.int64(4)], "t": [0, 1]})
    rows = example_rows(frame, ["a", "b"])
    assert rows == [{"a": 1.5, "b": 3}, {"a": None, "b": 4}]
    assert all(type(r["b"]) is int for r in rows)


@pytest.mark.parametrize(
    ("dtype", "kind"),
    [
        ("float32", "float"),
        ("Int64", "integer"),
        ("uint8", "integer"),
        ("boolean", "bool"),
        ("string", "string"),
        ("category", "category"),
        ("datetime64[ns]", "datetime"),
        ("complex128", "any"),
    ],
)
def test_kind_of_dtype_names(dtype, kind):
    assert kind_of(dtype) == kind


def test_contract_changes_name_new_categories_null_rates_ranges_roles_and_features():
    from mlcd.schema import contract_changes

    before = {
        "plan": {"role": "categorical", "dtype": "object", "null_rate": 0.0, "categories": ["a"]},
        "age": {"role": "numeric", "dtype": "float64", "null_rate": 0.05, "min": 0, "max": 100},
        "city": {"role": "categorical", "dtype": "object", "null_rate": 0.0, "categories": []},
        "gone": {"role": "numeric", "dtype": "float64", "null_rate": 0.0},
    }
    after = {
        "plan": {
            "role": "categorical",
            "dtype": "object",
            "null_rate": 0.0,
            "categories": ["a", "b"],
        },
        "age": {"role": "numeric", "dtype": "float64", "null_rate": 0.30, "min": 0, "max": 150},
        "city": {"role": "id", "dtype": "object", "null_rate": 0.0},
        "new": {"role": "numeric", "dtype": "float64", "null_rate": 0.0},
    }
    assert contract_changes(before, after) == [
        "features gone: 'gone'",
        "new features: 'new'",
        "plan: 1 new category ('b')",
        "age: null rate 5% -> 30%",
        "age: range 0..100 -> 0..150",
        "city: role categorical -> id",
    ]
    nudged = {**before, "age": {**before["age"], "max": 105}}
    assert contract_changes(before, nudged) == []
