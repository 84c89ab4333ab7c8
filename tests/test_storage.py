"""mlcd.storage: the same behaviour on local disk and on a real S3 endpoint (moto_server): atomic
writes, readable errors, all-or-nothing folder publishing, locks and conditional writes."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from conftest import S3Endpoint

from mlcd import storage
from mlcd.errors import AlreadyRunning, ConfigError, StorageError
from mlcd.storage import s3


class Place:
    """A folder on one backend, and a way to see everything stored under it."""

    def __init__(self, base: str, endpoint: S3Endpoint | None = None, bucket: str = "") -> None:
        self.base, self.endpoint, self.bucket = base, endpoint, bucket

    def __call__(self, *parts: str) -> str:
        return storage.join(self.base, *parts)

    def everything(self) -> dict[str, bytes]:
        """Relative name -> bytes of every file or object under the folder (hidden ones too)."""
        if self.endpoint is None:
            root = Path(self.base)
            if not root.exists():
                return {}
            return {
                str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()
            }
        prefix = self.base.split("/", 3)[3] + "/"
        return {
            key[len(prefix) :]: body
            for key, body in self.endpoint.objects(self.bucket).items()
            if key.startswith(prefix)
        }


@pytest.fixture(params=["local", "s3"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    if request.param == "local":
        return Place(str(tmp_path / "store"))
    endpoint: S3Endpoint = request.getfixturevalue("s3_endpoint")
    bucket = endpoint.bucket()
    return Place(f"s3://{bucket}/store", endpoint, bucket)


def test_a_write_appears_whole_and_leaves_nothing_else(place):
    path = place("a", "b", "c.bin")
    assert not storage.exists(path)
    storage.write_bytes(path, b"\x00\x01binary")
    assert storage.exists(path)
    assert storage.read_bytes(path) == b"\x00\x01binary"
    assert place.everything() == {"a/b/c.bin": b"\x00\x01binary"}


def test_a_write_that_fails_midway_keeps_the_previous_content(place):
    path = place("c.bin")
    storage.write_bytes(path, b"previous")
    with pytest.raises(TypeError):
        storage.write_bytes(path, "not bytes")  # type: ignore[arg-type]
    assert place.everything() == {"c.bin": b"previous"}


def test_a_write_replaces_the_whole_file(place):
    path = place("c.bin")
    storage.write_bytes(path, b"a much longer first version")
    storage.write_bytes(path, b"short")
    assert storage.read_bytes(path) == b"short"


def test_an_artifact_over_20_mb_goes_up_whole(place):
    blob = os.urandom(21 * 1024 * 1024)
    storage.write_bytes(place("big", "model.joblib"), blob)
    assert storage.read_bytes(place("big", "model.joblib")) == blob
    assert storage.describe(place("big", "model.joblib"))["size"] == len(blob)
    assert list(place.everything()) == ["big/model.joblib"]


def test_large_objects_are_uploaded_in_parts(s3_endpoint, monkeypatch):
    # Upload parts are sent as PUTs with partNumber: the multipart path is the one taken.
    bucket = s3_endpoint.bucket()
    client, _ = s3.client()
    seen: list[str] = []
    client.meta.events.register("before-send.s3", lambda request, **_: seen.append(request.url))
    try:
        storage.write_bytes(f"s3://{bucket}/big.bin", b"x" * (20 * 1024 * 1024 + 1))
    finally:
        client.meta.events.unregister("before-send.s3")
    assert sum("partNumber=" in url for url in seen) >= 3
    assert any("uploads" in url for url in seen)


def test_reading_a_missing_file_is_a_storage_error_naming_it(place):
    with pytest.raises(StorageError, match="nothing.json"):
        storage.read_bytes(place("nothing.json"))
    assert storage.fetch(place("nothing.json")) is None


def test_json_round_trips_in_canonical_form(place):
    path = place("m.json")
    storage.write_json(path, {"b": 1, "a": {"z": [1, 2], "y": "é"}})
    raw = storage.read_bytes(path)
    assert raw == storage.dumps_json({"a": {"y": "é", "z": [1, 2]}, "b": 1})
    assert raw.endswith(b"}\n") and raw.index(b'"a"') < raw.index(b'"b"')
    assert storage.read_json(path) == {"a": {"y": "é", "z": [1, 2]}, "b": 1}


@pytest.mark.parametrize("content", [b'{"half": ', b"", b"\xff\xfe not json"])
def test_invalid_json_is_a_storage_error_naming_the_path(place, content):
    path = place("broken.json")
    storage.write_bytes(path, content)
    with pytest.raises(StorageError) as info:
        storage.read_json(path)
    assert path in str(info.value)
    assert "not valid JSON" in str(info.value)


def test_append_line_creates_the_log_and_adds_one_line_per_call(place):
    path = place("logs", "events.jsonl")
    storage.append_line(path, json.dumps({"n": 1}))
    storage.append_line(path, json.dumps({"n": 2}) + "\n")
    assert storage.read_bytes(path).decode().splitlines() == ['{"n": 1}', '{"n": 2}']


def test_concurrent_appends_lose_no_line(place):
    path = place("log.jsonl")

    def writer(n: int) -> None:
        for i in range(5):
            storage.append_line(path, f"{n}-{i}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = storage.read_bytes(path).decode().splitlines()
    assert sorted(lines) == sorted(f"{n}-{i}" for n in range(4) for i in range(5))


def test_conditional_writes_refuse_a_changed_or_existing_object(place):
    path = place("pointer.json")
    first = storage.write_bytes(path, b"v1", if_absent=True)
    with pytest.raises(s3.Conflict):
        storage.write_bytes(path, b"other", if_absent=True)
    fetched = storage.fetch(path)
    assert fetched is not None and fetched == (b"v1", first)
    storage.write_bytes(path, b"v2", if_tag=first)
    with pytest.raises(s3.Conflict):
        storage.write_bytes(path, b"v3", if_tag=first)  # the tag of v1: stale
    assert storage.read_bytes(path) == b"v2"


def test_listing_and_missing(place):
    storage.write_bytes(place("task", "a.json"), b"{}")
    storage.write_bytes(place("task", "plots", "cm.png"), b"png")
    storage.write_bytes(place("other", "x"), b"")
    assert storage.list_dir(place()) == ["other", "task"]
    assert storage.list_dir(place("task")) == ["a.json", "plots"]
    assert storage.list_dir(place("nowhere")) == []
    wanted = [place("task", "a.json"), place("task", "plots", "cm.png"), place("task", "b")]
    assert storage.missing(place("task"), wanted) == [place("task", "b")]
    assert storage.missing(place("task"), [place("other", "x"), place("other", "y")]) == [
        place("other", "y")
    ]
    assert storage.modified_at(place("other", "x")) > time.time() - 600


def test_describe_identifies_content_without_reading_it_twice(place):
    path = place("data.csv")
    storage.write_bytes(path, b"x,target\n1,0\n")
    first = storage.describe(path)
    assert first["size"] == 13 and first == storage.describe(path)
    storage.write_bytes(path, b"x,target\n2,0\n")  # same size, new content
    assert storage.describe(path) != first
    with pytest.raises(StorageError, match="does not exist"):
        storage.describe(place("gone.csv"))


def test_a_seekable_reader_reads_the_asked_ranges(place):
    path = place("blob.bin")
    blob = bytes(range(256)) * 64
    storage.write_bytes(path, blob)
    with storage.open_read(path, seekable=True) as handle:
        handle.seek(-10, os.SEEK_END)
        assert handle.read() == blob[-10:]
        handle.seek(100)
        assert handle.read(5) == blob[100:105]
    with storage.open_read(path) as handle:
        assert handle.read() == blob


# --- locks ---------------------------------------------------------------------------------------


def test_a_lock_is_exclusive_and_names_its_holder(place):
    lock = place("model", ".lock")
    with storage.exclusive_lock(lock, {"pid": 1, "doing": "promote v2"}, wait=0):
        with pytest.raises(AlreadyRunning, match="promote v2"):
            with storage.exclusive_lock(lock, {"pid": 2}, wait=0.3):
                pass
    with storage.exclusive_lock(lock, {"pid": 3}, wait=0):  # released
        pass


def test_an_s3_lock_left_by_a_dead_holder_is_taken_over_after_its_lease(s3_endpoint):
    lock = f"s3://{s3_endpoint.bucket()}/model/.lock"
    expired = json.dumps({"pid": 99, "expires": time.time() - 1}).encode()
    storage.write_bytes(lock, expired)
    with storage.exclusive_lock(lock, {"pid": 4}, wait=0):
        assert json.loads(storage.read_bytes(lock))["pid"] == 4
    assert not storage.exists(lock)


# --- publishing folders --------------------------------------------------------------------------

FILES = {
    "model.joblib": b"model",
    "plots/cm.png": b"png",
    "reports/deep/r.html": b"<html/>",
    "manifest.json": b"{}",
}


def test_publish_dir_writes_every_file_and_nothing_else(place):
    assert storage.publish_dir(place("m", "versions", "v1"), FILES, "manifest.json") is True
    assert place.everything() == {f"m/versions/v1/{k}": v for k, v in FILES.items()}


def test_publish_dir_to_an_existing_folder_returns_false_and_changes_nothing(place):
    dest = place("v1")
    assert storage.publish_dir(dest, FILES, "manifest.json")
    other = {"model.joblib": b"other", "extra.txt": b"x", "manifest.json": b"[]"}
    assert storage.publish_dir(dest, other, "manifest.json") is False
    assert place.everything() == {f"v1/{k}": v for k, v in FILES.items()}


def test_local_publish_dir_that_fails_midway_leaves_no_folder_and_no_staging(tmp_path):
    # "a" is written as a file, then "a/b" needs it to be a folder: the second write fails
    broken = {"a": b"file", "a/b": b"cannot exist"}
    with pytest.raises(StorageError, match="v1"):
        storage.publish_dir(str(tmp_path / "v1"), broken, "a")
    assert os.listdir(tmp_path) == []


def test_an_interrupted_s3_publish_has_no_marker_and_is_completed_by_the_next(s3_endpoint):
    dest = f"s3://{s3_endpoint.bucket()}/v1"
    storage.write_bytes(storage.join(dest, "model.joblib"), b"half")  # killed before the marker
    assert storage.publish_dir(dest, FILES, "manifest.json") is True
    assert storage.read_bytes(storage.join(dest, "model.joblib")) == b"model"


# --- locations and errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri, problem",
    [
        ("s3://", "not a valid S3 bucket name"),
        ("s3://B_ad/key", "not a valid S3 bucket name"),
        ("s3://ab/key", "not a valid S3 bucket name"),
        ("s3://bucket/a/../b", "'..'"),
        ("gs://bucket/key", "gs:// scheme is not supported"),
    ],
)
def test_an_invalid_location_is_a_config_error_naming_it(uri, problem):
    with pytest.raises(ConfigError, match=problem):
        storage.check_location(uri)


def test_s3_join():
    assert storage.join("s3://bkt", "a", "b.json") == "s3://bkt/a/b.json"
    assert storage.join("s3://bkt/pre/", "x/", "y") == "s3://bkt/pre/x/y"


def test_a_missing_bucket_is_named(s3_endpoint):
    for call in (
        lambda: storage.exists("s3://no-such-bucket-mlcd/x"),
        lambda: storage.read_bytes("s3://no-such-bucket-mlcd/x"),
        lambda: storage.write_bytes("s3://no-such-bucket-mlcd/x", b"1"),
        lambda: storage.list_dir("s3://no-such-bucket-mlcd/x"),
    ):
        with pytest.raises(StorageError, match="bucket 'no-such-bucket-mlcd' does not exist"):
            call()


# --- transient faults ----------------------------------------------------------------------------


@pytest.fixture
def through_proxy(s3_endpoint, monkeypatch):
    """Point this process's S3 client at a fault-injecting proxy in front of moto_server."""
    from tests.faulty_s3 import FaultyProxy

    def start(rate: float, **kwargs: object) -> FaultyProxy:
        proxy = FaultyProxy(s3_endpoint.url, rate=rate, **kwargs).__enter__()
        stack.append(proxy)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setattr(s3, "_client", None)  # a new client, for the new endpoint
        return proxy

    stack: list[object] = []
    yield start
    for proxy in stack:
        proxy.__exit__(None, None, None)  # type: ignore[attr-defined]


