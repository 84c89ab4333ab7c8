"""Waiting for the day's source partition (``source.wait``): the run waits in the graph
(WaitForSource, shown running in luigid's web UI with what it waits for), runs when the file
lands, and fails with exit code 12 and a run manifest when it does not land in time."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import MLCD, ROOT, Luigid, run_mlcd
from daily import daily_config, write_day

from mlcd.config import load_config
from mlcd.errors import ConfigError

pytestmark = pytest.mark.e2e

DAY = "2026-01-15"


def waiting_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "waiting for the source" in line]


def test_a_run_waits_for_its_partition_and_runs_when_it_lands(tmp_path):
    config = daily_config(tmp_path, source={"wait": {"timeout": "2m", "poll": "1s"}})
    proc = subprocess.Popen(
        [MLCD, "run", "--config", str(config), "--date", DAY, "--json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = [proc.stderr.readline()]
        while first[-1] and not waiting_lines(first[-1]):  # the run says what it waits for
            first.append(proc.stderr.readline())
        assert waiting_lines(first[-1]), first
        time.sleep(1.5)  # a poll or two find nothing
        write_day(tmp_path, DAY)
        out, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = "".join(first) + rest
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert report["ok"] and {"WaitForSource", "ExtractData", "PublishModel"} <= set(report["ran"])
    assert report["published"]["promoted"] is True
    (line,) = waiting_lines(err)  # said once, not at every poll
    assert str(tmp_path / "data" / f"{DAY}.csv") in line and "until" in line
    assert "source.wait.timeout 2m" in line
    assert "is there after" in err


def test_a_partition_that_does_not_land_in_time_is_exit_12_with_a_manifest(tmp_path):
    config = daily_config(tmp_path, source={"wait": {"timeout": "2s", "poll": "1s"}})
    result = run_mlcd("run", "--config", str(config), "--date", DAY)
    assert result.returncode == 12, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("mlcd: source not ready: ")
    assert str(tmp_path / "data" / f"{DAY}.csv") in last and "source.wait.timeout" in last
    assert len(waiting_lines(result.stderr)) == 1
    assert not (tmp_path / "registry").exists()  # nothing published
    (run,) = (tmp_path / "ws" / "runs").iterdir()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["exit_code"] == 12
    assert manifest["run_date"] == DAY
    assert [f["kind"] for f in manifest["failures"]] == ["source not ready"]
    shown = run_mlcd("runs", "show", run.name, "--config", str(config))
    assert shown.returncode == 0 and "exit 12" in shown.stdout, shown.stderr


def test_without_source_wait_a_missing_partition_fails_at_once_with_exit_4(tmp_path):
    config = daily_config(tmp_path)
    result = run_mlcd("run", "--config", str(config), "--date", DAY)
    assert result.returncode == 4, result.stderr
    assert "does not exist" in result.stderr and "waiting" not in result.stderr


@pytest.mark.parametrize(
    "wait, problem",
    [
        ({"timeout": "6 hours"}, "'source.wait.timeout': '6 hours' is not a duration"),
        ({"timeout": "6h", "poll": "0s"}, "'source.wait.poll': '0s': a duration must be more"),
        ({"timeout": "1m", "poll": "5m"}, "'source.wait': poll (5m) is longer than timeout"),
        ({"poll": "60s"}, "missing required key 'source.wait.timeout'"),
        ({"timeout": "6h", "every": "1m"}, "unknown key 'source.wait.every'"),
    ],
)
def test_a_bad_source_wait_is_a_config_error_naming_the_key(tmp_path, wait, problem):
    config = daily_config(tmp_path, source={"wait": wait})
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert caught.value.exit_code == 2
    assert problem in str(caught.value) and "\n" not in str(caught.value)


def test_source_wait_on_a_bundled_dataset_is_a_config_error(tmp_path):
    config = daily_config(tmp_path, source={"path": None, "dataset": "iris"})
    data = yaml.safe_load(config.read_text())
    data["source"] = {"dataset": "iris", "wait": {"timeout": "1h"}}
    config.write_text(yaml.safe_dump(data))
    result = run_mlcd("run", "--config", str(config), "--date", DAY)
    assert result.returncode == 2 and "source.wait" in result.stderr, result.stderr


@pytest.fixture
def luigid(tmp_path: Path) -> Iterator[Luigid]:
    server = Luigid(tmp_path / "luigid")
    server.start()
    yield server
    server.stop()


def test_luigid_shows_the_wait_as_a_running_task_with_what_it_waits_for(tmp_path, luigid):
    config = daily_config(tmp_path / "site", source={"wait": {"timeout": "2m", "poll": "1s"}})
    proc = subprocess.Popen(
        [MLCD, "run", "--config", str(config), "--date", DAY, *luigid.args()],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        running: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        while not running and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            running = luigid.api("task_list", status="RUNNING", upstream_status="", search="")
        assert running, "the wait never showed as a running task"
        (task_id,) = running
        assert task_id.startswith("WaitForSource_")
        message = luigid.api("get_task_status_message", task_id=task_id)["statusMessage"]
        assert f"data/{DAY}.csv" in message and "until" in message
        pending = luigid.api("task_list", status="PENDING", upstream_status="", search="")
        assert any(t.startswith("ExtractData_") for t in pending)  # the graph waits behind it
        write_day(tmp_path / "site", DAY)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    done = luigid.api("task_list", status="DONE", upstream_status="", search="")
    assert any(t.startswith("PublishModel_") for t in done)
