"""Watching production in the task graph: the drift of what the model in production received in a
window ending with the run date, judged against its version's profile (docs/monitoring.md).

    luigi --module tasks MonitorDrift --config-path config/churn.yaml --date 2026-12-03 --since 7d
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from typing import Any

import luigi

from mlcd import registry, storage
from mlcd.errors import DriftDetected
from mlcd.monitoring import drift
from tasks.base import PipelineTask


class MonitorDrift(PipelineTask):
    """The drift verdict (``drift.json``) of the logged rows from ``since`` to the end of
    ``date`` (UTC). Its identity digests the monitor config, the version in production, the
    window and the names of the log files it reads (each is written once), so new rows or a
    new version give a new verdict and an unchanged log finds the task complete.

    On drift the verdict is written but the task is not sealed and fails with DriftDetected
    (exit code 11 through ``mlcd run``'s failure record): it fails again on every run until the
    log or the version in production changes."""

    since = luigi.Parameter(
        default="7d",
        description="start of the window: a date, a UTC time, or a duration back from the end "
        "of --date (7d, 24h)",
    )

    stage = "monitor"
    files = ("drift.json",)

    @property
    def retry_count(self) -> int:
        """One failure disables the task for this run: the same log gives the same verdict,
        so luigi.cfg's retry after retry_delay would only repeat it a minute later."""
        return 1

    @cached_property
    def window(self) -> tuple[dt.datetime, dt.datetime]:
        end = dt.datetime.combine(self.date, dt.time(), tzinfo=dt.UTC) + dt.timedelta(days=1)
        return drift.parse_when(str(self.since), "--since", end), end

    def identity_params(self) -> Any:
        cfg = self.cfg
        start, end = self.window
        location = drift.log_location(cfg)
        params: dict[str, Any] = {
            "monitor": cfg.monitor.model_dump(mode="json"),
            "version": registry.production_version(cfg.publish, cfg.name),
            "since": start.isoformat(),
            "until": end.isoformat(),
            "log": location,
            "files": drift.log_files(location, start, end),
        }
        labels = cfg.monitor.labels
        if labels is not None and storage.exists(labels.path):
            params["labels"] = storage.describe(labels.path)
        return params

    def produce(self) -> None:
        cfg = self.cfg
        start, end = self.window
        self.progress(10, f"reading the prediction log from {start.isoformat()}")
        result = drift.assess(cfg, since=start, until=end, where=str(self.config_path))
        self.write_json("drift.json", result)
        self.result(f"{result['status']}: {result.get('message', '')}")
        if result["status"] == "drift":
            # Not sealed: the verdict is there to read, and the next run judges again.
            raise DriftDetected(
                f"model {cfg.name}, version {result['version']}: {result['message']} "
                f"({result['rows']} logged rows); verdict {self.path('drift.json')}"
            )