def test_transient_errors_and_dropped_connections_are_retried(s3_endpoint, through_proxy):
    bucket = s3_endpoint.bucket()
    proxy = through_proxy(0.3, faults=("500", "503", "drop"), seed=3)
    for i in range(15):
        storage.write_bytes(f"s3://{bucket}/k{i}", b"x" * i)
        storage.append_line(f"s3://{bucket}/log.jsonl", str(i))
    assert [storage.read_bytes(f"s3://{bucket}/k{i}") for i in range(15)] == [
        b"x" * i for i in range(15)
    ]
    lines = storage.read_bytes(f"s3://{bucket}/log.jsonl").decode().splitlines()
    assert lines == [str(i) for i in range(15)]
    assert sum(proxy.injected.values()) >= 10 and proxy.forwarded > 0


def test_an_endpoint_that_keeps_failing_is_a_storage_error_after_the_retries(
    s3_endpoint, through_proxy, monkeypatch
):
    bucket = s3_endpoint.bucket()
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    proxy = through_proxy(1.0, faults=("503",))
    with pytest.raises(StorageError, match=r"answered SlowDown after 3 attempts"):
        storage.write_bytes(f"s3://{bucket}/k", b"x")
    assert proxy.injected["503"] == 3 and proxy.forwarded == 0
    assert s3_endpoint.objects(bucket) == {}


