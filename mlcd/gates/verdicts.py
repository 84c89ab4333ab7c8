"""Verdicts: every gate becomes one entry of a verdict (a plain dict written as JSON): what was
checked, its value, its threshold, its result and whether it blocks. A verdict passes when no
blocking gate failed. deepchecks' own ``passed()`` ignores checks that raised; here a check that
raises fails its gate unless the config lists it as known-broken, and a check that does not
apply to the data or task type is reported as skipped."""

from __future__ import annotations

from typing import Any

from mlcd.catalogue import (
    COSTLY_CHECKS,
    DEFAULT_BLOCKING,
    DEFAULT_KNOWN_BROKEN,
    DEFAULT_MAX_RATIO,
    SUITE_CHECKS,
)
from mlcd.config import SuiteConfig


def _not_applicable(exc: BaseException) -> bool:
    import mlcd.gates.compat  # noqa: F401, I001  (first: mends deepchecks for the current stack)
    from deepchecks.core.errors import (
        DatasetValidationError,
        DeepchecksNotSupportedError,
        ModelValidationError,
    )

    text = str(exc)
    if isinstance(exc, DeepchecksNotSupportedError):  # e.g. no predict_proba for RocReport
        return True
    if isinstance(exc, ModelValidationError):
        return "irrelevant" in text or "is relevant for" in text
    if isinstance(exc, DatasetValidationError):
        return "does not contain" in text
    return False


def blocking_checks(suite_name: str, section: SuiteConfig) -> frozenset[str]:
    return frozenset(
        section.blocking if section.blocking is not None else DEFAULT_BLOCKING[suite_name]
    )


def known_broken(suite_name: str, section: SuiteConfig) -> frozenset[str]:
    """The suite's default known-broken checks and the config's own."""
    return frozenset(DEFAULT_KNOWN_BROKEN[suite_name]) | frozenset(section.known_broken)


def max_ratios(suite_name: str, section: SuiteConfig) -> dict[str, float]:
    """The largest passing ratio of each ratio-judged check: defaults, then the config's."""
    return {**DEFAULT_MAX_RATIO[suite_name], **section.max_ratio}


def not_run(
    suite_name: str, check: str, section: SuiteConfig, rows: int | None
) -> tuple[str, str] | None:
    """Why ``check`` is left out of the suite's run, as (result, details); None when it runs.
    Only ``skip`` leaves out a blocking check."""
    where = f"validation.{suite_name}"
    if check in section.skip:
        return "skipped", f"skipped by {where}.skip"
    if check in blocking_checks(suite_name, section):
        return None
    if check in known_broken(suite_name, section):
        listed = "listed under" if check in section.known_broken else "by default in"
        return "known_broken", f"not run: {listed} {where}.known_broken"
    limit = section.costly_checks_max_rows
    if check in COSTLY_CHECKS[suite_name] and limit is not None and (rows or 0) > limit:
        return "skipped", (
            f"not run: a costly advisory check, and the data has {rows} rows, more than "
            f"{where}.costly_checks_max_rows ({limit}); raise it, or set it to null, to run it"
        )
    return None


def verdict_from_result(
    suite_name: str, result: Any, section: SuiteConfig, rows: int | None = None
) -> dict[str, Any]:
    """Turn a deepchecks SuiteResult into verdict gates; each check of the suite that did not run
    becomes one gate saying why (``rows``: the size of the validated data)."""
    import mlcd.gates.compat  # noqa: F401, I001  (first: mends deepchecks for the current stack)
    from deepchecks.core.check_result import CheckFailure, CheckResult

    blocking = blocking_checks(suite_name, section)
    broken = known_broken(suite_name, section)
    gates: list[dict[str, Any]] = []
    for res in result.results:
        check = type(res.check).__name__
        header = res.get_header()
        if isinstance(res, CheckFailure):
            if _not_applicable(res.exception):
                outcome, is_blocking = "skipped", False
            elif check in broken:
                outcome, is_blocking = "known_broken", False
            else:
                outcome, is_blocking = "error", True
            gates.append(
                {
                    "kind": "deepchecks",
                    "suite": suite_name,
                    "check": check,
                    "header": header,
                    "condition": None,
                    "result": outcome,
                    "blocking": is_blocking,
                    "details": f"{type(res.exception).__name__}: {res.exception}"[:500],
                }
            )
            continue
        if not isinstance(res, CheckResult):
            continue
        if not res.conditions_results:
            gates.append(
                {
                    "kind": "deepchecks",
                    "suite": suite_name,
                    "check": check,
                    "header": header,
                    "condition": None,
                    "result": "ran",
                    "blocking": False,
                    "details": "",
                }
            )
        for cond in res.conditions_results:
            outcome = cond.category.name.lower()  # pass, warn, fail, error
            gates.append(
                {
                    "kind": "deepchecks",
                    "suite": suite_name,
                    "check": check,
                    "header": header,
                    "condition": cond.name,
                    "result": outcome,
                    "blocking": check in blocking,
                    "details": str(cond.details)[:500],
                }
            )
    ran = {type(res.check).__name__ for res in result.results}
    return summarise(suite_name, gates + not_run_gates(suite_name, section, ran, rows))


def not_run_gates(
    suite_name: str, section: SuiteConfig, ran: set[str], rows: int | None
) -> list[dict[str, Any]]:
    """One gate for each check of the suite that is not among those that ran, saying why."""
    gates = []
    for name in SUITE_CHECKS[suite_name]:
        if name in ran:
            continue
        outcome, details = not_run(suite_name, name, section, rows) or ("skipped", "not run")
        gates.append(
            {
                "kind": "deepchecks",
                "suite": suite_name,
                "check": name,
                "header": name,
                "condition": None,
                "result": outcome,
                "blocking": False,
                "details": details,
            }
        )
    return gates


def summarise(stage: str, gates: list[dict[str, Any]]) -> dict[str, Any]:
    failed = [g for g in gates if g["blocking"] and g["result"] in ("fail", "error")]
    counts: dict[str, int] = {}
    for gate in gates:
        counts[gate["result"]] = counts.get(gate["result"], 0) + 1
    return {
        "stage": stage,
        "passed": not failed,
        "blocking_failures": [gate_name(g) for g in failed],
        "counts": dict(sorted(counts.items())),
        "gates": gates,
    }


def gate_name(gate: dict[str, Any]) -> str:
    if gate["kind"] == "deepchecks":
        cond = f": {gate['condition']}" if gate.get("condition") else ""
        return f"{gate['check']}{cond} ({gate['result']})"
    return str(gate["name"])


def headline(verdict: dict[str, Any]) -> str:
    """A verdict in one line, what blocked first: ``BLOCKED by ConflictingLabels: ... (fail);
    data_integrity: 10 pass, 1 fail`` or ``data_integrity: passed (10 pass, 1 warn)``."""
    counts = ", ".join(f"{n} {result}" for result, n in verdict["counts"].items())
    if verdict["passed"]:
        return f"{verdict['stage']}: passed ({counts or 'nothing to check'})"
    return f"BLOCKED by {'; '.join(verdict['blocking_failures'])}; {verdict['stage']}: {counts}"
