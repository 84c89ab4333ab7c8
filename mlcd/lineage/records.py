"""What a manifest records of each output, and how a reproduction compares it: run ids, output
records and digests, comparison modes, the config key a parameter comes from."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from mlcd import storage
from mlcd.catalogue import STEPS
from mlcd.fingerprint import canonical, digest, sha256_bytes

if TYPE_CHECKING:
    pass


MANIFEST_FORMAT = 1


RUN_ID_ENV = "MLCD_RUN_ID"


RUNS_DIR = "runs"


MANIFEST_FILE = "manifest.json"


RUN_ID = re.compile(r"\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}")


# How each output is compared with a reproduction:
#   bytes    the sha256 of the file (data, splits, model, predictions, metrics, plots)
#   verdict  each gate's check/condition (or name) and result, not its details (timings)
#   record   the JSON without the keys below, which differ by nature
#   none     not compared: HTML reports carry timestamps and random element ids (their verdict
#            is compared instead); a version's manifest records when and by which run
IGNORED_KEYS: dict[tuple[str, str], tuple[str, ...]] = {
    # The reproduction reads the recorded snapshot itself, so its source is another file, from
    # which the rows without a target were already dropped.
    ("ExtractData", "extract.json"): ("source_fingerprint", "dropped_missing_target"),
    ("TrainModel", "train.json"): ("fit_seconds",),  # wall time
    # The version is the task's identity, which follows the source; promotion follows the
    # registry's state; the path follows the version.
    ("PublishModel", "published.json"): ("version", "path", "location", "promoted"),
}


# Checks whose outcome depends on wall time, not on the data or the model.
VOLATILE_CHECKS = frozenset({"ModelInferenceTime"})


def mapping(obj: Any, key: str) -> dict[str, Any]:
    """``obj[key]`` when both are mappings, else an empty one (manifests are read defensively:
    an older or damaged one may lack a section)."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, dict) else {}


