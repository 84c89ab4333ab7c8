"""What every mlcd task shares: its parameters, its identity and where its outputs live."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import sys
from typing import Any, ClassVar

import luigi
from luigi.task import flatten

from mlcd import storage
from mlcd.config import PipelineConfig, load_config
from mlcd.errors import DataError, GateFailed, MlcdError, PipelineFailed, StorageError
from mlcd.fingerprint import task_identity

# Written last into a task's folder; see PipelineTask._seal.
SEAL = "_SUCCESS.json"


class SourcePending(DataError):
    """The run date's source partition, which the run waits for (``source.wait``), is not
    there yet: the identities computed from it cannot be known, so no such task is complete."""


class ConfigPath(luigi.Parameter):
    """The pipeline config, as its real absolute path: the scheduler tells tasks apart by their
    parameters, so two checkouts that both run ``config/pipeline.yaml`` through one luigid must
    not name the same task (the other checkout's run would seem to have done this one's work)."""

    def normalize(self, x: Any) -> Any:
        return os.path.realpath(x) if isinstance(x, str) else x


class PipelineTask(luigi.Task):
    """A step of the retrain pipeline, configured by one YAML file.

    Its outputs live in ``<workspace>/<stage>/<identity>/``, where the identity digests the
    task's own configuration and the identities of the inputs it is computed from. The run date
    is a parameter (for cron and the scheduler) but not part of the identity: a rerun on another
    day with unchanged data and config finds everything complete.

    ``run()`` calls the task's ``produce()``, then writes the seal, ``_SUCCESS.json``: the list
    of outputs with their digests. A task is complete when it is sealed and what the seal lists
    is there; on S3 that costs one GET and one LIST, whatever the number of outputs.
    """

    config_path = ConfigPath(description="the pipeline config (YAML)")
    date = luigi.DateParameter(default=dt.date.today(), description="the run date (for cron)")

    stage: ClassVar[str] = ""
    files: ClassVar[tuple[str, ...]] = ()
    seal_file: ClassVar[str] = SEAL

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

    def output(self) -> dict[str, storage.ObjectTarget]:
        names = (*self.files, SEAL)
        return {name: storage.target(storage.join(self.folder(), name)) for name in names}

    def path(self, name: str) -> str:
        target = self.output()[name]
        return str(target.path)

    # --- running: outputs are written, then sealed --------------------------------------------

    def run(self) -> None:
        self._written: dict[str, tuple[str, dict[str, Any]]] = {}
        self._result = "done"
        self._blocked: GateFailed | None = None
        if self.__dict__.pop("_source_pending", False) and self._complete():
            self.__dict__["_found_complete"] = True  # nothing new: nothing to announce
            self.progress(100, "already complete: its source held data seen before")
            return
        from mlcd import data

        with _cpu_share(), data.keeping_frames():
            self.produce()
        self._seal()
        self.progress(100, self._result)  # what it found, not the last step's text
        if self._blocked is not None:
            raise self._blocked  # sealed first: a rerun does not judge again, the next task refuses

    def judged(self, verdict: dict[str, Any], *, blocks: bool = True) -> None:
        """A validation task's verdict: its headline is the task's result and, when a blocking
        gate failed and ``blocks``, the task fails once sealed, so the Luigi web UI shows the
        failed gate red on the task that judged it. (A candidate of a grid does not block: the
        best passing candidate is still published.)"""
        from mlcd import gates

        self.result(gates.headline(verdict))
        if blocks and not verdict["passed"]:
            self._blocked = GateFailed(
                verdict["stage"], verdict["blocking_failures"], self.path("verdict.json")
            )

    def result(self, message: str) -> None:
        """The finished task's status in the Luigi web UI: its result (metrics, a verdict,
        the version published), set once its outputs are sealed."""
        self._result = message

    def on_failure(self, exception: BaseException) -> str:
        """What the Luigi web UI shows of a failure: mlcd's own errors as their one line, the
        problem first (a gate's name, a column), not at the end of a traceback."""
        if isinstance(exception, MlcdError):
            return f"{exception.kind}: {exception}"
        return str(super().on_failure(exception))

    def check_progress(self, low: int, high: int, suite: str) -> Any:
        """A ``progress`` callback for ``gates.run_suite``: each check, between ``low`` and
        ``high`` percent."""

        def report(done: int, total: int, check: str) -> None:
            percent = low + (high - low) * done // max(total, 1)
            self.progress(percent, f"deepchecks {suite}: check {done + 1} of {total}: {check}")

        return report

    def produce(self) -> None:
        """The task's work: read the inputs, call mlcd, write every output with ``write``."""
        raise NotImplementedError

    def write(self, name: str, data: bytes) -> None:
        self.write_at(name, self.path(name), data)

    def write_json(self, name: str, obj: Any) -> None:
        self.write(name, storage.dumps_json(obj))

    def write_at(self, name: str, path: str, data: bytes) -> None:
        """Write an output that lives at ``path`` (outside the task's folder, or in a
        sub-folder), recorded in the seal as ``name``."""
        storage.write_bytes(path, data)
        self.wrote(name, path, data)

    def wrote(self, name: str, path: str, data: bytes) -> None:
        """Record an output written by other means (content-addressed, or published)."""
        from mlcd.lineage import content_record

        record = content_record(self.get_task_family(), name, data)
        if path.startswith(self.folder() + "/") and name.endswith(".json") and len(data) < 65536:
            # Small JSON outputs (verdicts, metrics, records) ride in the seal too, so reading
            # a finished task's costs nothing more than checking that it is complete.
            try:
                record["content"] = json.loads(data)
            except ValueError:
                pass
        self._written[name] = (path, record)

    def _roots(self) -> dict[str, str]:
        cfg = self.cfg
        return {"folder": self.folder(), "workspace": cfg.workspace, "publish": cfg.publish}

    def _seal(self) -> None:
        # Written last: its presence says every output is whole. It lists where each output is
        # (relative to the task's folder, the workspace or the registry, so a copied workspace
        # stays valid) and its digest, so a run's manifest needs no second read of the outputs.
        outputs = {}
        for name, (path, record) in self._written.items():
            root, rel = next(
                (
                    (r, path[len(base) + 1 :])
                    for r, base in self._roots().items()
                    if path.startswith(base.rstrip("/") + "/")
                ),
                ("absolute", path),
            )
            outputs[name] = {"root": root, "path": rel, **record}
        storage.write_json(
            self.path(SEAL),
            {"task": self.label(), "identity": self.identity, "outputs": outputs},
        )

    # --- reading what a run left ---------------------------------------------------------------

    def seal(self) -> dict[str, Any] | None:
        """The seal's record of the outputs (None when the task has not finished)."""
        cached = self.__dict__.get("_seal_record")
        if cached is not None:
            return dict(cached)
        found = storage.fetch(self.path(SEAL))
        if found is None:
            return None
        roots = self._roots()
        try:
            outputs = json.loads(found[0])["outputs"]
            for record in outputs.values():
                root, rel = record.pop("root"), record.pop("path")
                record["location"] = rel if root == "absolute" else storage.join(roots[root], rel)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # damaged: the task runs again and writes a whole one
        self.__dict__["_seal_record"] = outputs
        return dict(outputs)

    def complete(self) -> bool:
        """Sealed, and every output the seal lists is still there. Outputs never change once
        sealed (their folder is named by their inputs), so a True answer is kept."""
        try:
            return self._complete()
        except SourcePending:
            # Computed from a partition the run waits for (tasks.WaitForSource): looked at
            # again when it runs, as the partition may hold data seen before.
            self.__dict__["_source_pending"] = True
            return False
        except MlcdError as exc:
            # Luigi keeps only the traceback of an error while scheduling; mlcd run reports
            # this one (an unreachable bucket, a missing source) by its kind and exit code.
            _record_failure(self, exc, during="scheduling")
            raise

    def _complete(self) -> bool:
        if self.__dict__.get("_known_complete"):
            return True
        sealed = self.seal()
        if sealed is None:
            return False
        paths = [str(o.get("location")) for o in sealed.values() if isinstance(o, dict)]
        paths += [self.path(name) for name in self.files if name not in sealed]
        done = not storage.missing(self.folder(), paths)
        self.__dict__["_known_complete"] = done
        return done

    def read(self, name: str) -> bytes:
        """An output's bytes (kept in memory: a finished task's outputs never change)."""
        cache = self.__dict__.setdefault("_reads", {})
        if name not in cache:
            cache[name] = storage.read_bytes(self.artifacts()[name])
        return bytes(cache[name])

    def read_json(self, name: str) -> Any:
        """An output parsed as JSON (a clear error when it is damaged); from the seal when it
        carries it."""
        cache = self.__dict__.setdefault("_json", {})
        sealed = (self.seal() or {}).get(name) if self.__dict__.get("_known_complete") else None
        if name not in cache and isinstance(sealed, dict) and "content" in sealed:
            cache[name] = sealed["content"]
        if name not in cache:
            path = self.artifacts()[name]
            try:
                cache[name] = json.loads(self.read(name))
            except ValueError:
                raise StorageError(
                    f"{path!r} is not valid JSON (corrupted or half-written by another tool); "
                    "delete it so mlcd can write it again"
                ) from None
        return json.loads(json.dumps(cache[name]))

    def artifacts(self) -> dict[str, str]:
        """Every file this task writes, by name: its outputs and the files they point to (run
        manifests record and compare them)."""
        files = {name: str(target.path) for name, target in self.output().items()}
        files.pop(SEAL)
        for name, record in (self.seal() or {}).items():
            if isinstance(record, dict) and isinstance(record.get("location"), str):
                files[name] = record["location"]
        return files

    def label(self) -> str:
        """How logs and summaries name this task."""
        return str(self.get_task_family())

    def progress(self, percent: int, message: str) -> None:
        """Shown in the Luigi web UI while the task runs."""
        self.set_progress_percentage(percent)
        self.set_status_message(message)


# Set by `mlcd run`: the file where each task records its failure, in whichever process it ran.
FAILURE_LOG_ENV = "MLCD_FAILURE_LOG"
# Set by `mlcd run --workers N`: the cores each task process may use (see _cpu_share).
THREADS_ENV = "MLCD_TASK_THREADS"


def _cpu_share() -> Any:
    """Limit the task's native thread pools (OpenMP, BLAS) to its share of the cores when
    several task processes run at once: two HistGradientBoosting fits with a thread per core
    each, on the same cores, were 4-6x slower than one after the other."""
    import contextlib

    threads = os.environ.get(THREADS_ENV)
    if not threads:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=int(threads))


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
def _record_failure(task: PipelineTask, exception: BaseException, during: str = "run") -> None:
    """Keep the failure's kind and exit code where ``mlcd run`` finds it (in any worker process);
    ``during``: "run" (the task ran and failed: it sent its notification, tasks/notify.py) or
    "scheduling" (its completeness could not be known)."""
    if isinstance(exception, MlcdError):
        kind, code, message = exception.kind, exception.exit_code, str(exception)
    else:
        kind, code = PipelineFailed.kind, PipelineFailed.exit_code
        message = f"{type(exception).__name__}: {exception}"
    path = os.environ.get(FAILURE_LOG_ENV)
    if path:
        line = json.dumps(
            {
                "task": task.label(),
                "kind": kind,
                "exit_code": code,
                "message": message,
                "date": task.date.isoformat(),
                "during": during,
            }
        )
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


# For the tasks of other modules that are not pipeline tasks (tasks.data.WaitForSource).
say = _say
record_failure = _record_failure


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


def require_passed(gate: PipelineTask) -> dict[str, Any]:
    verdict: dict[str, Any] = gate.read_json("verdict.json")
    if not verdict["passed"]:
        raise GateFailed(verdict["stage"], verdict["blocking_failures"], gate.path("verdict.json"))
    return verdict


# Where `mlcd ui` runs for this workspace, if it does: luigi.cfg [mlcd] ui_url, or this variable.
UI_URL_ENV = "MLCD_UI_URL"


def report_url(task: PipelineTask) -> str:
    """The link the Luigi web UI shows for a validation task: its report in `mlcd ui` when one
    runs (``[mlcd] ui_url``), which opens over http from any host; else a file:// link (which a
    browser opens only from a local file, on the machine that ran the task)."""
    ui = os.environ.get(UI_URL_ENV) or luigi.configuration.get_config().get(
        "mlcd", "ui_url", ""
    )
    if ui:
        return f"{ui.rstrip('/')}/tasks/{task.stage}/{task.identity}/report.html"
    path = task.path("report.html")
    return "file://" + os.path.abspath(path) if "://" not in path else path
