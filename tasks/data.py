"""The data steps: extract the source to a content-addressed snapshot, validate it, split it,
validate the split."""

from __future__ import annotations

import datetime as dt
import functools
import time
from typing import Any

import luigi

from mlcd import columns, data, gates, storage, training
from mlcd.config import SourceConfig, load_config
from mlcd.config.model import format_duration
from mlcd.errors import MlcdError, SourceNotReady, StorageError
from tasks.base import (
    ConfigPath,
    PipelineTask,
    SourcePending,
    record_failure,
    report_url,
    say,
)


class SourcePartition(luigi.ExternalTask):
    """The run date's source file (``source.path`` with ``{date}`` filled in), written by
    someone else: complete when it exists."""

    config_path = ConfigPath(description="the pipeline config (YAML)")
    date = luigi.DateParameter(description="the run date: the partition's day")

    @property
    def location(self) -> str:
        path = load_config(self.config_path).source.for_date(self.date).path
        assert path is not None, "a bundled dataset has no partition"
        return path

    def output(self) -> storage.ObjectTarget:
        return storage.target(self.location)


class WaitForSource(SourcePartition):
    """``source.wait``: waits in the graph for the partition to appear, looking every
    ``poll``, and fails with SourceNotReady (exit 12) after ``timeout`` (docs/triggers.md).

    A task that runs rather than an external task that Luigi retries: Luigi would mark an
    absent external dependency FAILED (``retry_external_tasks``), which ends ``mlcd run``'s
    worker, or leave it pending forever (keep_alive). Running, it shows in the web UI with
    what it waits for and until when, and luigid hands it to one worker only."""

    def label(self) -> str:
        return str(self.get_task_family())

    def on_failure(self, exception: BaseException) -> str:
        """The web UI's error: mlcd's one line (the location and the key to change)."""
        if isinstance(exception, MlcdError):
            return f"{exception.kind}: {exception}"
        return str(super().on_failure(exception))

    # ExternalTask.run is None (not runnable); this subclass runs: it is the wait.
    def run(self) -> None:  # type: ignore[override]
        wait = load_config(self.config_path).source.wait
        assert wait is not None
        where, started = self.location, time.monotonic()
        until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait.timeout)
        message = (
            f"waiting for the source of {self.date.isoformat()}, {where}, until "
            f"{until:%Y-%m-%d %H:%M:%S} UTC (source.wait.timeout {format_duration(wait.timeout)}, "
            f"checking every {format_duration(wait.poll)})"
        )
        say(message)
        self.set_status_message(message)
        while not self.output().exists():
            left = wait.timeout - (time.monotonic() - started)
            if left <= 0:
                raise SourceNotReady(
                    f"the source of {self.date.isoformat()}, {where}, did not appear within "
                    f"{format_duration(wait.timeout)}; nothing was published. Write the "
                    "partition and run again, or wait longer: raise source.wait.timeout in "
                    "the config"
                )
            time.sleep(min(wait.poll, left))
        waited = format_duration(time.monotonic() - started)
        say(f"the source of {self.date.isoformat()} is there after {waited}: {where}")
        self.set_status_message(f"{where} appeared after {waited}")


# mlcd run finds the failure's kind and exit code (12) where the pipeline tasks leave theirs.
WaitForSource.event_handler(luigi.Event.FAILURE)(record_failure)


