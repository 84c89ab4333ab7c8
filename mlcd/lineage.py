"""Run manifests and lineage: what a run or a published version was computed from.

``build_manifest`` records a pipeline's tasks (identity, parameters, output locations and
digests), its resolved config, source fingerprint, snapshot digest, seeds and environment.
``mlcd run`` writes one for every run under ``<workspace>/runs/<run-id>/manifest.json`` and
PublishModel puts one in every published version; ``mlcd lineage`` renders one as text or
Graphviz DOT, and ``mlcd reproduce`` compares a re-execution with it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import secrets
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from mlcd import __version__, registry, storage
from mlcd.errors import NotFound, StorageError, UsageError
from mlcd.fingerprint import canonical, digest, environment, package_versions, sha256_bytes

if TYPE_CHECKING:
    from mlcd.config import PipelineConfig

MANIFEST_FORMAT = 1
RUN_ID_ENV = "MLCD_RUN_ID"
RUNS_DIR = "runs"
MANIFEST_FILE = "manifest.json"
RUN_ID = re.compile(r"\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}")

# Pipeline order: a difference is reported at the first task in this order.
FAMILIES = (
    "ExtractData",
    "ValidateData",
    "SplitData",
    "ValidateSplit",
    "TrainModel",
    "EvaluateModel",
    "ValidateModel",
    "PublishModel",
)

# How each output is compared with a reproduction:
#   bytes    the sha256 of the file (data, splits, model, predictions, metrics, plots)
#   verdict  each gate's check/condition (or name) and result, not its details (timings)
#   record   the JSON without the keys below, which differ by nature
#   none     not compared: HTML reports carry timestamps and random element ids (their verdict
#            is compared instead); a version's manifest records when and by which run
IGNORED_KEYS: dict[tuple[str, str], tuple[str, ...]] = {
    # The reproduction reads the recorded snapshot itself, so its source is another file.
    ("ExtractData", "extract.json"): ("source_fingerprint",),
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


# --- run ids ---------------------------------------------------------------------------------


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


# --- what is compared ------------------------------------------------------------------------


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


# --- the task graph --------------------------------------------------------------------------


def label_order(label: str, candidates: list[str]) -> tuple[int, int, str]:
    family, _, rest = label.partition("[")
    candidate = rest.rstrip("]")
    rank = FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)
    index = candidates.index(candidate) if candidate in candidates else -1
    return rank, index, label


def ordered(labels: Iterable[str], candidates: list[str]) -> list[str]:
    return sorted(labels, key=lambda label: label_order(label, candidates))


def graph(root: Any) -> list[Any]:
    """Every pipeline task ``root`` needs (and ``root``), in pipeline order."""
    from luigi.task import flatten

    seen: dict[str, Any] = {}
    stack = [root]
    while stack:
        task = stack.pop()
        if task.task_id in seen:
            continue
        seen[task.task_id] = task
        stack.extend(t for t in flatten(task.requires()) if hasattr(t, "identity"))
    cfg = root.cfg
    names = list(cfg.models())
    return sorted(seen.values(), key=lambda t: label_order(t.label(), names))


def plain(obj: Any) -> Any:
    """``obj`` as JSON data (what a manifest stores and a later run compares with)."""
    return json.loads(canonical(obj))


def _champion_version(task: Any) -> str | None:
    if not task.complete():
        return None
    try:
        verdict = task.read_json("verdict.json")
    except StorageError:
        return None
    for gate in verdict.get("gates") or [] if isinstance(verdict, dict) else []:
        if isinstance(gate, dict) and gate.get("kind") == "champion":
            version = gate.get("champion_version")
            return str(version) if version else None
    return None


def task_record(task: Any, roots: dict[str, str]) -> dict[str, Any]:
    from luigi.task import flatten

    family = str(task.get_task_family())
    sealed = task.seal() or {}
    record: dict[str, Any] = {
        "family": family,
        "candidate": getattr(task, "candidate", None),
        "identity": task.identity,
        "params": plain(task.identity_params()),
        "inputs": [t.label() for t in task.identity_inputs()],
        "requires": [t.label() for t in flatten(task.requires()) if hasattr(t, "identity")],
        "complete": bool(task.complete()),
        "outputs": {
            name: output_record(family, name, path, roots, sealed.get(name))
            for name, path in sorted(task.artifacts().items())
        },
    }
    if family == "ValidateModel":
        record["champion_version"] = _champion_version(task)
    return record


def seeds(cfg: Any) -> dict[str, Any]:
    """Every seed that shapes a result: the split's (it also seeds deepchecks) and each model's
    ``random_state`` parameters (None: the estimator is not seeded)."""
    from mlcd.training import check_spec

    models: dict[str, dict[str, Any]] = {}
    for name, spec in cfg.models().items():
        try:
            models[name] = check_spec(spec)["random_state"]
        except Exception:  # the config was checked at load; a failure here records nothing
            models[name] = {}
    return {"split": cfg.split.seed, "deepchecks": cfg.split.seed, "models": models}


def build_manifest(publish_task: Any, *, kind: str, run_id: str | None = None) -> dict[str, Any]:
    """The manifest of a pipeline (PublishModel and all it needs), as it stands on disk.

    ``kind`` is "version" (written into a version by PublishModel, which is left out: it is
    running) or "run" (written by ``mlcd run`` at the end of a run).
    """
    from mlcd import data

    cfg = publish_task.cfg
    roots = {"workspace": cfg.workspace, "publish": cfg.publish}
    tasks = graph(publish_task)
    if kind == "version":
        tasks = [t for t in tasks if t is not publish_task]
    extract = next(t for t in tasks if t.get_task_family() == "ExtractData")
    try:
        info = extract.read_json("extract.json") if extract.complete() else None
    except StorageError:
        info = None
    fingerprint = info.get("source_fingerprint") if isinstance(info, dict) else None
    if fingerprint is None:
        try:
            fingerprint = data.source_fingerprint(cfg.source.for_date(publish_task.date))
        except Exception:  # the source is gone: the run failed for that reason
            fingerprint = None
    sha = extract.snapshot_sha256()
    manifest: dict[str, Any] = {
        "manifest_format": MANIFEST_FORMAT,
        "kind": kind,
        "run_id": run_id or current_run_id(),
        "model": cfg.name,
        "run_date": publish_task.date.isoformat(),
        "command": list(sys.argv),
        "config_path": str(publish_task.config_path),
        "config": cfg.public_dict(),
        "config_digest": digest(cfg.public_dict()),
        "source_fingerprint": fingerprint,
        "snapshot_sha256": sha,
        "snapshot": None
        if sha is None
        else {"root": "workspace", "path": f"snapshots/{sha}.parquet"},
        "seeds": seeds(cfg),
        "tasks": {t.label(): task_record(t, roots) for t in tasks},
        "environment": {"mlcd": __version__, **environment()},
    }
    if kind == "version":
        manifest["published_from"] = [t.label() for t in tasks]
    return manifest


def run_manifest(
    root: Any,
    report: dict[str, Any],
    *,
    run_id: str,
    started_at: dt.datetime,
    exit_code: int,
    scheduler: dict[str, Any],
    workers: int,
) -> dict[str, Any]:
    """The manifest ``mlcd run`` writes at the end of a run (also a no-op or failed one)."""
    publish_task = root.requires()
    manifest = build_manifest(publish_task, kind="run", run_id=run_id)
    finished = dt.datetime.now(dt.UTC)
    published = report.get("published")
    manifest.update(
        status="success" if report.get("ok") else "failed",
        exit_code=exit_code,
        started_at=started_at.isoformat(timespec="milliseconds"),
        finished_at=finished.isoformat(timespec="milliseconds"),
        seconds=round((finished - started_at).total_seconds(), 3),
        scheduler=(
            "local"
            if scheduler.get("local_scheduler", True)
            else f"{scheduler.get('scheduler_host')}:{scheduler.get('scheduler_port', 8082)}"
        ),
        workers=workers,
        ran=list(report.get("ran") or []),
        already_complete=list(report.get("already_complete") or []),
        failed=list(report.get("failed") or []),
        failures=list(report.get("failures") or []),
        version=publish_task.version,
        published=(
            None
            if not published
            else {
                "version": published.get("version"),
                "candidate": published.get("candidate"),
                "promoted": published.get("promoted"),
                # False: an earlier run published it, this one found it complete
                "by_this_run": "PublishModel" in (report.get("ran") or []),
            }
        ),
    )
    return manifest


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


# --- reading manifests -----------------------------------------------------------------------


def check_manifest(obj: Any, where: str) -> dict[str, Any]:
    """``obj`` if it is a manifest mlcd can use; otherwise a StorageError naming ``where``."""
    fix = (
        "it is corrupted or was not written by mlcd; restore it from a backup (a version's "
        "manifest is also listed by `mlcd models show`)"
    )
    if not isinstance(obj, dict):
        raise StorageError(f"{where} is not a manifest (not a JSON object): {fix}")
    for key, kind in (("tasks", dict), ("config", dict), ("run_date", str)):
        if not isinstance(obj.get(key), kind):
            raise StorageError(f"{where} is not a valid manifest (no '{key}'): {fix}")
    recorded_digest = obj.get("config_digest")
    if recorded_digest is not None and recorded_digest != digest(obj["config"]):
        raise StorageError(
            f"{where} does not match itself: its config's digest is not the recorded "
            f"config_digest (the file was edited or damaged): {fix}"
        )
    for label, record in obj["tasks"].items():
        if not isinstance(record, dict) or not isinstance(record.get("outputs", {}), dict):
            raise StorageError(f"{where} is not a valid manifest (task {label!r}): {fix}")
        outputs = record.get("outputs", {})
        family = str(record.get("family") or label.partition("[")[0])
        record.setdefault("family", family)
        record.setdefault("complete", True)
        for name, output in list(outputs.items()):
            if isinstance(output, str):  # manifests of mlcd before run manifests: name -> sha256
                outputs[name] = {"sha256": output, "compare": compare_mode(family, name)}
            elif not isinstance(output, dict):
                raise StorageError(
                    f"{where} is not a valid manifest (output {label}/{name}): {fix}"
                )
    return obj


def read_manifest_file(path: str, what: str) -> dict[str, Any]:
    if not storage.exists(path):
        raise StorageError(f"{what} has no manifest at {path!r} (deleted?)")
    try:
        obj = json.loads(storage.read_bytes(path))
    except ValueError:
        raise StorageError(
            f"the manifest of {what} at {path!r} is corrupted (not valid JSON); restore it from "
            "a backup, or choose another run (`mlcd runs list`)"
        ) from None
    return check_manifest(obj, f"the manifest of {what} at {path!r}")


def runs_dir(workspace: str) -> str:
    return storage.join(workspace, RUNS_DIR)


def run_manifest_path(workspace: str, run_id: str) -> str:
    return storage.join(workspace, RUNS_DIR, run_id, MANIFEST_FILE)


def write_run_manifest(workspace: str, manifest: dict[str, Any]) -> str:
    path = run_manifest_path(workspace, str(manifest["run_id"]))
    storage.write_json(path, manifest)
    return path


def run_ids(workspace: str) -> list[str]:
    """The ids of the runs recorded in a workspace, oldest first."""
    return [name for name in storage.list_dir(runs_dir(workspace)) if RUN_ID.fullmatch(name)]


def resolve_run(workspace: str, text: str) -> str | None:
    """The run id ``text`` names (the id or a unique prefix); None when it names no run."""
    ids = run_ids(workspace)
    if text in ids:
        return text
    matches = [r for r in ids if r.startswith(text)] if text else []
    if len(matches) > 1:
        shown = ", ".join(matches[:4]) + (", ..." if len(matches) > 4 else "")
        raise UsageError(
            f"run prefix {text!r} is ambiguous (it matches {shown}); give more characters"
        )
    return matches[0] if matches else None


def read_run(workspace: str, run_id: str) -> dict[str, Any]:
    return read_manifest_file(run_manifest_path(workspace, run_id), f"run {run_id}")


def require_run(workspace: str, text: str) -> str:
    run_id = resolve_run(workspace, text)
    if run_id is None:
        raise NotFound(
            f"no run {text!r} in {runs_dir(workspace)!r}; `mlcd runs list` lists the runs of a "
            "config (pass the run's config with --config)"
        )
    return run_id


def run_summaries(workspace: str, model: str | None) -> Iterator[dict[str, Any]]:
    """One line's worth of each run (newest first); a run whose manifest cannot be read is
    listed with its problem."""
    for run_id in reversed(run_ids(workspace)):
        try:
            m = read_run(workspace, run_id)
        except StorageError as exc:
            yield {"run_id": run_id, "problem": str(exc)}
            continue
        if model is not None and m.get("model") != model:
            continue
        published = m.get("published") if isinstance(m.get("published"), dict) else None
        env = mapping(m, "environment")
        yield {
            "run_id": run_id,
            "model": m.get("model"),
            "run_date": m.get("run_date"),
            "status": m.get("status"),
            "exit_code": m.get("exit_code"),
            "ran": len(m.get("ran") or []),
            "already_complete": len(m.get("already_complete") or []),
            "version": m.get("version"),
            "published": published.get("version") if published else None,
            "promoted": published.get("promoted") if published else None,
            "by_this_run": published.get("by_this_run", True) if published else None,
            "snapshot_sha256": m.get("snapshot_sha256"),
            "seconds": m.get("seconds"),
            "git_commit": env.get("git_commit"),
            "git_dirty": env.get("git_dirty"),
        }


def recorded_tasks(manifest: dict[str, Any], version_folder: str | None) -> dict[str, Any]:
    """The manifest's tasks; for a version's manifest, with PublishModel's outputs taken from
    the version's artifacts (PublishModel writes that manifest while it runs)."""
    tasks = dict(manifest["tasks"])
    artifacts = manifest.get("artifacts")
    if "PublishModel" in tasks or not isinstance(artifacts, dict):
        return tasks
    outputs: dict[str, Any] = {}
    for rel, info in sorted(artifacts.items()):
        sha = info.get("sha256") if isinstance(info, dict) else None
        mode = compare_mode("PublishModel", rel)
        out: dict[str, Any] = {"root": "version", "path": rel, "sha256": sha, "compare": mode}
        if isinstance(info, dict):
            out["bytes"] = info.get("bytes")
        if mode == "verdict" and version_folder is not None:
            path = storage.join(version_folder, rel)
            if storage.exists(path):
                blob = storage.read_bytes(path)
                if sha256_bytes(blob) == sha:
                    try:
                        out["outcomes"] = verdict_outcomes(json.loads(blob))
                    except ValueError:
                        pass
        outputs[rel] = out
    tasks["PublishModel"] = {
        "family": "PublishModel",
        "candidate": None,
        "identity": manifest.get("version"),
        "params": {},
        "requires": list(manifest.get("published_from") or tasks),
        "complete": True,
        "outputs": outputs,
    }
    return tasks


