"""``mlcd backfill``'s range: Luigi's RangeDaily over RetrainPipeline, for one config."""

from __future__ import annotations

import datetime as dt
from typing import Any

from luigi.tools.range import RangeDaily

from mlcd.errors import MlcdError
from tasks.publish import RetrainPipeline


class BackfillRange(RangeDaily):
    """The days of a range whose pipeline is not complete, oldest first (RangeDaily's
    ``requires``). A day whose completeness cannot be known (its partition is missing, its
    store unreadable) counts as missing: it is run, and fails with its own error."""

    def missing_datetimes(self, finite_datetimes: list[dt.datetime]) -> list[dt.datetime]:
        missing = []
        for moment in finite_datetimes:
            try:
                done = self._instantiate_task_cls(self.datetime_to_parameter(moment)).complete()
            except MlcdError:
                done = False
            if not done:
                missing.append(moment)
        return missing


def backfill_range(config_path: str, start: dt.date, stop: dt.date) -> BackfillRange:
    """The range ``start`` to ``stop`` (both included) of ``config_path``'s pipeline; ``now``
    is pinned to the range's end, so which days it covers does not depend on the clock."""
    end = dt.datetime.combine(stop + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    params: dict[str, Any] = {
        "of": RetrainPipeline,
        "of_params": {"config_path": config_path},
        "param_name": "date",
        "start": start,
        "stop": stop + dt.timedelta(days=1),
        "now": int(end.timestamp()),
        "days_back": (stop - start).days + 1,
        "days_forward": 0,
    }
    return BackfillRange(**params)
