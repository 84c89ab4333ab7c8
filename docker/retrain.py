"""The nightly retrain of config/crontab, for the `retrain` service of docker/compose.yaml.

A container has no cron daemon, so this waits for the minute and hour of the crontab's job line
(the one schedule, kept in config/crontab) and then runs, as that line does,

    mlcd run ARGS... --date YYYY-MM-DD      (today, in the container's TZ; UTC unless set)

once per day; its output goes to this process's stdout and stderr (`docker compose logs`). A
failed run is reported and the next night's run goes ahead, as under cron. Standard library only.

    python docker/retrain.py --config docker/pipeline-s3.yaml --scheduler-host luigid

MLCD_CRONTAB names another crontab (default: config/crontab, relative to the working directory).
While it runs it touches HEARTBEAT at least every POLL seconds; the compose healthcheck reads it.
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HEARTBEAT = Path("/tmp/mlcd-retrain.alive")
POLL = 20.0


def schedule(crontab: str) -> tuple[int, int]:
    """(minute, hour) of the crontab's one job line, which must run daily (`M H * * *`)."""
    jobs = [
        line.split(None, 5)
        for line in crontab.splitlines()
        if line.strip()
        and not line.lstrip().startswith("#")
        and "=" not in line.split(None, 1)[0]  # MLCD_HOME=... and other assignments
    ]
    if len(jobs) != 1 or len(jobs[0]) != 6:
        raise ValueError(f"expected one job line `M H * * * command`, found {len(jobs)}")
    minute, hour, *rest = jobs[0][:5]
    if not (minute.isdigit() and hour.isdigit()) or rest != ["*", "*", "*"]:
        raise ValueError(
            f"the schedule {' '.join(jobs[0][:5])!r} is not a daily `M H * * *` one; "
            "this loop runs only those (or run mlcd from the host's cron)"
        )
    if int(minute) > 59 or int(hour) > 23:
        raise ValueError(f"minute {minute} or hour {hour} is out of range")
    return int(minute), int(hour)


def due(now: datetime.datetime, at: tuple[int, int], last: datetime.date | None) -> bool:
    """True once per day: in the scheduled minute (or later that day if it was missed while the
    previous run was still going), unless today's run already happened."""
    minute, hour = at
    return last != now.date() and (now.hour, now.minute) >= (hour, minute)


def main(argv: list[str]) -> int:
    crontab = Path(os.environ.get("MLCD_CRONTAB", "config/crontab"))
    try:
        at = schedule(crontab.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"mlcd retrain: {crontab}: {exc}", file=sys.stderr, flush=True)
        return 2

    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: object) -> None:
        # docker stop sends SIGTERM to PID 1: pass it on to a running retrain, then leave.
        if child is not None and child.poll() is None:
            child.send_signal(signum)
            child.wait()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    # A container started after today's time waits for tomorrow, as cron would.
    now = datetime.datetime.now()
    last = now.date() if (now.hour, now.minute) > (at[1], at[0]) else None
    print(
        f"mlcd retrain: daily at {at[1]:02d}:{at[0]:02d} {time.strftime('%Z')} (from {crontab}): "
        f"mlcd run {' '.join(argv)} --date <today>",
        flush=True,
    )
    while True:
        HEARTBEAT.touch()
        now = datetime.datetime.now()
        if due(now, at, last):
            last = now.date()
            command = ["mlcd", "run", *argv, "--date", now.date().isoformat()]
            print(f"mlcd retrain: {' '.join(command)}", flush=True)
            child = subprocess.Popen(command)
            while True:
                try:
                    code = child.wait(timeout=POLL)
                    break
                except subprocess.TimeoutExpired:
                    HEARTBEAT.touch()
            child = None
            print(f"mlcd retrain: exit code {code} for {last.isoformat()}", flush=True)
        time.sleep(POLL)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
