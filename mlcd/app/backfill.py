"""``mlcd backfill``: the pipeline of a config for every day of a range.

Luigi's RangeDaily (``tasks.backfill.BackfillRange``) says which days are not complete yet;
each of them is then one ``mlcd run`` of that day, oldest first: its own lock, run id, run
manifest, summary and notifications, as if it had run on its day. Production never goes back
in time: a day older than production's run date is published and left out of production
(``mlcd.registry.release``). Why one run per day and not one Luigi build: docs/triggers.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from mlcd.errors import MlcdError, UsageError


def backfill(
    config: str,
    start: dt.date,
    stop: dt.date,
    *,
    workers: int = 1,
    scheduler_host: str | None = None,
    scheduler_port: int | None = None,
    local_scheduler: bool = False,
    today: dt.date | None = None,
    on_day: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every day from ``start`` to ``stop`` (both included) that is not complete; the
    outcome of each day (``on_day`` is told each as it ends) and the summary."""
    from mlcd.app import run as run_app
    from mlcd.config import load_config

    cfg = load_config(config)
    today = today or dt.date.today()
    if start > stop:
        raise UsageError(
            f"--from {start.isoformat()} is after --to {stop.isoformat()}; give the oldest day "
            "first"
        )
    if stop > today:
        raise UsageError(
            f"--to {stop.isoformat()} is in the future (today is {today.isoformat()}); a "
            "backfill runs days that have passed: end it today at the latest"
        )
    import tasks.backfill

    days: list[dict[str, Any]] = []
    span = tasks.backfill.backfill_range(config, start, stop)
    missing = {task.date for task in span.requires()}  # RangeDaily: the days not complete
    for offset in range((stop - start).days + 1):
        day = start + dt.timedelta(days=offset)
        outcome: dict[str, Any] = {"date": day.isoformat()}
        if day not in missing:
            outcome["status"] = "already complete"
        else:
            try:
                report = run_app.run(
                    config,
                    day,
                    workers=workers,
                    scheduler_host=scheduler_host,
                    scheduler_port=scheduler_port,
                    local_scheduler=local_scheduler,
                )
            except MlcdError as exc:
                outcome.update(
                    status="failed", kind=exc.kind, exit_code=exc.exit_code, message=str(exc)
                )
                report = exc.report
            else:
                outcome["status"] = "ran" if report["ran"] else "already complete"
            if report:
                outcome["run_id"] = report.get("run_id")
                published = report.get("published") or {}
                if published.get("version"):
                    outcome["version"] = published["version"]
                    outcome["promoted"] = bool(published.get("promoted"))
        days.append(outcome)
        if on_day is not None:
            on_day(outcome)
    failed = [d for d in days if d["status"] == "failed"]
    return {
        "model": cfg.name,
        "from": start.isoformat(),
        "to": stop.isoformat(),
        "days": days,
        "ran": sum(d["status"] == "ran" for d in days),
        "already_complete": sum(d["status"] == "already complete" for d in days),
        "failed": len(failed),
        "exit_code": int(failed[0]["exit_code"]) if failed else 0,
        "production": _production(cfg),
    }


def _production(cfg: Any) -> str | None:
    from mlcd import registry

    try:
        pointer = registry.production(cfg.publish, cfg.name)
    except MlcdError:
        return None
    return None if pointer is None else str(pointer["version"])


def day_line(day: dict[str, Any]) -> str:
    """One line per day: ran (and what it published), already complete, or why it failed."""
    text = f"  {day['date']}  {day['status']}"
    if day["status"] == "failed":
        text += f": {day['kind']} (exit {day['exit_code']}): {day['message']}"
    if day.get("version"):
        where = "promoted" if day.get("promoted") else "not promoted"
        text += f"  version {day['version']} ({where})"
    return text


def summary_line(result: dict[str, Any]) -> str:
    days = len(result["days"])
    production = result["production"] or "none"
    return (
        f"mlcd backfill: model {result['model']}, {result['from']} to {result['to']} "
        f"({days} day{'s' if days != 1 else ''}): {result['ran']} ran, "
        f"{result['already_complete']} already complete, {result['failed']} failed; "
        f"production: {production}"
    )