def environment_differences(recorded: Any) -> list[str]:
    """Each result-shaping library (and Python) whose version differs from the recorded one."""
    if not isinstance(recorded, dict):
        return ["the manifest records no environment"]
    out = []
    python = sys.version.split()[0]
    if recorded.get("python") not in (None, python):
        out.append(f"Python {recorded.get('python')} recorded, {python} here")
    packages = mapping(recorded, "packages")
    now = package_versions()
    for name in sorted(set(packages) | set(now)):
        if name == "mlcd":
            continue
        before, after = packages.get(name), now.get(name)
        if name in packages and before != after:
            out.append(f"{name} {before or 'absent'} recorded, {after or 'absent'} here")
    return out


# --- what a run id or version names ---------------------------------------------------------


@dataclasses.dataclass
class Subject:
    """What is reproduced: a run (its manifest in the workspace) or a published version."""

    kind: str  # "run" or "version"
    id: str
    model: str
    manifest: dict[str, Any]
    version_folder: str | None = None

    def __str__(self) -> str:
        return f"{self.kind} {self.id}" + (
            f" of model {self.model}" if self.kind == "version" else ""
        )


def locate(cfg: PipelineConfig, text: str) -> Subject:
    """The run or version ``text`` names: a run id (or unique prefix) in the config's workspace,
    a version (or unique prefix) of the config's model, or ``NAME:VERSION``."""
    if not text.strip():
        raise UsageError("name a run id or a version (`mlcd runs list`, `mlcd models list`)")
    model, sep, version_text = text.rpartition(":")
    if sep:
        registry.require_model(cfg.publish, model)
        return _version(
            cfg.publish, model, registry.resolve_version(cfg.publish, model, version_text)
        )
    run_id = resolve_run(cfg.workspace, text)
    ids = registry.version_ids(cfg.publish, cfg.name)
    versions = [v for v in ids if v == text] or [v for v in ids if v.startswith(text)]
    if run_id is not None and versions:
        if run_id == text:
            versions = []
        elif text in versions:
            run_id = None
        else:
            raise UsageError(
                f"{text!r} is the start of run {run_id} and of version {versions[0]}; give more "
                "characters"
            )
    if run_id is not None:
        manifest = read_run(cfg.workspace, run_id)
        return Subject("run", run_id, str(manifest.get("model")), manifest)
    if len(versions) > 1:
        registry.resolve_version(cfg.publish, cfg.name, text)  # raises: ambiguous
    if versions:
        return _version(cfg.publish, cfg.name, versions[0])
    raise NotFound(
        f"{text!r} is neither a run in {runs_dir(cfg.workspace)!r} (`mlcd runs list`) nor "
        f"a version of model {cfg.name!r} in {cfg.publish!r} (`mlcd models list {cfg.name}`); "
        "pass the config it was made with (--config)"
    )


