"""``mlcd monitor``: production's logged inputs against its version's profile, judged by the
config's ``monitor`` thresholds; a report in the registry (or a folder of one's choice); a drift
notification and, if asked, a retrain. Exit 11 (DriftDetected) when drift passed a threshold.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from mlcd.errors import DriftDetected, MlcdError, UsageError


def stamp(now: dt.datetime | None = None) -> str:
    """A report folder's name: the UTC time to the millisecond (sorts by time)."""
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%S.") + f"{now.microsecond // 1000:03d}Z"


def monitor(
    config: str,
    name: str,
    *,
    since: str | None = None,
    until: str | None = None,
    report_dir: str | None = None,
    log: str | None = None,
    deep: bool = False,
) -> dict[str, Any]:
    """Judge the window and write its report: the verdict (``status``, ``findings``,
    ``report``). It does not raise on drift: ``raise_on_drift`` does, after notifying."""
    from mlcd import registry, storage
    from mlcd.config import load_config
    from mlcd.monitoring import drift, predlog, report

    cfg = load_config(config)
    if name != cfg.name:
        raise UsageError(
            f"{config} describes model {cfg.name!r}, not {name!r}: monitor a model with its own "
            f"pipeline config (--config), whose 'monitor' section holds the thresholds"
        )
    registry.require_model(cfg.publish, name)
    if report_dir is not None and storage.list_dir(report_dir):
        raise UsageError(
            f"--report {report_dir!r} is not empty; give a new or empty folder (a report is "
            "written whole, never over another)"
        )
    now = dt.datetime.now(dt.UTC)
    start = None if since is None else drift.parse_when(since, "--since", now)
    end = None if until is None else drift.parse_when(until, "--until", now)
    if start is not None and end is not None and start >= end:
        raise UsageError(f"--since {since!r} is not before --until {until!r}; swap them")
    result = drift.assess(cfg, since=start, until=end, where=config, location=log)
    if deep and result["status"] != "not enough data":
        result["deep"] = deep_checks(cfg, result)
    folder = report_dir or report.default_folder(cfg.publish, name, stamp(now))
    pngs: dict[str, bytes] = {}
    if result["drifted"]:
        _, profile = drift.production_profile(cfg, config)
        logged = predlog.read(result["log"], since=start, until=end)
        pngs = report.plots(profile, logged, result)
    result["report"] = storage.join(folder, report.REPORT_FILE)
    result["verdict_file"] = storage.join(folder, report.VERDICT_FILE)
    if report_dir is not None and not storage.is_s3(folder) and os.path.isdir(folder):
        os.rmdir(folder)  # empty (checked above): the report folder is put in its place whole
    if not report.write(folder, result, pngs):
        raise UsageError(
            f"{folder!r} already holds a report (another monitor wrote it meanwhile); run again"
        )
    return result


def notify_drift(cfg: Any, result: dict[str, Any]) -> None:
    """A "drift" event to the webhooks of the config's ``notify`` (or luigi.cfg's); a receiver
    that fails costs one warning line, never the verdict."""
    from mlcd import notify

    notify.send(
        "drift",
        cfg.name,
        f"model {cfg.name}, version {result['version']}: {result['message']} "
        f"({result['rows']} logged rows); report {result.get('report')}",
        {
            "version": result["version"],
            "drifted": result["drifted"],
            "rows": result["rows"],
            "since": result["since"],
            "until": result["until"],
            "report": result.get("report"),
        },
        config=cfg,
    )


def raise_on_drift(config: str, result: dict[str, Any], *, retrain: bool) -> dict[str, Any] | None:
    """When ``result`` found drift: notify, retrain if asked (the run's report is returned
    through the error), then raise DriftDetected. Nothing otherwise."""
    if result["status"] != "drift":
        return None
    from mlcd.config import load_config

    cfg = load_config(config)
    notify_drift(cfg, result)
    text = (
        f"model {cfg.name}, version {result['version']}: {result['message']} "
        f"({result['rows']} logged rows); report {result['report']}"
    )
    if not retrain:
        raise DriftDetected(
            text + f". Retrain with `mlcd run --config {config}` (or `mlcd monitor --retrain`)"
        )
    from mlcd.app import run

    try:
        summary = run.run(config, dt.date.today())
    except MlcdError as exc:
        error = DriftDetected(f"{text}; the retrain it started failed: {exc.kind}: {exc}")
        error.report = exc.report
        raise error from None
    error = DriftDetected(f"{text}; retrained: {_retrain_outcome(summary)}")
    error.report = summary
    raise error


def _retrain_outcome(summary: dict[str, Any]) -> str:
    published = summary.get("published") or {}
    version = published.get("version") if isinstance(published, dict) else None
    if version and "PublishModel" in (summary.get("ran") or []):
        return f"version {version} published" + (
            ", now in production" if published.get("promoted") else ""
        )
    return "nothing new was published (every task was already complete)"


def deep_checks(cfg: Any, result: dict[str, Any]) -> dict[str, Any]:
    """deepchecks' FeatureDrift and PredictionDrift on the version's recorded training split
    (when the workspace still has it) against the logged rows: a second opinion, slower, that
    needs the training rows the profile exists to spare."""
    from mlcd.monitoring import deep

    return deep.run(cfg, result)
