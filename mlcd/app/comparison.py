"""Comparing a reproduction's outputs with the recorded ones, task by task, and saying in words
what differs."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from mlcd import lineage, storage
from mlcd.app.subjects import Subject
from mlcd.storage.integrity import mismatch


@dataclasses.dataclass
class OutputCheck:
    name: str
    compare: str
    result: str  # identical, different, not compared
    detail: str = ""


@dataclasses.dataclass
class TaskCheck:
    label: str
    result: str  # identical, different, missing, not run
    outputs: list[OutputCheck] = dataclasses.field(default_factory=list)
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.result in ("identical", "not run")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Reproduction:
    subject: Subject
    tasks: list[TaskCheck]
    warnings: list[str]
    scratch: str
    kept: bool
    run_id: str
    seconds: float
    champion: str | None
    champion_compared: bool

    @property
    def identical(self) -> bool:
        return all(t.ok for t in self.tasks)

    @property
    def first_difference(self) -> TaskCheck | None:
        return next((t for t in self.tasks if not t.ok), None)

    def as_dict(self) -> dict[str, Any]:
        first = self.first_difference
        return {
            "subject": {
                "kind": self.subject.kind,
                "id": self.subject.id,
                "model": self.subject.model,
            },
            "run_id": self.subject.manifest.get("run_id"),
            "identical": self.identical,
            "first_difference": first.as_dict() if first else None,
            "tasks": [t.as_dict() for t in self.tasks],
            "warnings": self.warnings,
            "champion": self.champion,
            "champion_compared": self.champion_compared,
            "reproduction_run_id": self.run_id,
            "scratch": self.scratch if self.kept else None,
            "seconds": round(self.seconds, 3),
        }


def _load(output: dict[str, Any], roots: dict[str, str]) -> bytes | None:
    """An output's bytes where they are and still match their record (else None)."""
    path = lineage.resolve(output, roots)
    if path is None or not storage.exists(path):
        return None
    blob = storage.read_bytes(path)
    return None if mismatch(blob, output.get("sha256")) else blob


def _frame(blob: bytes | None) -> Any:
    if blob is None:
        return None
    import io

    import pandas as pd

    try:
        return pd.read_parquet(io.BytesIO(blob))
    except Exception:
        return None


def _json(blob: bytes | None) -> Any:
    try:
        return json.loads(blob) if blob is not None else None
    except ValueError:
        return None


