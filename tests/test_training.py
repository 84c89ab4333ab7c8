"""mlcd.training: estimators built from config, reproducible dumps, and a loader that checks the
digest before any unpickling."""

from __future__ import annotations

import io
import os
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlcd.config import ModelConfig, build_estimator, load_config
from mlcd.errors import ConfigError, StorageError
from mlcd.fingerprint import sha256_bytes
from mlcd.training import dump, fit, load_verified, predict

ROOT = Path(__file__).resolve().parents[1]


def wine() -> tuple[pd.DataFrame, pd.Series]:
    bunch = load_wine(as_frame=True)
    return bunch.data, bunch.target


def test_wine_config_builds_a_scaler_then_logistic_regression_pipeline():
    estimator = build_estimator(load_config(ROOT / "config" / "wine.yaml").model)
    assert isinstance(estimator, Pipeline)
    assert [name for name, _ in estimator.steps] == ["scale", "classify"]
    scale, classify = (step for _, step in estimator.steps)
    assert isinstance(scale, StandardScaler)
    assert isinstance(classify, LogisticRegression)
    assert (classify.C, classify.max_iter, classify.random_state) == (1.0, 1000, 7)


def test_built_pipeline_fits_and_predicts_every_class():
    x, y = wine()
    model = fit(load_config(ROOT / "config" / "wine.yaml").model, x, y)
    assert set(model.predict(x)) == {0, 1, 2}
    assert (model.predict(x) == y).mean() > 0.9


def test_nested_specs_build_a_column_transformer_inside_a_pipeline():
    spec = ModelConfig.model_validate(
        {
            "estimator": "sklearn.pipeline.Pipeline",
            "params": {
                "steps": [
                    [
                        "prep",
                        {
                            "estimator": "sklearn.compose.ColumnTransformer",
                            "params": {
                                "transformers": [
                                    [
                                        "num",
                                        {"estimator": "sklearn.preprocessing.StandardScaler"},
                                        ["size"],
                                    ],
                                    [
                                        "cat",
                                        {
                                            "estimator": "sklearn.preprocessing.OneHotEncoder",
                                            "params": {"handle_unknown": "ignore"},
                                        },
                                        ["colour"],
                                    ],
                                ]
                            },
                        },
                    ],
                    ["model", {"estimator": "sklearn.linear_model.LogisticRegression"}],
                ]
            },
        }
    )
    estimator = build_estimator(spec)
    prep = estimator.named_steps["prep"]
    assert isinstance(prep, ColumnTransformer)
    assert isinstance(prep.transformers[1][1], OneHotEncoder)
    assert prep.transformers[1][1].handle_unknown == "ignore"
    rows = pd.DataFrame({"size": [1.0, 2.0, 3.0, 4.0], "colour": ["r", "g", "r", "g"]})
    estimator.fit(rows, [0, 1, 0, 1])
    assert list(estimator.predict(rows)) == [0, 1, 0, 1]


def test_unknown_key_in_a_nested_spec_names_where_it_is():
    spec = ModelConfig.model_validate(
        {
            "estimator": "sklearn.pipeline.Pipeline",
            "params": {"steps": [["m", {"estimator": "sklearn.linear_model.Ridge", "parms": {}}]]},
        }
    )
    with pytest.raises(ConfigError) as info:
        build_estimator(spec)
    assert "model.params.steps[0]" in str(info.value) and "parms" in str(info.value)


def test_nested_estimator_with_a_bad_parameter_names_where_it_is():
    spec = ModelConfig.model_validate(
        {
            "estimator": "sklearn.pipeline.Pipeline",
            "params": {
                "steps": [
                    ["m", {"estimator": "sklearn.linear_model.Ridge", "params": {"alpah": 1.0}}]
                ]
            },
        }
    )
    with pytest.raises(ConfigError) as info:
        build_estimator(spec)
    assert "model.params.steps[0][1].params" in str(info.value) and "alpah" in str(info.value)


# --- dumps -----------------------------------------------------------------------------------


def forest(random_state: int) -> RandomForestClassifier:
    x, y = wine()
    spec = ModelConfig(
        estimator="sklearn.ensemble.RandomForestClassifier",
        params={"n_estimators": 15, "max_depth": 4, "random_state": random_state, "n_jobs": 2},
    )
    return fit(spec, x, y)


def test_two_fits_with_the_same_random_state_dump_to_identical_bytes():
    assert dump(forest(3)) == dump(forest(3))


def test_fits_with_different_random_states_dump_to_different_bytes():
    assert dump(forest(3)) != dump(forest(4))


