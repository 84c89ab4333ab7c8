"""``mlcd run``: one retrain of a config for a date, built by Luigi, summarised and recorded.

A bad config, a missing source or a column the data lacks ends before Luigi runs anything; a
run with the local scheduler holds a lock on (config, date); every run, failed or not, leaves a
manifest under ``<workspace>/runs/<run-id>/``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import socket
import sys
import tempfile
from typing import Any

from mlcd import storage
from mlcd.errors import (
    AlreadyRunning,
    MlcdError,
    PipelineFailed,
    SchedulerUnreachable,
    TaskFailed,
)


def scheduler_kwargs(host: str | None, port: int | None, local: bool) -> dict[str, Any]:
    """What ``luigi.build`` is told about the scheduler: luigid at ``host`` (or luigi.cfg's
    ``[core] default_scheduler_host``), else the local scheduler."""
    import luigi.configuration

    conf = luigi.configuration.get_config()
    if host is None and not local:
        if conf.has_option("core", "default_scheduler_host"):
            host = conf.get("core", "default_scheduler_host")
    if host is None:
        return {"local_scheduler": True}
    kwargs: dict[str, Any] = {"local_scheduler": False, "scheduler_host": host}
    if port is not None:
        kwargs["scheduler_port"] = port
    elif conf.has_option("core", "default_scheduler_port"):
        kwargs["scheduler_port"] = conf.getint("core", "default_scheduler_port")
    return kwargs


# Seconds to wait for luigid to accept a connection before the run gives up on it. Luigi itself
# would retry its first call for a minute, printing a traceback for every attempt.
SCHEDULER_CONNECT_TIMEOUT = 5.0


def check_scheduler(scheduler: dict[str, Any]) -> None:
    """SchedulerUnreachable, naming the host and port, unless luigid accepts a connection."""
    if scheduler["local_scheduler"]:
        return
    host, port = scheduler["scheduler_host"], int(scheduler.get("scheduler_port", 8082))
    try:
        socket.create_connection((host, port), timeout=SCHEDULER_CONNECT_TIMEOUT).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise SchedulerUnreachable(
            f"luigid does not answer at {host}:{port} ({reason}); start it (`make luigid`), "
            "fix --scheduler-host/--scheduler-port or luigi.cfg's [core] default_scheduler_host, "
            "or run with --local-scheduler"
        ) from None


class _HideKnownErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, MlcdError)


def _hide_known_errors() -> None:
    # A known error ends with mlcd's one-line message; luigi's traceback adds nothing.
    interface = logging.getLogger("luigi-interface")
    if not any(isinstance(f, _HideKnownErrors) for f in interface.filters):
        interface.addFilter(_HideKnownErrors())


def run(
    config: str,
    date: dt.date,
    *,
    workers: int = 1,
    scheduler_host: str | None = None,
    scheduler_port: int | None = None,
    local_scheduler: bool = False,
) -> dict[str, Any]:
    """Run the pipeline of ``config`` for ``date``: the run's report (``mlcd.app.report``).
    TaskFailed or PipelineFailed, carrying the report, when it did not complete; a failure no
    task has notified (it happened before any task ran) is sent as ``run_failed`` here."""
    try:
        return _run(
            config,
            date,
            workers=workers,
            scheduler_host=scheduler_host,
            scheduler_port=scheduler_port,
            local_scheduler=local_scheduler,
        )
    except MlcdError as exc:
        _notify_failure(config, date, exc)
        raise


def _notify_failure(config: str, date: dt.date, error: MlcdError) -> None:
    """``run_failed`` for a run that failed before any task ran (a failed task sent its own:
    tasks/notify.py)."""
    from mlcd import notify
    from mlcd.config import load_config

    failures = (error.report or {}).get("failures") or []
    if any(f.get("during", "run") == "run" for f in failures):
        return
    try:
        cfg: Any = load_config(config)
        name = cfg.name
    except MlcdError:
        cfg, name = None, os.path.basename(config)  # a bad config: luigi.cfg's webhooks
    details = {
        "run_date": date.isoformat(),
        "kind": error.kind,
        "exit_code": error.exit_code,
        "message": str(error),
        "config": config,
    }
    text = f"mlcd: {name} ({date.isoformat()}) failed: {error.kind}: {error}"
    notify.send("run_failed", name, text, details, config=cfg)


def _run(
    config: str,
    date: dt.date,
    *,
    workers: int,
    scheduler_host: str | None,
    scheduler_port: int | None,
    local_scheduler: bool,
) -> dict[str, Any]:
    from mlcd import data
    from mlcd.config import load_config

    cfg = load_config(config)  # a bad config ends here, before luigi is imported
    import tasks

    _hide_known_errors()
    # A missing source or a column the config names but the data lacks ends here too, in one
    # line: the source is looked at only when it would be extracted (the task Luigi checks next).
    # A source the run waits for (source.wait) is checked by ExtractData once it is there.
    extract = tasks.ExtractData(config_path=config, date=date)
    if not extract.complete() and extract.source_present():
        data.check_columns(cfg, data.source_columns(extract.source()))
    root = tasks.RetrainPipeline(config_path=config, date=date)
    if not root.complete():  # an S3 store that would let writers race ends here, before work
        for location in (cfg.workspace, cfg.publish):
            storage.check_conditional_writes(location)
    if workers > 1 and not root.complete():
        _preload(cfg)
    scheduler = scheduler_kwargs(scheduler_host, scheduler_port, local_scheduler)
    try:
        check_scheduler(scheduler)
    except SchedulerUnreachable as exc:
        _record_unstarted(root, exc, workers=workers, scheduler=scheduler)
        raise
    with contextlib.ExitStack() as stack:
        if scheduler["local_scheduler"]:
            # luigid keeps two runs of one date from running a task twice; without it, the lock.
            take_run_lock(stack, config, date)
        return build_and_report(root, workers=workers, scheduler=scheduler)


def _preload(cfg: Any) -> None:
    """Import what the tasks will need before Luigi forks a process per task: the forks share
    the parent's modules instead of each importing scikit-learn (1 s) and deepchecks (4 s)."""
    from mlcd.config import import_object

    for spec in cfg.models().values():
        import_object(spec.estimator)
    if any(getattr(cfg.validation, suite).enabled for suite in type(cfg.validation).model_fields):
        import mlcd.gates.compat  # noqa: F401, I001  (first: mends deepchecks for the current stack)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401