def _version(publish: str, model: str, version: str) -> Subject:
    folder = registry.version_dir(publish, model, version)
    what = f"version {version} of model {model}"
    manifest = read_manifest_file(storage.join(folder, registry.MANIFEST_FILE), what)
    return Subject("version", version, model, manifest, folder)


# --- lineage: text and DOT -------------------------------------------------------------------


def _short(sha: Any) -> str:
    return str(sha)[:12] if sha else "-"


def describe_source(fingerprint: Any) -> str:
    if not isinstance(fingerprint, dict):
        return "unknown"
    if fingerprint.get("kind") == "sklearn":
        return (
            f"bundled dataset {fingerprint.get('dataset')} "
            f"(scikit-learn {fingerprint.get('sklearn')})"
        )
    return (
        f"{fingerprint.get('kind')} file, sha256 {_short(fingerprint.get('sha256'))}, "
        f"{fingerprint.get('size')} bytes"
    )


def _seed_text(seed_info: Any) -> str:
    if not isinstance(seed_info, dict):
        return "-"
    parts = [f"split {seed_info.get('split')}", f"deepchecks {seed_info.get('deepchecks')}"]
    for name, params in (seed_info.get("models") or {}).items():
        shown = ", ".join(f"{k}={v}" for k, v in params.items()) or "no random_state"
        parts.append(f"{name} {shown}")
    return "; ".join(parts)