def test_verified_load_gives_back_a_model_with_the_same_predictions():
    model = forest(3)
    data = dump(model)
    loaded = load_verified(data, sha256_bytes(data), "model.joblib")
    x, _ = wine()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_tampered_model_bytes_are_refused_with_a_storage_error():
    data = dump(forest(3))
    tampered = bytearray(data)
    tampered[len(tampered) // 2] ^= 0xFF
    with pytest.raises(StorageError, match="sha256") as info:
        load_verified(bytes(tampered), sha256_bytes(data), "registry/m/model.joblib")
    assert "registry/m/model.joblib" in str(info.value)


class _MakesFolder:
    """Unpickling this object runs ``os.mkdir(path)``: a stand-in for malicious code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


def test_model_bytes_with_a_wrong_digest_are_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    joblib.dump(_MakesFolder(str(marker)), buf)
    evil = buf.getvalue()
    genuine = dump(forest(3))

    with pytest.raises(StorageError):
        load_verified(evil, sha256_bytes(genuine), "model.joblib")
    assert not marker.exists()

    # the payload is live: with its own digest, loading it does run the code
    load_verified(evil, sha256_bytes(evil), "model.joblib")
    assert marker.is_dir()


# --- predictions -----------------------------------------------------------------------------


def test_classifier_predictions_come_with_class_probabilities():
    x, y = wine()
    model = forest(3)
    y_pred, proba = predict(model, x)
    assert y_pred.shape == (len(x),)
    assert proba.shape == (len(x), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], y_pred)


def test_regressor_without_predict_proba_gives_none_for_probabilities():
    bunch = load_diabetes(as_frame=True)
    model = fit(ModelConfig(estimator="sklearn.linear_model.Ridge"), bunch.data, bunch.target)
    assert isinstance(model, Ridge)
    y_pred, proba = predict(model, bunch.data)
    assert proba is None
    assert y_pred.shape == (len(bunch.data),)


def test_a_checked_sklearn_spec_is_not_imported_again(tmp_path):
    """A no-op rerun must not pay scikit-learn's import to re-check the config's estimator."""
    import subprocess
    import sys

    from tests.conftest import ROOT, write_config

    config = write_config(tmp_path)
    probe = (
        "import sys; from mlcd.config import load_config; "
        f"load_config({str(config)!r}); print('sklearn.base' in sys.modules)"
    )
    env = {**os.environ, "MLCD_CACHE_DIR": str(tmp_path / "cache")}

    def imported() -> str:
        out = subprocess.run(
            [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert imported() == "True"  # checked: scikit-learn imported, the answer kept
    assert imported() == "False"
    assert len(list((tmp_path / "cache" / "specs").iterdir())) == 1


def test_a_spec_naming_other_code_is_checked_every_time(tmp_path, monkeypatch):
    from mlcd.config import ModelConfig, check_spec

    monkeypatch.setenv("MLCD_CACHE_DIR", str(tmp_path))
    spec = ModelConfig(estimator="tests.slow_estimator.SlowClassifier", params={})
    assert check_spec(spec) == {"random_state": {}}
    assert not (tmp_path / "specs").exists()
    bad = ModelConfig(estimator="sklearn.linear_model.LogisticRegression", params={"C": "x"})
    with pytest.raises(ConfigError):
        check_spec(bad)
    assert not (tmp_path / "specs").exists()  # nothing kept for a spec that failed


def test_model_bytes_do_not_depend_on_which_equal_strings_are_one_object():
    """Pickle writes a repeated string as a reference only when it is the same object; which
    equal strings a process shares is chance (the same grid gave other bytes in a process that
    had run other tasks first). mlcd's dump treats equal strings as one."""
    from sklearn.dummy import DummyClassifier

    from mlcd import training

    other = "".join(["remain", "der"])  # equal to "remainder", another object
    assert other == "remainder" and other is not "remainder"  # noqa: F632
    shared, apart = DummyClassifier(), DummyClassifier()
    shared.extra_ = ("remainder", {"remainder": [1]})
    apart.extra_ = ("remainder", {other: [1]})

    def plain(model: object) -> bytes:
        buf = io.BytesIO()
        joblib.dump(model, buf)
        return buf.getvalue()

    assert plain(shared) != plain(apart)  # what joblib alone does
    assert training.dump(shared) == training.dump(apart)
    loaded = joblib.load(io.BytesIO(training.dump(apart)))
    assert loaded.extra_ == apart.extra_
