"""``mlcd monitor --deep``: deepchecks' own drift checks (FeatureDrift, PredictionDrift) on the
version's recorded training split against the logged rows. A second opinion that needs the
training rows, so it runs only while the workspace still holds that split (its sha256 checked
against the version's manifest); the default, profile-based drift never reads them."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Mapping
from typing import Any

import pandas as pd

from mlcd import columns, data, registry, storage
from mlcd.config import PipelineConfig
from mlcd.errors import StorageError
from mlcd.monitoring import predlog
from mlcd.monitoring.drift import PREDICTION, VERSION
from mlcd.storage.integrity import mismatch


def training_split(cfg: PipelineConfig, version: str) -> tuple[pd.DataFrame | None, str]:
    """The version's training split as recorded in its manifest (the snapshot and the split's
    mask over it, both checked against their digests), or None and why not."""
    manifest = registry.read_manifest(cfg.publish, cfg.name, version)
    record = ((manifest.get("tasks") or {}).get("SplitData") or {}).get("outputs", {})
    split = record.get("split.parquet") if isinstance(record, dict) else None
    snapshot = manifest.get("snapshot")
    if not isinstance(split, dict) or split.get("root") != "workspace" or not snapshot:
        return None, "the version's manifest records no training split"
    mask_path = storage.join(cfg.workspace, str(split["path"]))
    found = storage.fetch(mask_path)
    if found is None:
        return None, f"the training split's {mask_path} is no longer in the workspace"
    if mismatch(found[0], split.get("sha256")) is not None:
        return None, f"the training split {mask_path} does not match the version's manifest"
    try:  # its own error names a snapshot that is gone or changed
        snap = data.read_snapshot(cfg.workspace, str(manifest.get("snapshot_sha256")))
    except StorageError as exc:
        return None, str(exc)
    return data.split_rows(snap, data.mask_from_parquet(found[0], mask_path), "train"), mask_path


def _dataset(frame: pd.DataFrame, features: list[str], cat: list[str]) -> Any:
    from deepchecks.tabular import Dataset

    return Dataset(frame[features].reset_index(drop=True), label=None, cat_features=cat)


def run(cfg: PipelineConfig, result: Mapping[str, Any]) -> dict[str, Any]:
    """Each check's drift score and whether deepchecks' default condition passed."""
    version = str(result["version"])
    train, where = training_split(cfg, version)
    if train is None:
        return {"ran": False, "summary": f"not run: {where}"}
    import mlcd.gates.compat  # noqa: F401, I001  (first: mends deepchecks for the current stack)
    from deepchecks.tabular.checks import FeatureDrift, PredictionDrift

    log = predlog.read(
        str(result["log"]), since=_time(result["since"]), until=_time(result["until"])
    )
    from mlcd.monitoring import profile as prof

    ref = prof.read(cfg.publish, cfg.name, version) or {"columns": {}}
    roles = {c: {"role": r["role"]} for c, r in ref["columns"].items()}
    features = [
        c for c in columns.features(roles) if roles[c]["role"] != "datetime" and c in log.columns
    ]
    cat = [c for c in features if roles[c]["role"] in ("categorical", "boolean")]
    out: dict[str, Any] = {"ran": True, "training_split": where, "checks": {}}
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        # deepchecks logs its notes (common index, observed classes) as warnings: the verdict
        # carries what matters.
        logger = logging.getLogger("deepchecks")
        stack.callback(logger.setLevel, logger.level)
        logger.setLevel(logging.ERROR)
        train_ds, log_ds = _dataset(train, features, cat), _dataset(log, features, cat)
        try:
            check = FeatureDrift().add_condition_drift_score_less_than()
            res = check.run(train_ds, log_ds, with_display=False)
            scores = {c: round(float(v["Drift score"]), 6) for c, v in res.value.items()}
            out["checks"]["FeatureDrift"] = {
                "passed": all(c.is_pass() for c in res.conditions_results),
                "scores": scores,
            }
        except Exception as exc:  # a deepchecks failure is reported, never fatal
            out["checks"]["FeatureDrift"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        try:
            model, _ = registry.load_model(cfg.publish, cfg.name, version)
            names = getattr(model, "feature_names_in_", None)
            wanted = list(names) if names is not None else columns.features(roles)
            from mlcd import training

            y_train, _ = training.predict(model, train[wanted])
            mine = log[log[VERSION].astype(str) == version] if VERSION in log.columns else log
            check_p = PredictionDrift().add_condition_drift_score_less_than()
            res_p = check_p.run(
                _dataset(train, features, cat),
                _dataset(mine, features, cat),
                y_pred_train=pd.Series(y_train).to_numpy(),
                y_pred_test=mine[PREDICTION].to_numpy(),
                with_display=False,
            )
            out["checks"]["PredictionDrift"] = {
                "passed": all(c.is_pass() for c in res_p.conditions_results),
                "score": round(float(res_p.value["Drift score"]), 6),
            }
        except Exception as exc:  # as above; a model that cannot score its own split too
            out["checks"]["PredictionDrift"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    parts = []
    for name, check_out in out["checks"].items():
        if "error" in check_out:
            parts.append(f"{name} error ({check_out['error']})")
        else:
            parts.append(f"{name} {'passed' if check_out['passed'] else 'FAILED'}")
    out["summary"] = "; ".join(parts) + f" (training split {where}, {len(train)} rows)"
    return out


def _time(text: Any) -> Any:
    import datetime as dt

    return None if text is None else dt.datetime.fromisoformat(str(text))
