"""mlcd.storage: atomic writes, readable errors, all-or-nothing folder publishing, and a clear
refusal of locations it cannot serve."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlcd import storage
from mlcd.errors import StorageError


def test_target_opened_for_writing_appears_only_when_closed(tmp_path):
    path = str(tmp_path / "out.bin")
    handle = storage.target(path).open("w")
    handle.write(b"payload")
    assert not os.path.exists(path)
    handle.close()
    assert os.path.exists(path)
    assert storage.read_bytes(path) == b"payload"


def test_write_bytes_creates_parent_folders_and_leaves_only_the_file(tmp_path):
    path = tmp_path / "a" / "b" / "c.bin"
    storage.write_bytes(str(path), b"\x00\x01binary")
    assert path.read_bytes() == b"\x00\x01binary"
    assert os.listdir(path.parent) == ["c.bin"]


def test_write_bytes_that_fails_midway_keeps_the_previous_content(tmp_path):
    path = tmp_path / "c.bin"
    storage.write_bytes(str(path), b"previous")
    with pytest.raises(TypeError):
        storage.write_bytes(str(path), "not bytes")
    assert path.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["c.bin"]


def test_write_bytes_replaces_the_whole_file(tmp_path):
    path = str(tmp_path / "c.bin")
    storage.write_bytes(path, b"a much longer first version")
    storage.write_bytes(path, b"short")
    assert storage.read_bytes(path) == b"short"


def test_write_bytes_under_a_file_is_a_storage_error_naming_the_path(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("i am a file")
    with pytest.raises(StorageError, match="blocker"):
        storage.write_bytes(str(blocker / "x.bin"), b"data")


def test_reading_a_missing_file_is_a_storage_error_naming_it(tmp_path):
    with pytest.raises(StorageError, match="nothing.json"):
        storage.read_bytes(str(tmp_path / "nothing.json"))


def test_json_round_trips_in_canonical_form(tmp_path):
    path = str(tmp_path / "m.json")
    storage.write_json(path, {"b": 1, "a": {"z": [1, 2], "y": "é"}})
    raw = storage.read_bytes(path)
    assert raw == storage.dumps_json({"a": {"y": "é", "z": [1, 2]}, "b": 1})
    assert raw.endswith(b"}\n") and raw.index(b'"a"') < raw.index(b'"b"')
    assert "é" in raw.decode("utf-8")
    assert storage.read_json(path) == {"a": {"y": "é", "z": [1, 2]}, "b": 1}


@pytest.mark.parametrize("content", [b'{"half": ', b"", b"\xff\xfe not json"])
def test_invalid_json_is_a_storage_error_naming_the_path(tmp_path, content):
    path = tmp_path / "broken.json"
    path.write_bytes(content)
    with pytest.raises(StorageError) as info:
        storage.read_json(str(path))
    assert str(path) in str(info.value)
    assert "not valid JSON" in str(info.value)


def test_append_line_creates_the_log_and_adds_one_line_per_call(tmp_path):
    path = tmp_path / "logs" / "events.jsonl"
    storage.append_line(str(path), json.dumps({"n": 1}))
    storage.append_line(str(path), json.dumps({"n": 2}) + "\n")
    assert path.read_text().splitlines() == ['{"n": 1}', '{"n": 2}']


# --- publishing folders ----------------------------------------------------------------------

FILES = {"model.joblib": b"model", "plots/cm.png": b"png", "reports/deep/r.html": b"<html/>"}


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_publish_dir_writes_every_file_and_no_staging_folder_remains(tmp_path):
    dest = tmp_path / "reg" / "m" / "versions" / "v1"
    assert storage.publish_dir(str(dest), FILES) is True
    assert tree(dest) == FILES
    assert os.listdir(dest.parent) == ["v1"]


def test_publish_dir_to_an_existing_folder_returns_false_and_changes_nothing(tmp_path):
    dest = tmp_path / "v1"
    assert storage.publish_dir(str(dest), FILES)
    assert storage.publish_dir(str(dest), {"model.joblib": b"other", "extra.txt": b"x"}) is False
    assert tree(dest) == FILES
    assert sorted(os.listdir(tmp_path)) == ["v1"]


def test_publish_dir_with_a_trailing_slash_publishes_the_same_folder(tmp_path):
    assert storage.publish_dir(str(tmp_path / "v1") + "/", FILES)
    assert tree(tmp_path / "v1") == FILES
    assert storage.publish_dir(str(tmp_path / "v1") + "/", FILES) is False


def test_publish_dir_that_fails_midway_leaves_no_folder_and_no_staging(tmp_path):
    # "a" is written as a file, then "a/b" needs it to be a folder: the second write fails
    broken = {"a": b"file", "a/b": b"cannot exist"}
    with pytest.raises(StorageError, match="v1"):
        storage.publish_dir(str(tmp_path / "v1"), broken)
    assert os.listdir(tmp_path) == []


# --- locations it does not serve -------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda p: storage.write_bytes(p, b"x"),
        lambda p: storage.read_bytes(p),
        lambda p: storage.read_json(p),
        lambda p: storage.write_json(p, {}),
        lambda p: storage.exists(p),
        lambda p: storage.target(p),
        lambda p: storage.join(p, "x"),
        lambda p: storage.append_line(p, "x"),
        lambda p: storage.publish_dir(p, {"f": b"x"}),
    ],
    ids=[
        "write_bytes",
        "read_bytes",
        "read_json",
        "write_json",
        "exists",
        "target",
        "join",
        "append_line",
        "publish_dir",
    ],
)
def test_s3_locations_are_refused_with_a_storage_error(call, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # if anything were written, it would land here
    with pytest.raises(StorageError, match=r"s3://.*local path"):
        call("s3://bucket/models/x.json")
    assert os.listdir(tmp_path) == []


def test_local_join_and_exists(tmp_path):
    path = storage.join(str(tmp_path), "a", "b.txt")
    assert path == str(tmp_path / "a" / "b.txt")
    assert not storage.exists(path)
    storage.write_bytes(path, b"")
    assert storage.exists(path)
