"""What ``mlcd lineage`` and ``mlcd reproduce`` are asked about: a recorded run of the workspace or
a published version of the registry, found from what a person types."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from mlcd import registry, storage
from mlcd.errors import NotFound, UsageError
from mlcd.lineage.runs import read_manifest_file, read_run, resolve_run, runs_dir

if TYPE_CHECKING:
    from mlcd.config import PipelineConfig


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
