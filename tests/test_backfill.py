"""``mlcd backfill``: each day of a range that is not complete runs once, as its own run; a
second call is a no-op; a day older than production's is published and never promoted; a day
that fails is reported with its reason and exit code while the others run."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import production, run_mlcd, versions
from daily import daily_config, write_day

pytestmark = pytest.mark.e2e

DAYS = [f"2026-01-0{d}" for d in range(1, 6)]


def backfill(config: Path, start: str, stop: str, *extra: str) -> SimpleNamespace:
    result = run_mlcd("backfill", "--config", str(config), "--from", start, "--to", stop, *extra)
    lines = [line.split() for line in result.stdout.splitlines() if line.startswith("  2")]
    return SimpleNamespace(
        code=result.returncode,
        out=result.stdout,
        err=result.stderr,
        status={words[0]: " ".join(words[1:]) for words in lines},
    )


@pytest.fixture(scope="module")
def five_days(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Five daily partitions, each a different day of the export, backfilled once."""
    folder = tmp_path_factory.mktemp("backfill")
    # the champion gate is left lenient: each day's model is judged against the day before's,
    # and this test is about the days, not about one being worse than another
    config = daily_config(folder, gates={"champion": {"metric": "f1", "tolerance": 1}})
    for seed, day in enumerate(DAYS):
        write_day(folder, day, seed=seed)
    first = backfill(config, DAYS[0], DAYS[-1])
    return SimpleNamespace(folder=folder, config=config, first=first)


def runs(folder: Path) -> list[dict]:
    found = sorted((folder / "ws" / "runs").iterdir())
    return [json.loads((run / "manifest.json").read_text()) for run in found]


def test_a_backfill_runs_each_day_once_and_the_newest_is_in_production(five_days):
    first = five_days.first
    assert first.code == 0, first.err
    assert list(first.status) == DAYS
    assert all(status.startswith("ran version") for status in first.status.values())
    assert "5 ran, 0 already complete, 0 failed" in first.out
    recorded = runs(five_days.folder)
    assert [m["run_date"] for m in recorded] == DAYS  # one run each, oldest first
    assert all(m["status"] == "success" and m["exit_code"] == 0 for m in recorded)
    published = [m["published"]["version"] for m in recorded]
    assert sorted(published) == versions(five_days.folder / "registry", "churn")
    assert production(five_days.folder / "registry", "churn") == published[-1]


def test_a_second_backfill_is_a_no_op(five_days):
    before = runs(five_days.folder)
    again = backfill(five_days.config, DAYS[0], DAYS[-1])
    assert again.code == 0, again.err
    assert set(again.status.values()) == {"already complete"}
    assert "0 ran, 5 already complete, 0 failed" in again.out
    assert "started" not in again.err  # no task ran
    assert runs(five_days.folder) == before  # and no run was recorded


def test_an_older_day_is_published_but_production_stays_on_the_newest(five_days):
    newest = production(five_days.folder / "registry", "churn")
    write_day(five_days.folder, "2025-12-31", seed=9)
    older = backfill(five_days.config, "2025-12-31", "2025-12-31")
    assert older.code == 0, older.err
    assert older.status["2025-12-31"].endswith("(not promoted)")
    assert production(five_days.folder / "registry", "churn") == newest
    (record,) = [m for m in runs(five_days.folder) if m["run_date"] == "2025-12-31"]
    assert record["published"]["promoted"] is False
    assert record["published"]["version"] in versions(five_days.folder / "registry", "churn")


def test_a_day_without_its_partition_fails_with_its_reason_and_the_others_stand(five_days):
    result = backfill(five_days.config, DAYS[-2], "2026-01-06")
    assert result.code == 4, result.err
    assert result.status[DAYS[-2]] == result.status[DAYS[-1]] == "already complete"
    reason = result.status["2026-01-06"]
    assert reason.startswith("failed: data error (exit 4):") and "2026-01-06.csv" in reason
    assert "0 ran, 2 already complete, 1 failed" in result.out


@pytest.mark.parametrize(
    "start, stop, problem",
    [
        ("2026-01-05", "2026-01-01", "--from 2026-01-05 is after --to 2026-01-01"),
        ("2026-01-01", "2999-01-01", "--to 2999-01-01 is in the future"),
    ],
)
def test_a_bad_range_is_a_usage_error(tmp_path, start, stop, problem):
    config = daily_config(tmp_path)
    result = backfill(config, start, stop)
    assert result.code == 2 and problem in result.err, result.err
    assert not (tmp_path / "ws").exists()
