"""The pipeline's webhook notifications, sent by the task they are about, from whichever worker
process ran it: luigid runs each task once, so each event is sent once however many workers or
``mlcd run`` processes share the run (docs/triggers.md).

- ``published``: PublishModel finished (the version is published; promoted or not);
- ``gate_failed``: a task failed on a blocking gate (the judge, or a later task that refuses a
  sealed failing verdict on a rerun);
- ``run_failed``: a task failed for any other reason (a data error, a source that did not
  appear in time, a bug). Failures before any task runs are sent by ``mlcd run`` itself.
"""

from __future__ import annotations

from typing import Any

import luigi

from mlcd import notify
from mlcd.errors import GateFailed, MlcdError, PipelineFailed
from tasks.base import PipelineTask
from tasks.data import WaitForSource
from tasks.publish import PublishModel


def _model(task: Any) -> tuple[str, Any]:
    from mlcd.config import load_config

    cfg = load_config(task.config_path)
    return cfg.name, cfg


@PublishModel.event_handler(luigi.Event.SUCCESS)
def _published(task: PublishModel) -> None:
    if task.__dict__.get("_found_complete"):
        return  # it found the version published already (tasks.base.PipelineTask.run)
    try:
        name, cfg = _model(task)
        published = task.read_json("published.json")
    except MlcdError as exc:
        notify.warn(f"no published notification was sent: {exc}")
        return
    version, promoted = published["version"], bool(published["promoted"])
    details = {
        "version": version,
        "promoted": promoted,
        "candidate": published.get("candidate"),
        "run_date": task.date.isoformat(),
        "location": published.get("path"),
        "result": getattr(task, "_result", None),
    }
    text = (
        f"mlcd: {name} version {version} published"
        + (" and promoted to production" if promoted else "; production unchanged")
        + f" (run date {task.date.isoformat()})"
    )
    notify.send("published", name, text, details, config=cfg)


@PipelineTask.event_handler(luigi.Event.FAILURE)
@WaitForSource.event_handler(luigi.Event.FAILURE)
def _failed(task: Any, exception: BaseException) -> None:
    try:
        name, cfg = _model(task)
    except MlcdError:
        name, cfg = str(task.config_path), None
    label = task.label() if hasattr(task, "label") else task.get_task_family()
    date = task.date.isoformat()
    if isinstance(exception, GateFailed):
        details: dict[str, Any] = {
            "task": label,
            "run_date": date,
            "stage": exception.stage,
            "gates": list(exception.gates),
            "verdict": exception.verdict_path,
        }
        text = (
            f"mlcd: {name} ({date}): blocking gate(s) of {exception.stage} failed: "
            f"{', '.join(exception.gates)}; nothing was published"
        )
        notify.send("gate_failed", name, text, details, config=cfg)
        return
    if isinstance(exception, MlcdError):
        kind, code = exception.kind, exception.exit_code
    else:
        kind, code = PipelineFailed.kind, PipelineFailed.exit_code
    message = (
        str(exception)
        if isinstance(exception, MlcdError)
        else (f"{type(exception).__name__}: {exception}")
    )
    details = {"task": label, "run_date": date, "kind": kind, "exit_code": code, "message": message}
    text = f"mlcd: {name} ({date}) failed in {label}: {kind}: {message}"
    notify.send("run_failed", name, text, details, config=cfg)
