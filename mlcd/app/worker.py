"""The Luigi worker ``mlcd run`` builds with: Luigi's own, except that it stops waiting once a
task of its graph has failed.

A keep-alive worker (luigi.cfg ``[worker] keep_alive``) waits while other workers run the tasks
it needs. Luigi counts a FAILED task as pending, to be retried after the scheduler's
``retry_delay``, so the worker would wait for that retry. In an mlcd run a failure is final (a
gate's verdict, a data error), so this worker ends as soon as the scheduler reports one of its
tasks FAILED or DISABLED, whichever worker ran it. The scheduler then keeps the task FAILED,
which the web UI draws red (docs/decisions.md).

For the same reason it asks for no more work once a task it ran has failed: a data gate that
failed beside the split (they run side by side) does not let the split's own validation start.
"""

from __future__ import annotations

import json
from typing import Any

import luigi.interface
import luigi.worker
from luigi.task_status import DISABLED, FAILED

from mlcd.errors import EXIT_CODES, PipelineFailed


class Worker(luigi.worker.Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stopped_for: list[str] = []  # the failed tasks it stopped waiting for

    def _add_task(self, *args: Any, **kwargs: Any) -> None:
        super()._add_task(*args, **kwargs)
        if kwargs.get("status") == FAILED:
            self._stop_requesting_work = True  # Luigi's own flag (set on SIGUSR1)

    def _keep_alive(self, get_work_response: Any) -> bool:
        if not super()._keep_alive(get_work_response):
            return False
        self.stopped_for = self.failed_tasks()
        return not self.stopped_for

    def failed_tasks(self) -> list[str]:
        """The ids of this worker's tasks that the scheduler holds as failed or disabled."""
        found: list[str] = []
        for status in (FAILED, DISABLED):
            listed = self._scheduler.task_list(status=status, upstream_status="", limit=False)
            found += [task_id for task_id in listed if task_id in self._scheduled_tasks]
        return found

    def failures_elsewhere(self, recorded: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The failures of the tasks it stopped waiting for that another worker ran (so this
        run's failure log does not hold them), as that log's records: task, kind, exit code and
        message, from the error the task reported to the scheduler (``on_failure``'s line)."""
        known = {str(failure["task"]) for failure in recorded}
        found = []
        for task_id in self.stopped_for:
            task = self._scheduled_tasks.get(task_id)
            label = task.label() if hasattr(task, "label") else task_id
            if label in known:
                continue
            error = self._scheduler.fetch_error(task_id).get("error") or ""
            with_kind = json.loads(error) if error.startswith('"') else error
            kind, _, message = with_kind.partition(": ")
            if kind not in EXIT_CODES or not message:
                kind, message = PipelineFailed.kind, with_kind or "failed in another worker"
            found.append(
                {"task": label, "kind": kind, "exit_code": EXIT_CODES[kind], "message": message}
            )
        return found


class Factory(luigi.interface._WorkerSchedulerFactory):
    """``luigi.build``'s ``worker_scheduler_factory``: Luigi's schedulers, mlcd's worker (kept,
    so the run can ask it what it stopped for)."""

    def __init__(self) -> None:
        self.workers: list[Worker] = []

    def create_worker(self, scheduler: Any, worker_processes: int, assistant: bool = False) -> Any:
        worker = Worker(scheduler=scheduler, worker_processes=worker_processes, assistant=assistant)
        self.workers.append(worker)
        return worker