def _number(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _frame_difference(name: str, old: Any, new: Any) -> str:
    if old.shape != new.shape or list(old.columns) != list(new.columns):
        return (
            f"{name}: {old.shape[0]} rows x {old.shape[1]} columns recorded, "
            f"{new.shape[0]} x {new.shape[1]} reproduced"
        )
    if name == "predictions.parquet" and "predicted" in old.columns:
        changed = int((old["predicted"].to_numpy() != new["predicted"].to_numpy()).sum())
        text = f"test-set predictions differ in {changed} of {len(old)} rows"
        proba = [c for c in old.columns if str(c).startswith("proba")]
        if proba:
            gap = float((old[proba] - new[proba]).abs().to_numpy().max())
            text += f"; probabilities differ by up to {gap:.3g}"
        return text
    rows = int((old.fillna(0).to_numpy() != new.fillna(0).to_numpy()).any(axis=1).sum())
    if not old.index.equals(new.index):
        return f"{name}: other rows (the index differs)"
    return (
        f"{name}: {rows} of {len(old)} rows differ" if rows else f"{name}: same values, other bytes"
    )


def _metrics_difference(old: Any, new: Any) -> str:
    if not isinstance(old, dict) or not isinstance(new, dict):
        return "metrics differ"
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    scalar = [k for k in keys if not isinstance(old.get(k, new.get(k)), dict | list)]
    shown = [f"{k} {_number(old.get(k))} -> {_number(new.get(k))}" for k in scalar[:6]]
    shown += [f"{k} differs" for k in keys if k not in scalar][:3]
    return "metrics differ: " + ", ".join(shown) + (", ..." if len(scalar) > 6 else "")


def _outcome_difference(old: Any, new: Any) -> str:
    def flat(outcomes: Any, prefix: str = "") -> dict[str, Any]:
        if not isinstance(outcomes, dict):
            return {}
        if "stages" in outcomes:
            out: dict[str, Any] = {
                "passed": outcomes.get("passed"),
                "selected": outcomes.get("selected"),
            }
            for stage, value in (outcomes.get("stages") or {}).items():
                out.update(flat(value, f"{stage}: "))
            return out
        out = {f"{prefix}passed": outcomes.get("passed")}
        for _kind, what, result, blocking in outcomes.get("gates") or []:
            out[f"{prefix}{what}"] = f"{result}{' (blocking)' if blocking else ''}"
        return out

    before, after = flat(old), flat(new)
    changes = [
        f"{key}: {before.get(key, 'absent')} -> {after.get(key, 'absent')}"
        for key in list(before) + [k for k in after if k not in before]
        if before.get(key) != after.get(key)
    ]
    if not changes:
        return "gate outcomes differ in order"
    return "gates differ: " + "; ".join(changes[:4]) + ("; ..." if len(changes) > 4 else "")


def explain(
    family: str,
    name: str,
    mode: str,
    old: dict[str, Any],
    new: dict[str, Any],
    old_roots: dict[str, str],
    new_roots: dict[str, str],
    champion: bool,
) -> str:
    """How an output differs, in words: model bytes, metrics, predictions, rows, gates..."""
    if mode == "verdict":
        old_o, new_o = old.get("outcomes"), new.get("outcomes")
        if not champion:
            old_o, new_o = lineage.without_champion(old_o), lineage.without_champion(new_o)
        return _outcome_difference(old_o, new_o)
    digests = (
        f"sha256 {str(old.get('sha256'))[:12]} recorded, {str(new.get('sha256'))[:12]} reproduced"
    )
    before, after = _load(old, old_roots), _load(new, new_roots)
    if name == "model.joblib":
        return f"model bytes differ ({digests}; {old.get('bytes')} vs {new.get('bytes')} bytes)"
    if before is None:
        return f"{name} differs ({digests}; the original file is no longer there to compare)"
    if name.endswith(".parquet"):
        old_f, new_f = _frame(before), _frame(after)
        if old_f is not None and new_f is not None:
            return _frame_difference(name, old_f, new_f)
    if name == "metrics.json":
        return _metrics_difference(_json(before), _json(after))
    if name.endswith(".json"):
        old_j, new_j = _json(before), _json(after)
        if isinstance(old_j, dict) and isinstance(new_j, dict):
            ignored = lineage.IGNORED_KEYS.get((family, name), ())
            keys = [
                k
                for k in sorted(set(old_j) | set(new_j))
                if old_j.get(k) != new_j.get(k) and k not in ignored
            ]
            if keys:
                return f"{name}: {', '.join(keys)} differ{'s' if len(keys) == 1 else ''}"
            return f"{name}: other bytes"
    return f"{name} differs ({digests})"


def compare(
    recorded: dict[str, Any],
    reproduced: dict[str, Any],
    *,
    old_roots: dict[str, str],
    new_roots: dict[str, str],
    champion: bool,
    candidates: list[str],
) -> list[TaskCheck]:
    """Every recorded task's outputs against the reproduction's, in pipeline order."""
    new_tasks = reproduced["tasks"]
    failures = {f.get("task"): f for f in reproduced.get("failures") or [] if isinstance(f, dict)}
    checks = []
    for label in lineage.ordered(recorded, candidates):
        rec, new = recorded[label], new_tasks.get(label)
        done = bool(new and new.get("complete"))
        if not rec.get("complete", True):
            result = "different" if done else "not run"
            detail = "the recorded run did not complete it; the reproduction did" if done else ""
            checks.append(TaskCheck(label, result, detail=detail))
            continue
        if not done:
            failure = failures.get(label)
            why = f"{failure['kind']}: {failure['message']}" if failure else "it did not run"
            checks.append(
                TaskCheck(label, "missing", detail=f"not completed in the reproduction ({why})")
            )
            continue
        assert new is not None
        outputs = []
        for name, old in sorted(rec.get("outputs", {}).items()):
            mode = str(old.get("compare") or lineage.compare_mode(rec["family"], name))
            if mode == "none" or old.get("missing"):
                continue
            out = new["outputs"].get(name) or {"missing": True}
            if out.get("missing"):
                outputs.append(OutputCheck(name, mode, "different", f"{name} was not produced"))
                continue
            if mode == "bytes":
                same: bool | None = old.get("sha256") == out.get("sha256")
            elif mode == "record":
                theirs = old.get("compared_sha256")
                same = None if theirs is None else theirs == out.get("compared_sha256")
            else:
                old_o, new_o = old.get("outcomes"), out.get("outcomes")
                if not champion:
                    old_o, new_o = lineage.without_champion(old_o), lineage.without_champion(new_o)
                same = None if old_o is None else old_o == new_o
            if same is None:
                outputs.append(
                    OutputCheck(
                        name, mode, "not compared", "the manifest records no comparable form"
                    )
                )
            elif same:
                outputs.append(OutputCheck(name, mode, "identical"))
            else:
                detail = explain(
                    rec["family"], name, mode, old, out, old_roots, new_roots, champion
                )
                outputs.append(OutputCheck(name, mode, "different", detail))
        differing = [o for o in outputs if o.result == "different"]
        checks.append(
            TaskCheck(
                label,
                "different" if differing else "identical",
                outputs,
                "; ".join(o.detail for o in differing),
            )
        )
    return checks