def test_a_local_digest_is_kept_across_runs_until_the_file_changes(tmp_path, monkeypatch):
    """The sha256 of a local source is hashed once per change of its stat, also across
    processes (the in-process cache is cleared here to stand for a new run)."""
    from mlcd import fingerprint
    from mlcd.storage import seam

    monkeypatch.setenv("MLCD_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "source.csv"
    path.write_text("a,b\n1,2\n")
    hashed: list[str] = []
    real = fingerprint.sha256_file

    def counting(name: str) -> str:
        hashed.append(name)
        return real(name)

    monkeypatch.setattr("mlcd.fingerprint.sha256_file", counting)
    seam._file_digest.cache_clear()
    first = storage.describe(str(path))
    seam._file_digest.cache_clear()
    assert storage.describe(str(path)) == first and len(hashed) == 1  # the second run: kept
    assert first["sha256"] == real(str(path))

    # The same size and mtime, other content: the ctime moved, so it is hashed again.
    stat = path.stat()
    path.write_text("a,b\n3,4\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    seam._file_digest.cache_clear()
    changed = storage.describe(str(path))
    assert changed["sha256"] == real(str(path)) != first["sha256"] and len(hashed) == 2

    # A damaged cache entry is not believed.
    for entry in (tmp_path / "cache" / "digests").iterdir():
        entry.write_text("not a digest")
    seam._file_digest.cache_clear()
    assert storage.describe(str(path)) == changed and len(hashed) == 3