class ExtractData(PipelineTask):
    """Snapshot the source (bundled dataset, CSV or Parquet) as Parquet, with its fingerprint.

    The snapshot is kept by content, ``<workspace>/snapshots/<sha256>.parquet``; this task's own
    folder holds ``extract.json``, which records the digest. It is complete when both exist, and
    the tasks after it read the snapshot through the digest, so a run can be rebuilt from its
    snapshot after the source has changed.
    """

    stage = "extract"
    files = ("extract.json",)

    def snapshot_sha256(self) -> str | None:
        """The digest of the snapshot this task extracted (None before it ran)."""
        if not self.complete():
            return None
        try:
            sha = self.read_json("extract.json").get("snapshot_sha256")
            data.snapshot_path(self.cfg.workspace, sha)  # a well-formed digest
        except (StorageError, AttributeError):
            return None  # unreadable: extract again
        return str(sha)

    def snapshot_path(self) -> str | None:
        sha = self.snapshot_sha256()
        return None if sha is None else data.snapshot_path(self.cfg.workspace, sha)

    def snapshot(self) -> Any:
        """The snapshot as a DataFrame, checked against its digest."""
        sha = self.snapshot_sha256()
        if sha is None:
            raise StorageError(
                f"{self.path('extract.json')!r} is missing or unreadable; run the pipeline again "
                "to extract the source"
            )
        return data.read_snapshot(self.cfg.workspace, sha)

    def roles(self) -> dict[str, dict[str, str]]:
        """The column roles inferred at extraction (with the config's overrides)."""
        roles: dict[str, dict[str, str]] = self.read_json("extract.json")["roles"]
        return roles

    def requires(self) -> Any:
        # With source.wait, the run waits in the graph for the day's partition; without it a
        # missing partition is a data error before anything runs (exit 4), as it always was.
        if self.cfg.source.wait is None:
            return []
        return WaitForSource(config_path=self.config_path, date=self.date)

    def source(self) -> SourceConfig:
        return self.cfg.source.for_date(self.date)

    def source_present(self) -> bool:
        """Whether the source can be read now (a bundled dataset always can)."""
        source = self.source()
        return source.path is None or storage.exists(source.path)

    @functools.cached_property
    def source_fingerprint(self) -> dict[str, Any]:
        """Taken once per run: the source the run's identities were computed from. Before a
        partition that the run waits for (source.wait) has appeared: SourcePending, and every
        task computed from it is not complete yet."""
        if self.cfg.source.wait is not None and not self.source_present():
            raise SourcePending(
                f"source file {self.source().path!r} has not appeared yet; `mlcd run` waits "
                "for it (source.wait) before anything computed from it can be known"
            )
        return data.source_fingerprint(self.source())

    def identity_params(self) -> Any:
        cfg = self.cfg
        fingerprint = self.source_fingerprint
        return {
            "source": fingerprint,
            "target": cfg.target,
            "features": cfg.features,
            "task": cfg.task,
            "columns": cfg.columns,
            "drop_missing": cfg.target_drop_missing,
        }

    def produce(self) -> None:
        cfg = self.cfg
        self.progress(10, "reading the source")
        wanted = None if cfg.features is None else [*cfg.features, cfg.target]
        frame = data.load_source(self.source(), wanted)
        self.progress(60, f"checking {len(frame)} rows")
        snap = data.make_snapshot(frame, cfg)
        dropped = len(frame) - len(snap)
        self.progress(70, "inferring column roles")
        roles = columns.infer_roles(snap, cfg.target, cfg.columns)
        for name, spec in cfg.models().items():
            where = "model" if cfg.candidates is None else f"candidates[{name}]"
            training.check_fits(spec, roles, snap, cfg.target, where)
        blob = data.to_parquet(snap)
        rows, dtypes = len(snap), {c: str(t) for c, t in snap.dtypes.items()}
        del frame, snap  # not kept while the snapshot is written and read back: the peak memory
        sha = data.write_snapshot(cfg.workspace, blob)
        self.wrote("snapshot.parquet", data.snapshot_path(cfg.workspace, sha), blob)
        self.write_json(
            "extract.json",
            {
                "source_fingerprint": self.source_fingerprint,
                "snapshot_sha256": sha,
                "snapshot": f"{data.SNAPSHOTS}/{sha}.parquet",
                "rows": rows,
                "dropped_missing_target": dropped,
                "columns": dtypes,
                "roles": roles,
                "features": columns.features(roles),
            },
        )
        self.result(
            f"{rows} rows"
            + (f" ({dropped} without a target dropped)" if dropped else "")
            + "\n"
            + columns.describe(roles)
        )


