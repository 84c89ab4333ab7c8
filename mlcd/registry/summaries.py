"""What a version is, for people: when it was made, from what, its metrics and its gates."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from mlcd import storage
from mlcd.errors import StorageError
from mlcd.registry.layout import METRICS_FILE, VERDICT_FILE, version_dir, version_ids
from mlcd.registry.production import production, promotions
from mlcd.registry.versions import read_manifest

if TYPE_CHECKING:
    pass


def gates_summary(verdict: Any) -> dict[str, Any]:
    """Whether a version passed its gates, and each stage's blocking failures."""
    if not isinstance(verdict, dict):
        return {"passed": False, "stages": {}, "problem": "no verdict recorded"}
    raw = verdict.get("stages")
    stages: dict[str, Any] = raw if isinstance(raw, dict) else {}
    out = {
        stage: {
            "passed": bool(v.get("passed")) if isinstance(v, dict) else False,
            "blocking_failures": list(v.get("blocking_failures") or [])
            if isinstance(v, dict)
            else [],
        }
        for stage, v in sorted(stages.items())
    }
    passed = verdict.get("passed") is True and all(s["passed"] for s in out.values())
    return {"passed": passed, "stages": out}


def gate_failures(gates: dict[str, Any]) -> str:
    """The blocking failures of a gates summary, for a message."""
    if gates.get("problem"):
        return str(gates["problem"])
    failures = [
        f"{stage}: {', '.join(s['blocking_failures']) or 'failed'}"
        for stage, s in gates.get("stages", {}).items()
        if not s["passed"]
    ]
    return "; ".join(failures) or "the verdict is not marked passed"


def _headline_metric(verdict: Any) -> str | None:
    """The metric the pipeline ranked and compared this version on."""
    if not isinstance(verdict, dict):
        return None
    if isinstance(verdict.get("selection_metric"), str):
        return str(verdict["selection_metric"])
    stage = (verdict.get("stages") or {}).get("model_evaluation") or {}
    for gate in stage.get("gates") or []:
        if isinstance(gate, dict) and gate.get("kind") == "champion" and gate.get("metric"):
            return str(gate["metric"])
    return None


def estimator_of(manifest: dict[str, Any]) -> tuple[str | None, Any]:
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    assert isinstance(config, dict)
    model = config.get("model")
    if not isinstance(model, dict):
        model = next(
            (
                c
                for c in config.get("candidates") or []
                if isinstance(c, dict) and c.get("name") == manifest.get("candidate")
            ),
            None,
        )
    if not isinstance(model, dict):
        return None, None
    return model.get("estimator"), model.get("params")


def read_optional_json(path: str) -> Any:
    try:
        return storage.read_json(path) if storage.exists(path) else None
    except StorageError:
        return None


def _sort_time(stamp: str | None) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(stamp or "")
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def version_summary(
    publish: str,
    name: str,
    version: str,
    *,
    records: list[dict[str, Any]] | None = None,
    current: str | None = None,
) -> dict[str, Any]:
    """What a version is: when it was made, from what, its metrics and gates. A damaged version
    is summarised too, with its ``problem``."""
    records = records if records is not None else promotions(publish, name)
    folder = version_dir(publish, name, version)
    info: dict[str, Any] = {
        "model": name,
        "version": version,
        "path": folder,
        "created_at": None,
        "run_date": None,
        "candidate": None,
        "estimator": None,
        "params": None,
        "metrics": {},
        "headline_metric": None,
        "gates": {"passed": False, "stages": {}},
        "production": version == current,
        "promotions": sum(1 for r in records if r.get("version") == version),
        "problem": None,
    }
    try:
        manifest = read_manifest(publish, name, version)
    except StorageError as exc:
        info["problem"] = str(exc)
        manifest = {}
    created = manifest.get("created_at")
    if not isinstance(created, str):
        # Versions published before mlcd recorded it: their first promotion, or the folder.
        created = next(
            (r["at"] for r in records if r.get("version") == version and "at" in r), None
        )
    if not isinstance(created, str):
        stamp = storage.modified_at(folder) if storage.exists(folder) else 0.0
        created = dt.datetime.fromtimestamp(stamp, dt.UTC).isoformat(timespec="seconds")
    verdict = read_optional_json(storage.join(folder, VERDICT_FILE))
    metrics = manifest.get("metrics")
    if not isinstance(metrics, dict):
        metrics = read_optional_json(storage.join(folder, METRICS_FILE)) or {}
    estimator, params = estimator_of(manifest)
    info.update(
        created_at=created,
        run_date=manifest.get("run_date"),
        candidate=manifest.get("candidate"),
        estimator=estimator,
        params=params,
        metrics=metrics,
        headline_metric=_headline_metric(verdict),
        gates=gates_summary(verdict),
    )
    return info


def list_versions(publish: str, name: str) -> list[dict[str, Any]]:
    """Every version of a model, oldest first, each summarised (see version_summary)."""
    records = promotions(publish, name)
    try:
        pointer = production(publish, name)
    except StorageError:
        pointer = None
    current = pointer["version"] if pointer else None
    infos = [
        version_summary(publish, name, v, records=records, current=current)
        for v in version_ids(publish, name)
    ]
    infos.sort(key=lambda i: (_sort_time(i["created_at"]), i["version"]))
    return infos


def metric_deltas(new: Any, old: Any) -> dict[str, dict[str, float]]:
    """Each metric both versions recorded: its value before, after, and the difference."""
    from mlcd.catalogue import METRICS

    if not isinstance(new, dict) or not isinstance(old, dict):
        return {}
    known = {m for task in METRICS.values() for m in task}
    out = {}
    for metric in sorted(known & set(new) & set(old)):
        before, after = old[metric], new[metric]
        if isinstance(before, bool) or isinstance(after, bool):
            continue
        if isinstance(before, int | float) and isinstance(after, int | float):
            out[metric] = {
                "from": before,
                "to": after,
                "delta": float(f"{after - before:.12g}"),
            }
    return out
