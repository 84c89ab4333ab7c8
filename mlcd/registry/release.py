"""A retrain's result becoming a version: the files a version holds, and the policy that puts a
new version in production (a run promotes what it published, once)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcd import storage
from mlcd.registry.layout import EXAMPLE_FILE, MODEL_FILE, PROFILE_FILE, SCHEMA_FILE
from mlcd.registry.production import ever_promoted
from mlcd.registry.promote import set_production
from mlcd.registry.versions import input_example, publish_version, read_manifest

if TYPE_CHECKING:
    import pandas as pd


def bundle(
    *,
    model: bytes,
    metrics: bytes,
    predictions: bytes,
    verdict: dict[str, Any],
    plots: dict[str, bytes],
    reports: dict[str, bytes],
    train_info: dict[str, Any],
    target: str,
    task: str,
    test: pd.DataFrame,
    profile: bytes,
) -> dict[str, bytes]:
    """A version's files by relative path: the model, its metrics, predictions, verdict, plots,
    the three deepchecks reports, its input schema, an input example and the reference profile
    of its training data (``mlcd.monitoring.profile``)."""
    files: dict[str, bytes] = {
        MODEL_FILE: model,
        "metrics.json": metrics,
        "predictions.parquet": predictions,
        "verdict.json": storage.dumps_json(verdict),
    }
    for name, png in plots.items():
        files[f"plots/{name}"] = png
    for report, html in reports.items():
        files[f"reports/{report}.html"] = html
    files[SCHEMA_FILE] = storage.dumps_json(
        {
            "features": train_info["features"],
            "dtypes": train_info["dtypes"],
            "target": target,
            "task": task,
            "columns": train_info.get("contract", {}),
            "nulls_ok": train_info.get("nulls_ok", []),
        }
    )
    # A few test rows in the body format of POST /predict (mlcd serve); see docs/serving.md.
    files[EXAMPLE_FILE] = input_example(test, train_info["features"])
    files[PROFILE_FILE] = profile
    return files


def release(
    publish: str,
    name: str,
    version: str,
    files: dict[str, bytes],
    manifest: dict[str, Any],
    *,
    reason: str,
    extra: dict[str, Any],
) -> tuple[bool, bool]:
    """Publish ``version`` and, unless it was already promoted once, put it in production:
    (whether this call wrote the version, whether it moved production to it).

    A version another publisher wrote first is promoted by whichever run gets there if it never
    was; one that was promoted and later rolled back is not promoted again by a rerun. A run
    never moves production back in time: a version whose run date is older than production's
    is published and left out of production (a backfill; docs/triggers.md)."""
    created = publish_version(publish, name, version, files, manifest)
    if not created:  # another publisher's: promoted only when whole and of this version
        read_manifest(publish, name, version)
    promote = created or not ever_promoted(publish, name, version)
    if promote:
        run_date = manifest.get("run_date")
        moved = set_production(
            publish,
            name,
            version,
            actor="run",
            reason=reason,
            extra=extra,
            run_date=run_date if isinstance(run_date, str) else None,
        )
        promote = moved is not None
    return created, promote
