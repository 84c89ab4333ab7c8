"""Gates: the deepchecks suites (``suites``, ``importance``), mlcd's own rules on metrics,
production and candidates (``rules``), and the verdicts they make (``verdicts``)."""

from __future__ import annotations

from mlcd.gates.importance import (
    PERMUTATION_REPEATS,
    PERMUTATION_ROWS,
    feature_importance,
    model_importance,
    one_native_thread,
    permutation_importance,
    threads_only,
)
from mlcd.gates.rules import (
    champion_delta,
    champion_gate,
    champion_metric,
    every_class_gates,
    release_verdict,
    select_candidate,
    threshold_gates,
)
from mlcd.gates.suites import (
    dataset,
    render_html,
    run_suite,
    sample_rows,
)
from mlcd.gates.verdicts import (
    blocking_checks,
    gate_name,
    headline,
    not_run,
    not_run_gates,
    summarise,
    verdict_from_result,
)

__all__ = [
    "PERMUTATION_REPEATS",
    "PERMUTATION_ROWS",
    "blocking_checks",
    "champion_delta",
    "champion_gate",
    "champion_metric",
    "dataset",
    "feature_importance",
    "gate_name",
    "headline",
    "model_importance",
    "not_run",
    "not_run_gates",
    "one_native_thread",
    "permutation_importance",
    "release_verdict",
    "render_html",
    "run_suite",
    "sample_rows",
    "select_candidate",
    "summarise",
    "threads_only",
    "threshold_gates",
    "every_class_gates",
    "verdict_from_result",
]
