"""What every mlcd task shares: its parameters, its identity and where its outputs live."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import sys
from typing import Any, ClassVar

import luigi
from luigi.target import FileSystemTarget
from luigi.task import flatten

from mlcd import storage
from mlcd.config import PipelineConfig, load_config
from mlcd.errors import MlcdError, PipelineFailed
from mlcd.fingerprint import task_identity


class PipelineTask(luigi.Task):
    """A step of the retrain pipeline, configured by one YAML file.

    Its outputs live in ``<workspace>/<stage>/<identity>/``, where the identity digests the
    task's own configuration and the identities of the inputs it is computed from. The run date
    is a parameter (for cron and the scheduler) but not part of the identity: a rerun on another
    day with unchanged data and config finds everything complete.
    """

    config_path = luigi.Parameter(description="the pipeline config (YAML)")
    date = luigi.DateParameter(default=dt.date.today(), description="the run date (for cron)")

    stage: ClassVar[str] = ""
    files: ClassVar[tuple[str, ...]] = ()

    @property
    def cfg(self) -> PipelineConfig:
        return load_config(self.config_path)

    def identity_params(self) -> Any:
        """The part of the configuration that shapes this task's outputs."""
        return {}

    def identity_inputs(self) -> list[PipelineTask]:
        """The tasks whose outputs this one is computed from (by default, all it requires)."""
        return [t for t in flatten(self.requires()) if isinstance(t, PipelineTask)]

    @functools.cached_property
    def identity(self) -> str:
        return task_identity(
            self.get_task_family(),
            self.identity_params(),
            [t.identity for t in self.identity_inputs()],
        )

    def folder(self) -> str:
        return storage.join(self.cfg.workspace, self.stage, self.identity)

    def output(self) -> dict[str, FileSystemTarget]:
        return {name: storage.target(storage.join(self.folder(), name)) for name in self.files}

    def path(self, name: str) -> str:
        target = self.output()[name]
        return str(target.path)

    def write(self, name: str, data: bytes) -> None:
        storage.write_bytes(self.path(name), data)

    def write_json(self, name: str, obj: Any) -> None:
        storage.write_json(self.path(name), obj)

    def artifacts(self) -> dict[str, str]:
        """Every file this task writes, by name: its outputs and the files they point to (run
        manifests record and compare them)."""
        return {name: str(target.path) for name, target in self.output().items()}

    def label(self) -> str:
        """How logs and summaries name this task."""
        return str(self.get_task_family())

    def progress(self, percent: int, message: str) -> None:
        """Shown in the Luigi web UI while the task runs."""
        self.set_progress_percentage(percent)
        self.set_status_message(message)


def _say(message: str) -> None:
    # One line per event on stderr, with the time, so that logs of several workers interleave
    # readably (and cron's log shows how long each step took).
    now = dt.datetime.now().strftime("%H:%M:%S.%f")[:-3]
    print(f"mlcd: {message} at {now}", file=sys.stderr, flush=True)


@PipelineTask.event_handler(luigi.Event.START)
def _announce_start(task: PipelineTask) -> None:
    _say(f"{task.label()} started ({task.identity})")


@PipelineTask.event_handler(luigi.Event.PROCESSING_TIME)
def _announce_time(task: PipelineTask, seconds: float) -> None:
    import resource

    # The process's peak so far: per task when Luigi runs each task in its own process
    # (--workers > 1), the run's running peak otherwise.
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _say(f"{task.label()} finished in {seconds:.1f}s (peak RSS {peak_mb:.0f} MB)")


@PipelineTask.event_handler(luigi.Event.FAILURE)
def _record_failure(task: PipelineTask, exception: BaseException) -> None:
    """Keep the failure's kind and exit code where ``mlcd run`` finds it (in any worker process)."""
    if isinstance(exception, MlcdError):
        kind, code, message = exception.kind, exception.exit_code, str(exception)
    else:
        kind, code = PipelineFailed.kind, PipelineFailed.exit_code
        message = f"{type(exception).__name__}: {exception}"
    path = os.environ.get("MLCD_FAILURE_LOG")
    if path:
        line = json.dumps(
            {"task": task.label(), "kind": kind, "exit_code": code, "message": message}
        )
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


@PipelineTask.event_handler(luigi.Event.SUCCESS)
@PipelineTask.event_handler(luigi.Event.FAILURE)
def _release_joblib_workers(task: PipelineTask, *args: Any) -> None:
    """Stop joblib's reusable loky workers when a task ends.

    With ``--workers`` > 1 Luigi runs each task in a forked process, which on exit waits for
    its child processes; idle loky workers (started by an estimator or search with n_jobs) only
    leave after a timeout of minutes, so the run would hang long after its last task.
    """
    module = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(module, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=True, kill_workers=True)
