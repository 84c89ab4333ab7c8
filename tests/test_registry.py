"""mlcd.registry: immutable versions with digests, the production pointer and its log, and a
model loader that refuses anything that does not match its manifest."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from mlcd import registry
from mlcd.errors import StorageError
from mlcd.training import dump

NAME = "iris"


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    x, y = load_iris(return_X_y=True)
    return dump(LogisticRegression(max_iter=500).fit(x, y))


def files(model_bytes: bytes) -> dict[str, bytes]:
    return {
        "model.joblib": model_bytes,
        "metrics.json": b'{"accuracy": 0.97}\n',
        "plots/confusion_matrix.png": b"\x89PNG fake",
    }


def publish(root: Path, version: str, model_bytes: bytes) -> bool:
    return registry.publish_version(
        str(root), NAME, version, files(model_bytes), {"version": version, "run": "r1"}
    )


def version_path(root: Path, version: str) -> Path:
    return root / NAME / "versions" / version


def test_published_manifest_records_each_artifacts_sha256_and_size(tmp_path, model_bytes):
    assert publish(tmp_path, "v1", model_bytes) is True
    manifest = registry.read_manifest(str(tmp_path), NAME, "v1")
    assert manifest["version"] == "v1" and manifest["run"] == "r1"
    assert sorted(manifest["artifacts"]) == sorted(files(model_bytes))
    for rel, data in files(model_bytes).items():
        on_disk = (version_path(tmp_path, "v1") / rel).read_bytes()
        assert on_disk == data
        assert manifest["artifacts"][rel] == {
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
        }


def test_publishing_an_existing_version_returns_false_and_keeps_the_first(tmp_path, model_bytes):
    assert publish(tmp_path, "v1", model_bytes)
    assert (
        registry.publish_version(
            str(tmp_path), NAME, "v1", {"model.joblib": b"other"}, {"version": "v1", "run": "r2"}
        )
        is False
    )
    assert registry.read_manifest(str(tmp_path), NAME, "v1")["run"] == "r1"
    assert (version_path(tmp_path, "v1") / "model.joblib").read_bytes() == model_bytes


def test_manifest_of_an_unknown_version_is_a_storage_error(tmp_path):
    with pytest.raises(StorageError, match="'v9'"):
        registry.read_manifest(str(tmp_path), NAME, "v9")


# --- production pointer and promotions -------------------------------------------------------


def test_production_is_none_before_any_promotion(tmp_path, model_bytes):
    assert registry.production(str(tmp_path), NAME) is None
    publish(tmp_path, "v1", model_bytes)
    assert registry.production(str(tmp_path), NAME) is None
    assert registry.promotions(str(tmp_path), NAME) == []


def test_each_promotion_moves_the_pointer_and_logs_one_line_with_the_previous_version(tmp_path):
    root = str(tmp_path)
    first = registry.set_production(
        root, NAME, "v1", actor="ci", reason="gates passed", extra={"run": "a"}
    )
    assert registry.production(root, NAME) == first
    assert (first["model"], first["version"], first["actor"]) == (NAME, "v1", "ci")

    registry.set_production(root, NAME, "v2", actor="ci", reason="gates passed", extra={"run": "b"})
    registry.set_production(root, NAME, "v1", actor="alice", reason="rollback", extra={})

    assert registry.production(root, NAME)["version"] == "v1"
    lines = (tmp_path / NAME / "promotions.jsonl").read_text().splitlines()
    assert len(lines) == 3
    log = registry.promotions(root, NAME)
    assert [(r["version"], r["previous"]) for r in log] == [
        ("v1", None),
        ("v2", "v1"),
        ("v1", "v2"),
    ]
    assert [r["reason"] for r in log] == ["gates passed", "gates passed", "rollback"]
    assert log[0]["run"] == "a" and log[2]["actor"] == "alice"


def test_ever_promoted_is_true_only_for_versions_in_the_log(tmp_path):
    root = str(tmp_path)
    registry.set_production(root, NAME, "v1", actor="ci", reason="r", extra={})
    registry.set_production(root, NAME, "v2", actor="ci", reason="r", extra={})
    assert registry.ever_promoted(root, NAME, "v1")
    assert registry.ever_promoted(root, NAME, "v2")
    assert not registry.ever_promoted(root, NAME, "v3")
    assert not registry.ever_promoted(root, "other-model", "v1")


def test_promotion_log_skips_corrupted_lines_and_keeps_the_rest(tmp_path):
    root = str(tmp_path)
    registry.set_production(root, NAME, "v1", actor="ci", reason="r", extra={})
    log = tmp_path / NAME / "promotions.jsonl"
    with log.open("ab") as handle:
        handle.write(b'{"version": "v-half\n[1, 2]\n\xff\xfe garbage\n')
    registry.set_production(root, NAME, "v2", actor="ci", reason="r", extra={})
    assert [r["version"] for r in registry.promotions(root, NAME)] == ["v1", "v2"]


@pytest.mark.parametrize(
    "content",
    [b'{"version": "v', b'["v1"]', b'{"model": "iris"}'],
    ids=["half-written", "list", "no-version"],
)
def test_corrupted_production_pointer_is_a_storage_error(tmp_path, content):
    pointer = tmp_path / NAME / "production.json"
    pointer.parent.mkdir(parents=True)
    pointer.write_bytes(content)
    with pytest.raises(StorageError, match="production.json"):
        registry.production(str(tmp_path), NAME)


# --- loading published models ----------------------------------------------------------------


def test_load_model_returns_the_published_model_and_its_manifest(tmp_path, model_bytes):
    publish(tmp_path, "v1", model_bytes)
    model, manifest = registry.load_model(str(tmp_path), NAME, "v1")
    x, _ = load_iris(return_X_y=True)
    original = joblib.load(io.BytesIO(model_bytes))
    np.testing.assert_array_equal(model.predict(x), original.predict(x))
    assert (
        manifest["artifacts"]["model.joblib"]["sha256"] == hashlib.sha256(model_bytes).hexdigest()
    )


def test_load_model_refuses_a_tampered_model_file(tmp_path, model_bytes):
    publish(tmp_path, "v1", model_bytes)
    other = dump(LogisticRegression(C=0.01, max_iter=500).fit(*load_iris(return_X_y=True)))
    (version_path(tmp_path, "v1") / "model.joblib").write_bytes(other)
    with pytest.raises(StorageError, match="sha256"):
        registry.load_model(str(tmp_path), NAME, "v1")


def test_load_model_with_a_manifest_missing_the_model_digest_is_a_storage_error(
    tmp_path, model_bytes
):
    publish(tmp_path, "v1", model_bytes)
    manifest_path = version_path(tmp_path, "v1") / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["artifacts"]["model.joblib"]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(StorageError):
        registry.load_model(str(tmp_path), NAME, "v1")