def new_run_id(now: dt.datetime | None = None) -> str:
    """A run id that sorts by time: UTC timestamp to the millisecond, then a random suffix."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return f"{now:%Y%m%dT%H%M%S}.{now.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


_PROCESS_RUN_ID: list[str] = []


def current_run_id() -> str:
    """The id of the run this process works for: ``mlcd run`` sets it in the environment (so
    forked Luigi workers see it too); under the plain ``luigi`` command, one fresh id per
    process."""
    run_id = os.environ.get(RUN_ID_ENV, "")
    if RUN_ID.fullmatch(run_id):
        return run_id
    if not _PROCESS_RUN_ID:
        _PROCESS_RUN_ID.append(new_run_id())
    return _PROCESS_RUN_ID[0]


def compare_mode(family: str, name: str) -> str:
    if name.endswith(".html") or name == MANIFEST_FILE:
        return "none"
    if name == "verdict.json":
        return "verdict"
    if (family, name) in IGNORED_KEYS:
        return "record"
    return "bytes"


def gate_outcome(gate: dict[str, Any]) -> list[Any]:
    """A gate as compared between runs: its kind, what it checks, its result, whether it
    blocks (the details, which carry values and timings, are left out)."""
    kind = gate.get("kind")
    if kind == "deepchecks":
        what = str(gate.get("check"))
        if gate.get("condition"):
            what += f": {gate['condition']}"
    elif kind == "champion":
        what = f"{gate.get('name')} (champion {gate.get('champion_version')})"
    else:
        what = str(gate.get("name"))
    return [kind, what, gate.get("result"), bool(gate.get("blocking"))]


def verdict_outcomes(verdict: Any) -> Any:
    """The comparable part of a verdict (a stage's, or a published version's with every stage)."""
    if not isinstance(verdict, dict):
        return None
    stages = verdict.get("stages")
    if isinstance(stages, dict):
        candidates = mapping(verdict, "candidates")
        return {
            "passed": verdict.get("passed"),
            "selected": verdict.get("selected"),
            "candidates": {
                name: bool(c.get("passed")) if isinstance(c, dict) else None
                for name, c in sorted(candidates.items())
            },
            "stages": {name: verdict_outcomes(v) for name, v in sorted(stages.items())},
        }
    gates = [
        gate_outcome(g)
        for g in verdict.get("gates") or []
        if isinstance(g, dict) and g.get("check") not in VOLATILE_CHECKS
    ]
    return {
        "stage": verdict.get("stage"),
        "candidate": verdict.get("candidate"),
        "passed": verdict.get("passed"),
        "gates": gates,
    }


def without_champion(outcomes: Any) -> Any:
    """Outcomes without the champion gate (when the champion of the time cannot be restored)."""
    if not isinstance(outcomes, dict):
        return outcomes
    if "stages" in outcomes:
        stages = {k: without_champion(v) for k, v in outcomes["stages"].items()}
        return {**outcomes, "stages": stages, "passed": None}
    gates = [g for g in outcomes.get("gates") or [] if g[0] != "champion"]
    return {**outcomes, "gates": gates, "passed": None}


def record_digest(family: str, name: str, obj: Any) -> str:
    ignored = IGNORED_KEYS.get((family, name), ())
    if isinstance(obj, dict):
        obj = {k: v for k, v in obj.items() if k not in ignored}
    return digest(obj)


def _relative(path: str, roots: dict[str, str]) -> tuple[str, str]:
    for root, base in roots.items():
        prefix = base.rstrip("/") + "/"
        if path.startswith(prefix):
            return root, path[len(prefix) :]
    return "absolute", path


def resolve(output: dict[str, Any], roots: dict[str, str]) -> str | None:
    """The location of a recorded output under ``roots`` (None if it was not recorded there)."""
    root, rel = output.get("root"), output.get("path")
    if not isinstance(rel, str):
        return None
    if root == "absolute":
        return rel
    base = roots.get(str(root))
    return storage.join(base, rel) if base else None


def content_record(family: str, name: str, blob: bytes) -> dict[str, Any]:
    """What a manifest records of an output's content: its digest, size, and the part a
    reproduction compares (a verdict's outcomes, a record's digest without timings)."""
    mode = compare_mode(family, name)
    record: dict[str, Any] = {"sha256": sha256_bytes(blob), "bytes": len(blob)}
    if mode in ("verdict", "record"):
        try:
            obj = json.loads(blob)
        except ValueError:
            obj = None
        if mode == "verdict":
            record["outcomes"] = verdict_outcomes(obj)
        else:
            record["compared_sha256"] = record_digest(family, name, obj)
    return record


def output_record(
    family: str, name: str, path: str, roots: dict[str, str], sealed: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One output: where it is (relative to the workspace or registry), its digest, and what a
    reproduction compares; from the task's seal when it recorded this output, else read."""
    root, rel = _relative(path, roots)
    record: dict[str, Any] = {"root": root, "path": rel, "compare": compare_mode(family, name)}
    if sealed is not None and sealed.get("location") == path:
        record.update({k: v for k, v in sealed.items() if k not in ("location", "content")})
        return record
    found = storage.fetch(path)
    if found is None:
        record["missing"] = True
        return record
    record.update(content_record(family, name, found[0]))
    return record


def label_order(label: str, candidates: list[str]) -> tuple[int, int, str]:
    family, _, rest = label.partition("[")
    candidate = rest.rstrip("]")
    rank = STEPS.index(family) if family in STEPS else len(STEPS)
    index = candidates.index(candidate) if candidate in candidates else -1
    return rank, index, label


def ordered(labels: Iterable[str], candidates: list[str]) -> list[str]:
    return sorted(labels, key=lambda label: label_order(label, candidates))


def plain(obj: Any) -> Any:
    """``obj`` as JSON data (what a manifest stores and a later run compares with)."""
    return json.loads(canonical(obj))


_SUITES = {
    "ValidateData": "validation.data_integrity",
    "ValidateSplit": "validation.train_test",
    "ValidateModel": "validation.model_evaluation",
}


def config_key(family: str, candidate: str | None, candidates: bool, path: tuple[Any, ...]) -> str:
    """The config key a task parameter comes from (``model.params.n_estimators``...)."""
    if not path:
        return "(all parameters)"
    head, rest = path[0], path[1:]
    if head == "suite":
        key = _SUITES.get(family, "validation")
    elif head == "seed":
        key = "split.seed"
    elif head == "model":
        key = f"candidates[{candidate}]" if candidates else "model"
    else:
        key = str(head)
    for part in rest:
        key += f"[{part}]" if isinstance(part, int) else f".{part}"
    return key
