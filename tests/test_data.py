"""mlcd.data: source fingerprints, reading CSV/Parquet, refusing untrainable data, and a
deterministic stratified split."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlcd import data
from mlcd.config import PipelineConfig, SourceConfig, parse_config
from mlcd.errors import ConfigError, DataError, StorageError


def make_cfg(tmp_path: Path, task: str = "classification", **changes: Any) -> PipelineConfig:
    estimator = (
        "sklearn.linear_model.LogisticRegression"
        if task == "classification"
        else ("sklearn.linear_model.Ridge")
    )
    raw: dict[str, Any] = {
        "name": "t",
        "task": task,
        "source": {"dataset": "iris"},
        "target": "target",
        "model": {"estimator": estimator},
        "workspace": "ws",
        "publish": "reg",
    }
    raw.update(changes)
    return parse_config(raw, "test.yaml", tmp_path)


def frame(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.integers(0, 100, size=n),
            "name": [f"row-{i}" for i in range(n)],
            "target": np.arange(n) % 2,
        }
    )


# --- fingerprints ----------------------------------------------------------------------------


def test_fingerprint_of_the_same_content_is_the_same_wherever_it_lives(tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("x,target\n1,0\n2,1\n")
    second.write_text("x,target\n1,0\n2,1\n")
    fp = data.source_fingerprint(SourceConfig(path=str(first)))
    assert fp == data.source_fingerprint(SourceConfig(path=str(first)))
    assert fp == data.source_fingerprint(SourceConfig(path=str(second)))
    assert fp["kind"] == "csv" and fp["size"] == first.stat().st_size


def test_fingerprint_changes_when_the_content_changes(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("x,target\n1,0\n2,1\n")
    before = data.source_fingerprint(SourceConfig(path=str(path)))
    path.write_text("x,target\n1,0\n2,1\n3,0\n")
    after = data.source_fingerprint(SourceConfig(path=str(path)))
    assert before["sha256"] != after["sha256"]


def test_fingerprint_follows_content_even_when_size_and_mtime_are_unchanged(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("x,target\n1,0\n2,1\n")
    stat = path.stat()
    before = data.source_fingerprint(SourceConfig(path=str(path)))
    path.write_text("x,target\n1,0\n9,1\n")  # same size, different content
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = data.source_fingerprint(SourceConfig(path=str(path)))
    assert before["sha256"] != after["sha256"]


def test_fingerprint_of_a_bundled_dataset_names_it_without_reading_a_file():
    fp = data.source_fingerprint(SourceConfig(dataset="wine"))
    assert fp["kind"] == "sklearn" and fp["dataset"] == "wine"
    assert fp != data.source_fingerprint(SourceConfig(dataset="iris"))


def test_fingerprint_of_a_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="source.path"):
        data.source_fingerprint(SourceConfig(path=str(tmp_path / "gone.csv")))


# --- reading sources -------------------------------------------------------------------------


def test_csv_source_loads_and_lists_its_columns(tmp_path):
    original = frame()
    path = tmp_path / "rows.csv"
    original.to_csv(path, index=False)
    source = SourceConfig(path=str(path))
    assert data.source_columns(source) == ["x1", "x2", "name", "target"]
    pd.testing.assert_frame_equal(data.load_source(source), original)


def test_parquet_source_loads_and_lists_its_columns(tmp_path):
    original = frame()
    path = tmp_path / "rows.parquet"
    original.to_parquet(path, index=False)
    source = SourceConfig(path=str(path))
    assert data.source_columns(source) == ["x1", "x2", "name", "target"]
    pd.testing.assert_frame_equal(data.load_source(source), original)


def test_bundled_source_has_string_columns_and_a_target():
    source = SourceConfig(dataset="breast_cancer")
    loaded = data.load_source(source)
    assert loaded.shape == (569, 31)
    assert data.source_columns(source) == list(loaded.columns)
    assert all(isinstance(c, str) for c in loaded.columns) and "target" in loaded.columns


def test_missing_source_file_is_a_data_error(tmp_path):
    source = SourceConfig(path=str(tmp_path / "gone.parquet"))
    with pytest.raises(DataError, match="gone.parquet"):
        data.load_source(source)
    with pytest.raises(DataError, match="gone.parquet"):
        data.source_columns(source)


def test_non_utf8_csv_is_a_data_error_that_asks_for_utf8(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("name,target\nJos\xe9,1\nAna,0\n".encode("latin-1"))
    with pytest.raises(DataError, match="UTF-8"):
        data.load_source(SourceConfig(path=str(path)))
    with pytest.raises(DataError, match="(?i)utf-8"):
        data.source_columns(SourceConfig(path=str(path)))


def test_parquet_source_that_is_not_parquet_is_a_data_error(tmp_path):
    path = tmp_path / "rows.parquet"
    path.write_text("x,target\n1,0\n")
    with pytest.raises(DataError, match="parquet"):
        data.load_source(SourceConfig(path=str(path)))


# --- snapshots -------------------------------------------------------------------------------


def test_snapshot_keeps_the_listed_features_then_the_target(tmp_path):
    cfg = make_cfg(tmp_path, features=["x2", "x1"])
    snap = data.make_snapshot(frame(), cfg)
    assert list(snap.columns) == ["x2", "x1", "target"]
    assert len(snap) == 40


def test_snapshot_without_a_feature_list_keeps_every_column(tmp_path):
    snap = data.make_snapshot(frame(), make_cfg(tmp_path))
    assert list(snap.columns) == ["x1", "x2", "name", "target"]


def test_snapshot_of_data_without_rows_is_a_data_error(tmp_path):
    empty = frame().iloc[0:0]
    with pytest.raises(DataError, match="no rows"):
        data.make_snapshot(empty, make_cfg(tmp_path))


def test_snapshot_drops_rows_without_a_target_or_refuses_them_when_told(tmp_path):
    rows = frame()
    rows["target"] = rows["target"].astype(object)
    rows.loc[[3, 7], "target"] = np.nan
    rows.loc[9, "target"] = "  "  # a blank label is missing too
    snap = data.make_snapshot(rows, make_cfg(tmp_path))
    assert len(snap) == len(rows) - 3 and snap["target"].notna().all()
    strict = make_cfg(tmp_path, target={"column": "target", "drop_missing": False})
    with pytest.raises(DataError, match=r"'target' is empty in 3 row\(s\).*target.drop_missing"):
        data.make_snapshot(rows, strict)


def test_snapshot_with_a_single_class_is_a_data_error(tmp_path):
    rows = frame()
    rows["target"] = 1
    with pytest.raises(DataError, match="single class"):
        data.make_snapshot(rows, make_cfg(tmp_path))


def test_snapshot_with_an_all_empty_listed_feature_names_the_column(tmp_path):
    rows = frame()
    rows["x2"] = np.nan
    data.make_snapshot(rows, make_cfg(tmp_path))  # not listed: a constant, left out later
    listed = make_cfg(tmp_path, features=[c for c in rows.columns if c != "target"])
    with pytest.raises(DataError, match="'x2' listed under 'features' are entirely empty"):
        data.make_snapshot(rows, listed)


def test_snapshot_with_duplicated_column_names_names_them(tmp_path):
    rows = pd.DataFrame([[1.0, 2.0, 0], [3.0, 4.0, 1]], columns=["a", "a", "target"])
    with pytest.raises(DataError, match="duplicated column names: a"):
        data.make_snapshot(rows, make_cfg(tmp_path))


def test_regression_snapshot_with_a_text_target_is_a_data_error(tmp_path):
    rows = frame()
    rows["target"] = ["low", "high"] * 20
    with pytest.raises(DataError, match="not numeric"):
        data.make_snapshot(rows, make_cfg(tmp_path, task="regression"))


def test_regression_snapshot_with_a_numeric_target_is_accepted(tmp_path):
    rows = frame()
    rows["target"] = np.linspace(0, 1, len(rows))
    assert len(data.make_snapshot(rows, make_cfg(tmp_path, task="regression"))) == len(rows)


def test_snapshot_with_a_target_or_feature_not_in_the_data_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="target: column 'label'"):
        data.make_snapshot(frame(), make_cfg(tmp_path, target="label"))
    with pytest.raises(ConfigError, match="'x9'"):
        data.make_snapshot(frame(), make_cfg(tmp_path, features=["x1", "x9"]))


# --- splitting -------------------------------------------------------------------------------


def imbalanced(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "target": np.where(np.arange(n) % 10 < 8, "common", "rare"),  # 80% / 20%
        }
    )


def test_split_is_the_same_for_the_same_seed_and_differs_for_another(tmp_path):
    rows = imbalanced()
    cfg = make_cfg(tmp_path, split={"seed": 5, "test_size": 0.25})
    train1, test1 = data.split(rows, cfg)
    train2, test2 = data.split(rows, cfg)
    pd.testing.assert_frame_equal(train1, train2)
    pd.testing.assert_frame_equal(test1, test2)
    _, other = data.split(rows, make_cfg(tmp_path, split={"seed": 6, "test_size": 0.25}))
    assert list(other.index) != list(test1.index)


def test_split_is_disjoint_and_covers_every_row(tmp_path):
    rows = imbalanced()
    train, test = data.split(rows, make_cfg(tmp_path, split={"test_size": 0.25}))
    assert set(train.index).isdisjoint(test.index)
    assert sorted([*train.index, *test.index]) == list(rows.index)
    assert len(test) == 50


def test_stratified_split_keeps_the_class_proportions(tmp_path):
    rows = imbalanced()
    train, test = data.split(rows, make_cfg(tmp_path, split={"test_size": 0.25, "stratify": True}))
    assert (test["target"] == "rare").sum() == 10
    assert (train["target"] == "rare").sum() == 30


def test_stratified_split_with_a_one_row_class_is_a_data_error_naming_the_class(tmp_path):
    rows = imbalanced()
    rows.loc[0, "target"] = "unique"
    with pytest.raises(DataError, match="'unique'"):
        data.split(rows, make_cfg(tmp_path))


def test_unstratified_split_ignores_class_sizes(tmp_path):
    rows = imbalanced()
    rows.loc[0, "target"] = "unique"
    train, test = data.split(rows, make_cfg(tmp_path, split={"stratify": False}))
    assert len(train) + len(test) == len(rows)


# --- Parquet bytes ---------------------------------------------------------------------------


def test_parquet_bytes_depend_only_on_the_data():
    first, second = frame(seed=3), frame(seed=3)
    assert first is not second
    assert data.to_parquet(first) == data.to_parquet(second)
    assert data.to_parquet(first) != data.to_parquet(frame(seed=4))


def test_parquet_bytes_read_back_to_the_same_frame_index_included(tmp_path):
    original = frame().iloc[::3]
    path = tmp_path / "snap.parquet"
    path.write_bytes(data.to_parquet(original))
    pd.testing.assert_frame_equal(data.read_parquet(str(path)), original)


def test_reading_corrupted_parquet_is_a_storage_error_naming_the_file(tmp_path):
    good = data.to_parquet(frame())
    path = tmp_path / "snap.parquet"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(StorageError, match="snap.parquet"):
        data.read_parquet(str(path))
    path.write_bytes(b"not parquet at all")
    with pytest.raises(StorageError, match="corrupted"):
        data.read_parquet(str(path))


def test_reading_missing_parquet_is_a_storage_error(tmp_path):
    with pytest.raises(StorageError, match="does not exist"):
        data.read_parquet(str(tmp_path / "gone.parquet"))


def test_features_and_target_splits_off_the_target_column():
    x, y = data.features_and_target(frame(), "target")
    assert list(x.columns) == ["x1", "x2", "name"]
    assert y.name == "target" and len(y) == 40