def _champion_text(tasks: dict[str, Any]) -> str:
    versions = sorted(
        {str(r["champion_version"]) for r in tasks.values() if r.get("champion_version")}
    )
    if versions:
        return f"version {', '.join(versions)} (in production when the gates ran)"
    if any(r.get("family") == "ValidateModel" and "champion_version" in r for r in tasks.values()):
        return "none (no version was in production)"
    return "not recorded"


def _wrapped(first: str, text: str, width: int = 100) -> list[str]:
    """``text`` after the label ``first``, wrapped, continuation lines indented under it."""
    import textwrap

    indent = " " * len(first)
    return textwrap.wrap(
        text,
        width=width,
        initial_indent=first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [first.rstrip()]


def _output_text(name: str, output: dict[str, Any]) -> str:
    if output.get("missing"):
        return f"{name} (missing)"
    text = f"{name} {_short(output.get('sha256'))}"
    outcomes = output.get("outcomes")
    if isinstance(outcomes, dict) and outcomes.get("passed") is not None:
        text += " (passed)" if outcomes["passed"] else " (FAILED)"
    return text


def lineage(manifest: dict[str, Any], version_folder: str | None) -> dict[str, Any]:
    """The lineage of a version (or run): its nodes and edges, from the config and the source
    through the snapshot and every task to the version."""
    tasks = recorded_tasks(manifest, version_folder)
    cfg = manifest["config"]
    candidates = [str(c.get("name")) for c in cfg.get("candidates") or [] if isinstance(c, dict)]
    labels = ordered(tasks, candidates)
    nodes: list[dict[str, Any]] = [
        {
            "id": "config",
            "kind": "config",
            "label": f"config {cfg.get('name')}",
            "detail": f"sha256 {_short(manifest.get('config_digest'))}",
        },
        {
            "id": "source",
            "kind": "source",
            "label": "source",
            "detail": describe_source(manifest.get("source_fingerprint")),
        },
        {
            "id": "snapshot",
            "kind": "snapshot",
            "label": "snapshot",
            "detail": f"sha256 {_short(manifest.get('snapshot_sha256'))}",
        },
    ]
    edges: list[dict[str, Any]] = [{"from": "source", "to": "ExtractData", "label": "read"}]
    edges.append({"from": "ExtractData", "to": "snapshot", "label": "wrote"})
    for label in labels:
        record = tasks[label]
        nodes.append(
            {
                "id": label,
                "kind": "task",
                "label": label,
                "detail": str(record.get("identity")),
            }
        )
        params = record.get("params")
        candidate = record.get("candidate")
        keys = ", ".join(
            sorted(
                config_key(str(record.get("family")), candidate, bool(candidates), (key,))
                for key in (params if isinstance(params, dict) else {})
            )
        )
        if keys:
            edges.append({"from": "config", "to": label, "label": keys, "style": "config"})
        for required in record.get("requires") or []:
            if required == "ExtractData" and label != "PublishModel":
                source = "snapshot"  # the tasks after extraction read the snapshot by digest
            else:
                source = required
            if source in tasks or source == "snapshot":
                edges.append({"from": source, "to": label, "label": ""})
    for label in labels:
        champion = tasks[label].get("champion_version")
        if champion:
            if not any(n["id"] == "champion" for n in nodes):
                nodes.append(
                    {
                        "id": "champion",
                        "kind": "version",
                        "label": "champion",
                        "detail": f"version {champion} (in production then)",
                    }
                )
            edges.append({"from": "champion", "to": label, "label": "compared with"})
    version = manifest.get("version")
    if (
        version
        and "PublishModel" in tasks
        and (manifest.get("kind") != "run" or manifest.get("published"))
    ):
        model = tasks["PublishModel"]["outputs"].get("model.joblib") or {}
        nodes.append(
            {
                "id": "version",
                "kind": "version",
                "label": f"version {version}",
                "detail": f"model.joblib {_short(model.get('sha256'))}",
            }
        )
        edges.append({"from": "PublishModel", "to": "version", "label": "published"})
    return {"nodes": nodes, "edges": edges, "tasks": tasks, "order": labels}


def lineage_text(manifest: dict[str, Any], version_folder: str | None, snapshot_state: str) -> str:
    graph_ = lineage(manifest, version_folder)
    tasks = graph_["tasks"]
    env = mapping(manifest, "environment")
    packages = mapping(env, "packages")
    cfg = manifest["config"]
    version = manifest.get("version")
    head = f"model {manifest.get('model')}"
    if manifest.get("kind") == "version":
        head += f", version {version} (candidate {manifest.get('candidate')})"
    else:
        head += f", run {manifest.get('run_id')} ({manifest.get('status')})"
    commit = env.get("git_commit")
    code = f"mlcd {env.get('mlcd') or packages.get('mlcd')}"
    if commit:
        code += f", git {str(commit)[:12]}" + (
            " (with uncommitted changes)" if env.get("git_dirty") else ""
        )
    else:
        code += ", not a git checkout"
    libs = ", ".join(f"{k} {v}" for k, v in packages.items() if k != "mlcd" and v)
    lines = [
        head,
        f"  run          {manifest.get('run_id')}, date {manifest.get('run_date')}"
        + (f", published {manifest['created_at']}" if manifest.get("created_at") else ""),
        f"  command      {' '.join(str(a) for a in manifest.get('command') or []) or '-'}",
        f"  code         {code}",
        f"  environment  Python {env.get('python')} on {env.get('platform')}",
        *_wrapped("               ", libs),
        f"  config       sha256 {_short(manifest.get('config_digest'))} "
        f"(name {cfg.get('name')}, task {cfg.get('task')}, "
        f"from {manifest.get('config_path', '-')})",
        f"  source       {describe_source(manifest.get('source_fingerprint'))}",
        f"  snapshot     sha256 {_short(manifest.get('snapshot_sha256'))} ({snapshot_state})",
        f"  seeds        {_seed_text(manifest.get('seeds'))}",
        f"  champion     {_champion_text(tasks)}",
        "",
        "tasks, from the data to the version (identity; inputs; parameters; outputs):",
    ]
    for label in graph_["order"]:
        record = tasks[label]
        requires = [r for r in record.get("requires") or []]
        lines.extend(
            _wrapped(
                f"  {label:<24} {record.get('identity')}  from ",
                ", ".join(requires) or "the source",
            )
        )
        params = record.get("params")
        if params:
            text = json.dumps(params, sort_keys=True, separators=(", ", ": "), default=str)
            lines.extend(_wrapped("      params   ", text))
        outputs = [
            _output_text(name, out)
            for name, out in sorted(record.get("outputs", {}).items())
            if out.get("compare") != "none"
        ]
        for start in range(0, len(outputs), 3):
            prefix = "outputs " if start == 0 else "        "
            lines.append(f"      {prefix} {',  '.join(outputs[start : start + 3])}")
    if version and "PublishModel" in tasks:
        lines.append(f"  -> version {version}")
    return "\n".join(lines)


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lineage_dot(manifest: dict[str, Any], version_folder: str | None) -> str:
    """The lineage as a Graphviz digraph (``dot -Tsvg`` draws it)."""
    graph_ = lineage(manifest, version_folder)
    shapes = {
        "config": "note",
        "source": "cylinder",
        "snapshot": "cylinder",
        "task": "box",
        "version": "box3d",
    }
    name = f"lineage {manifest.get('model')} {manifest.get('version') or manifest.get('run_id')}"
    lines = [
        f"digraph {_dot_id(name)} {{",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=8];',
    ]
    for node in graph_["nodes"]:
        label = f"{node['label']}\\n{node['detail']}".replace('"', "'")
        lines.append(f'  {_dot_id(node["id"])} [shape={shapes[node["kind"]]}, label="{label}"];')
    for edge in graph_["edges"]:
        attrs = []
        if edge.get("label"):
            attrs.append(f"label={_dot_id(edge['label'])}")
        if edge.get("style") == "config":
            attrs.append("style=dashed")
            attrs.append("color=gray50")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"  {_dot_id(edge['from'])} -> {_dot_id(edge['to'])}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"