class ValidateData(PipelineTask):
    """deepchecks data_integrity on the snapshot: HTML report and JSON verdict."""

    stage = "validate_data"
    files = ("report.html", "verdict.json")
    # Before the split when one worker has the choice: a failed data gate then stops the run
    # before any split work (mlcd.app.worker asks for nothing more after a failure).
    priority = 10

    def requires(self) -> ExtractData:
        return ExtractData(config_path=self.config_path, date=self.date)

    def identity_params(self) -> Any:
        cfg = self.cfg
        return {"suite": cfg.validation.data_integrity.model_dump(), "seed": cfg.split.seed}

    def produce(self) -> None:
        self.set_tracking_url(report_url(self))
        self.progress(5, "running deepchecks data_integrity")
        extract = self.requires()
        snap = extract.snapshot()
        verdict, html = gates.run_suite(
            "data_integrity",
            self.cfg,
            snap,
            roles=extract.roles(),
            progress=self.check_progress(5, 95, "data_integrity"),
        )
        self.write("report.html", html)
        self.write_json("verdict.json", verdict)
        self.judged(verdict)


class SplitData(PipelineTask):
    """Deterministic train/test split (stratified for classification), kept as a mask over the
    snapshot's rows: ``split.parquet`` marks each test row, and the sets are taken from the
    snapshot by whoever reads them (``frames``), so the data is not written twice more.

    It does not wait for ValidateData: the two run side by side, and TrainModel checks both
    gates before it fits (docs/decisions.md)."""

    stage = "split"
    files = ("split.parquet", "split.json")

    def requires(self) -> ExtractData:
        return ExtractData(config_path=self.config_path, date=self.date)

    def identity_params(self) -> Any:
        return {"split": self.cfg.split.model_dump(), "task": self.cfg.task}

    def produce(self) -> None:
        self.progress(20, "splitting")
        extract = self.requires()
        snap = extract.snapshot()
        roles = extract.roles()
        test_rows = data.split_mask(snap, self.cfg, roles)
        by_time = data.split_column(self.cfg, roles)
        tested = int(test_rows.sum())
        self.write("split.parquet", data.mask_to_parquet(test_rows))
        self.write_json(
            "split.json",
            {
                "train_rows": len(snap) - tested,
                "test_rows": tested,
                "snapshot_sha256": extract.snapshot_sha256(),
                "seed": self.cfg.split.seed,
                "by_time": by_time,
            },
        )
        self.result(
            f"train {len(snap) - tested} rows, test {tested} rows"
            + (f" (the newest by {by_time})" if by_time else " (at random)")
        )

    def rows(self, which: str) -> Any:
        """The ``train`` or the ``test`` set, in the snapshot's row order: a copy of those rows
        (the snapshot itself is read once per process)."""
        name = "split.parquet"
        where = self.path(name)
        blob = storage.verified(
            self.read(name),
            (self.seal() or {}).get(name, {}).get("sha256"),
            lambda actual: (
                f"{where!r} does not match the digest its task recorded (its sha256 is "
                f"{actual[:12]}): it was changed or corrupted. Delete its folder and run the "
                "pipeline again"
            ),
        )
        mask = data.mask_from_parquet(blob, where)
        return data.split_rows(self.requires().snapshot(), mask, which)

    def frames(self) -> tuple[Any, Any]:
        """The training and the test set."""
        return self.rows("train"), self.rows("test")


class ValidateSplit(PipelineTask):
    """deepchecks train_test_validation: drift and leakage between train and test."""

    stage = "validate_split"
    files = ("report.html", "verdict.json")

    def requires(self) -> SplitData:
        return SplitData(config_path=self.config_path, date=self.date)

    def identity_params(self) -> Any:
        cfg = self.cfg
        return {"suite": cfg.validation.train_test.model_dump(), "seed": cfg.split.seed}

    def produce(self) -> None:
        self.set_tracking_url(report_url(self))
        self.progress(5, "running deepchecks train_test_validation")
        enabled = self.cfg.validation.train_test.enabled
        train, test = self.requires().frames() if enabled else (None, None)
        roles = ExtractData(config_path=self.config_path, date=self.date).roles()
        verdict, html = gates.run_suite(
            "train_test",
            self.cfg,
            train,
            test,
            roles=roles,
            progress=self.check_progress(5, 95, "train_test"),
        )
        self.write("report.html", html)
        self.write_json("verdict.json", verdict)
        self.judged(verdict)