def take_run_lock(stack: contextlib.ExitStack, config: str, date: dt.date) -> None:
    """An exclusive lock on (config, date) for runs with the local scheduler, held until
    ``stack`` closes; the kernel drops it when the holder dies, so no lock goes stale."""
    key = hashlib.sha256(f"{os.path.realpath(config)}|{date.isoformat()}".encode()).hexdigest()
    path = os.path.join(tempfile.gettempdir(), "mlcd-locks", f"{key[:24]}.lock")
    try:
        stack.enter_context(storage.exclusive_lock(path, {"pid": os.getpid()}, wait=0))
    except AlreadyRunning as exc:
        raise AlreadyRunning(
            f"another mlcd run of {config} for {date.isoformat()} is running ({exc}); wait for "
            "it to finish, or run both through luigid (--scheduler-host), which runs each task "
            "once"
        ) from None


def execute(
    root: Any, *, workers: int, scheduler: dict[str, Any], run_id: str
) -> tuple[Any, list[dict[str, Any]]]:
    """Build ``root`` with Luigi as run ``run_id``: Luigi's result, and the failures the tasks
    recorded (in whichever worker process they ran)."""
    import luigi

    from mlcd.app.worker import Factory
    from mlcd.lineage import RUN_ID_ENV
    from tasks.base import FAILURE_LOG_ENV, THREADS_ENV

    _hide_known_errors()
    with tempfile.NamedTemporaryFile("w+", prefix="mlcd-failures-", suffix=".jsonl") as log:
        os.environ[FAILURE_LOG_ENV] = log.name
        os.environ[RUN_ID_ENV] = run_id  # PublishModel records it in the version's manifest
        if workers > 1 and len(root.requires().cfg.models()) > 1:
            # Only candidates run side by side; a lone task keeps every core for its fit.
            os.environ[THREADS_ENV] = str(max(1, (os.cpu_count() or 1) // workers))
        factory = Factory()
        try:
            result = luigi.build(
                [root],
                worker_scheduler_factory=factory,
                detailed_summary=True,
                workers=workers,
                log_level="WARNING",
                **scheduler,
            )
        finally:
            os.environ.pop(FAILURE_LOG_ENV, None)
            os.environ.pop(RUN_ID_ENV, None)
            os.environ.pop(THREADS_ENV, None)
        log.seek(0)
        failures = [json.loads(line) for line in log if line.strip()]
    for worker in factory.workers:
        failures += worker.failures_elsewhere(failures)
    return result, failures


def record_run(
    root: Any,
    report: dict[str, Any],
    *,
    run_id: str,
    started_at: dt.datetime,
    exit_code: int,
    scheduler: dict[str, Any],
    workers: int,
) -> str | None:
    """Write the run's manifest to ``<workspace>/runs/<run-id>/``; its path (None, with a
    warning, if it cannot be written: the run's own outcome stands)."""
    from mlcd import lineage
    from tasks.manifest import run_manifest

    try:
        manifest = run_manifest(
            root,
            report,
            run_id=run_id,
            started_at=started_at,
            exit_code=exit_code,
            scheduler=scheduler,
            workers=workers,
        )
        return lineage.write_run_manifest(root.requires().cfg.workspace, manifest)
    except Exception as exc:
        print(f"mlcd: warning: run {run_id}'s manifest was not written: {exc}", file=sys.stderr)
        return None


def _record_unstarted(
    root: Any, error: MlcdError, *, workers: int, scheduler: dict[str, Any]
) -> None:
    """The manifest of a run that ended before Luigi ran anything."""
    from mlcd import lineage

    failure = {
        "task": None,
        "kind": error.kind,
        "exit_code": error.exit_code,
        "message": str(error),
    }
    record_run(
        root,
        {"ok": False, "failures": [failure]},
        run_id=lineage.new_run_id(),
        started_at=dt.datetime.now(dt.UTC),
        exit_code=error.exit_code,
        scheduler=scheduler,
        workers=workers,
    )


def run_error(report: dict[str, Any], failures: list[dict[str, Any]]) -> MlcdError | None:
    """What a run that did not complete ends with: the error of the first task that failed, or
    PipelineFailed; None for a complete run."""
    if report["ok"]:
        return None
    if failures:
        first = failures[0]
        return TaskFailed(
            str(first["kind"]), int(first["exit_code"]), f"{first['task']}: {first['message']}"
        )
    return PipelineFailed(
        f"the pipeline did not finish (luigi status: {report['status']}); see the log above"
    )


def build_and_report(root: Any, *, workers: int, scheduler: dict[str, Any]) -> dict[str, Any]:
    """Build ``root``, record the run and return its report; when it did not complete, raise
    the error of the first task that failed (or PipelineFailed) with the report attached."""
    from mlcd import lineage
    from mlcd.app.report import collect, outline

    run_id = lineage.new_run_id()
    started_at = dt.datetime.now(dt.UTC)
    result, failures = execute(root, workers=workers, scheduler=scheduler, run_id=run_id)
    try:
        report = collect(root, result, failures)
    except MlcdError:
        if not failures:
            raise
        # The summary reads every task's outputs again; when the store went away mid-run that
        # fails too, and would hide what failed first: the task's own error is the run's.
        report = outline(root, result, failures, ok=False)
    error = run_error(report, failures)
    code = 0 if error is None else error.exit_code
    report["run_id"] = run_id
    report["run_manifest"] = record_run(
        root,
        report,
        run_id=run_id,
        started_at=started_at,
        exit_code=code,
        scheduler=scheduler,
        workers=workers,
    )
    if error is not None:
        error.report = report
        raise error
    return report
