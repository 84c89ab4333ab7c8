"""mlcd's own gates: metric thresholds, the comparison with the model in production, and the
choice among candidates."""

from __future__ import annotations

from typing import Any

from mlcd.catalogue import METRICS, PRIMARY_METRIC
from mlcd.config import ChampionConfig, GatesConfig, PipelineConfig
from mlcd.errors import GateFailed


def threshold_gates(metrics: dict[str, Any], gates: GatesConfig) -> list[dict[str, Any]]:
    out = []
    for metric, bound in sorted(gates.thresholds.items()):
        value = metrics.get(metric)
        parts = []
        if bound.min is not None:
            parts.append(f">= {bound.min:g}")
        if bound.max is not None:
            parts.append(f"<= {bound.max:g}")
        name = f"{metric} {' and '.join(parts)}"
        if value is None:
            result, details = "error", f"{metric} could not be computed for this model"
        else:
            ok = (bound.min is None or value >= bound.min) and (
                bound.max is None or value <= bound.max
            )
            result, details = ("pass" if ok else "fail"), f"{metric} = {value:.6g}"
        out.append(
            {
                "kind": "threshold",
                "name": name,
                "metric": metric,
                "value": value,
                "threshold": bound.model_dump(exclude_none=True),
                "result": result,
                "blocking": True,
                "details": details,
            }
        )
    return out


def every_class_gates(metrics: dict[str, Any], gates: GatesConfig) -> list[dict[str, Any]]:
    """A classifier must predict, at least once, each class that the test set holds
    (``gates.every_class``); read from the confusion matrix, so nothing is predicted again."""
    matrix = metrics.get("confusion_matrix")
    if not gates.every_class or matrix is None:
        return []
    labels, rows = matrix["labels"], matrix["matrix"]
    present = [label for label, row in zip(labels, rows, strict=True) if sum(row) > 0]
    never = [
        label
        for i, label in enumerate(labels)
        if label in present and sum(row[i] for row in rows) == 0
    ]
    counts = ", ".join(
        f"{label!r}: {sum(row)} rows"
        for label, row in zip(labels, rows, strict=True)
        if label in never
    )
    return [
        {
            "kind": "every_class",
            "name": "predicts every class of the test set",
            "value": len(present) - len(never),
            "result": "fail" if never else "pass",
            "blocking": True,
            "details": (
                f"never predicts {', '.join(map(repr, never))}, present in the test set "
                f"({counts}); "
                "a model for a rare class needs class weights (class_weight: balanced) or more "
                "data; gates.every_class: false turns this gate off"
                if never
                else f"predicts all {len(present)} classes of the test set"
            ),
        }
    ]


def champion_metric(cfg: PipelineConfig) -> ChampionConfig:
    return cfg.gates.champion or ChampionConfig(metric=PRIMARY_METRIC[cfg.task], tolerance=0.0)


def champion_gate(
    cfg: PipelineConfig,
    challenger: dict[str, Any],
    champion: dict[str, Any] | None,
    champion_version: str | None,
    basis: str,
) -> dict[str, Any]:
    """The challenger may be worse than the champion by at most the tolerance."""
    spec = champion_metric(cfg)
    metric, tol = spec.metric, spec.tolerance
    gate: dict[str, Any] = {
        "kind": "champion",
        "name": f"not worse than production on {metric} by more than {tol:g}",
        "metric": metric,
        "value": challenger.get(metric),
        "tolerance": tol,
        "champion_version": champion_version,
        "champion_value": None,
        "basis": basis,
        "blocking": True,
    }
    if champion is None:
        gate.update(
            result="no_champion",
            blocking=False,
            details="no model in production yet: nothing to compare with",
        )
        return gate
    ours, theirs = challenger.get(metric), champion.get(metric)
    gate["champion_value"] = theirs
    if ours is None or theirs is None:
        gate.update(result="error", details=f"{metric} is missing for the challenger or champion")
        return gate
    higher_better = METRICS[cfg.task][metric] == "max"
    delta = ours - theirs if higher_better else theirs - ours  # > 0: challenger better
    gate["delta"] = float(f"{delta:.12g}")
    ok = gate["delta"] >= -tol  # rounded: 0.89 vs 0.90 is exactly 0.01 worse, not 0.0100...09
    gate.update(
        result="pass" if ok else "fail",
        details=f"challenger {metric} = {ours:.6g}, production ({champion_version}) = {theirs:.6g}",
    )
    return gate


def select_candidate(cfg: PipelineConfig, outcomes: dict[str, dict[str, Any]]) -> str | None:
    """The best candidate whose model verdict passed, on the selection metric (ties: the first
    listed); None when no candidate passed."""
    metric = cfg.selection_metric()
    higher_better = METRICS[cfg.task][metric] == "max"
    best: tuple[float, int] | None = None
    chosen = None
    for order, (name, outcome) in enumerate(outcomes.items()):
        if not outcome["verdict"]["passed"]:
            continue
        value = outcome["metrics"].get(metric)
        value = float("-inf") if value is None else (value if higher_better else -value)
        key = (value, -order)
        if best is None or key > best:
            best, chosen = key, name
    return chosen


def release_verdict(
    cfg: PipelineConfig, stages: dict[str, Any], outcomes: dict[str, dict[str, Any]]
) -> tuple[str, dict[str, Any]]:
    """The candidate to publish and the version's verdict: every stage's verdict and each
    candidate's outcome. ``stages`` are the data and split verdicts (both passed); ``outcomes``
    each candidate's model verdict, metrics and verdict path. GateFailed when no candidate
    passed its model gates."""
    chosen = select_candidate(cfg, outcomes)
    if chosen is None:
        failures = [
            (f"{name}: {f}" if cfg.candidates else f)
            for name, o in outcomes.items()
            for f in o["verdict"]["blocking_failures"]
        ]
        paths = [o["verdict_path"] for o in outcomes.values()]
        raise GateFailed("model_evaluation", failures, ", ".join(paths))
    metric = cfg.selection_metric()
    verdict = {
        "passed": True,
        "selected": chosen,
        "selection_metric": metric,
        "stages": {**stages, "model_evaluation": outcomes[chosen]["verdict"]},
        "candidates": {
            name: {
                "passed": o["verdict"]["passed"],
                "blocking_failures": o["verdict"]["blocking_failures"],
                metric: o["metrics"].get(metric),
            }
            for name, o in outcomes.items()
        },
    }
    return chosen, verdict


def champion_delta(model_verdict: dict[str, Any]) -> dict[Any, Any]:
    """The champion gate's metric and its change, as the promotion log records them."""
    champion: dict[str, Any] = next(
        (g for g in model_verdict["gates"] if g["kind"] == "champion"), {}
    )
    return {champion.get("metric"): champion.get("delta")}
