"""The end of the pipeline: publish the best candidate that passed every gate, and the wrapper
cron and ``mlcd run`` ask for."""

from __future__ import annotations

from typing import Any

import luigi

from mlcd import data, gates, registry, storage
from mlcd.errors import StorageError
from mlcd.monitoring import profile
from tasks.base import ConfigPath, PipelineTask, require_passed
from tasks.data import ExtractData, SplitData, ValidateData, ValidateSplit
from tasks.manifest import build_manifest
from tasks.model import EvaluateModel, TrainModel, ValidateModel


class PublishModel(PipelineTask):
    """When every blocking gate passed: the best passing candidate becomes a new immutable
    version, then the production pointer moves to it."""

    stage = "publish"
    files = ("published.json",)

    def requires(self) -> dict[str, Any]:
        kw = {"config_path": self.config_path, "date": self.date}
        return {
            "data": ExtractData(**kw),
            "data_gate": ValidateData(**kw),
            "split": SplitData(**kw),
            "split_gate": ValidateSplit(**kw),
            "candidates": {
                name: {
                    "model": TrainModel(candidate=name, **kw),
                    "evaluate": EvaluateModel(candidate=name, **kw),
                    "model_gate": ValidateModel(candidate=name, **kw),
                }
                for name in self.cfg.models()
            },
        }

    @property
    def version(self) -> str:
        return self.identity

    def produce(self) -> None:
        cfg, req = self.cfg, self.requires()
        stages = {
            "data_integrity": require_passed(req["data_gate"]),
            "train_test": require_passed(req["split_gate"]),
        }
        outcomes = {
            name: {
                "verdict": chain["model_gate"].read_json("verdict.json"),
                "metrics": chain["evaluate"].read_json("metrics.json"),
                "verdict_path": chain["model_gate"].path("verdict.json"),
            }
            for name, chain in req["candidates"].items()
        }
        chosen, verdict = gates.release_verdict(cfg, stages, outcomes)
        chain = req["candidates"][chosen]
        self.progress(10, f"collecting the artifacts of candidate {chosen}")
        train_info = chain["model"].read_json("train.json")
        files = registry.bundle(
            model=chain["model"].read("model.joblib"),
            metrics=chain["evaluate"].read("metrics.json"),
            predictions=chain["evaluate"].read("predictions.parquet"),
            verdict=verdict,
            plots={
                n: chain["evaluate"].read(f"plots/{n}")
                for n in chain["evaluate"].read_json("plots.json")
            },
            reports={
                "data_integrity": req["data_gate"].read("report.html"),
                "train_test": req["split_gate"].read("report.html"),
                "model_evaluation": chain["model_gate"].read("report.html"),
            },
            train_info=train_info,
            target=cfg.target,
            task=cfg.task,
            test=self.requires()["split"].rows("test"),
            profile=self._profile(chain["evaluate"]),
        )
        self.progress(60, f"publishing version {self.version}")
        created, promoted = registry.release(
            cfg.publish,
            cfg.name,
            self.version,
            files,
            self._manifest(chosen, outcomes[chosen]["metrics"]),
            reason=f"retrain of {self.date.isoformat()} passed all blocking gates",
            extra={
                "candidate": chosen,
                "metric_delta": gates.champion_delta(outcomes[chosen]["verdict"]),
                "gates_passed": True,
            },
        )
        folder = registry.version_dir(cfg.publish, cfg.name, self.version)
        if created:  # what another publisher wrote is read from its manifest instead
            for rel, blob in files.items():
                self.wrote(rel, storage.join(folder, rel), blob)
        manifest_path = storage.join(folder, registry.MANIFEST_FILE)
        self.wrote(registry.MANIFEST_FILE, manifest_path, storage.read_bytes(manifest_path))
        self.write_json(
            "published.json",
            {
                "version": self.version,
                "candidate": chosen,
                # Relative to the registry: no absolute path inside a digested output.
                "path": f"{cfg.name}/versions/{self.version}",
                "promoted": promoted,
            },
        )
        what = "published" if created else "already published"
        self.result(
            f"version {self.version} of {cfg.name} (candidate {chosen}): {what}"
            + (", now in production" if promoted else "; production unchanged")
        )

    def _profile(self, evaluate: EvaluateModel) -> bytes:
        """The reference profile of the training split and of the test-set predictions, which
        ``mlcd monitor`` measures drift against (docs/monitoring.md)."""
        cfg = self.cfg
        self.progress(30, "profiling the training data")
        return profile.to_bytes(
            profile.build(
                self.requires()["split"].rows("train"),
                self.requires()["data"].roles(),
                target=cfg.target,
                task=cfg.task,
                predictions=data.read_parquet(evaluate.path("predictions.parquet")),
            )
        )

    def _manifest(self, chosen: str, metrics: dict[str, Any]) -> dict[str, Any]:
        # The same record `mlcd run` writes for the run (tasks/manifest.py), with this version's.
        manifest = build_manifest(self, kind="version")
        manifest.update(version=self.version, candidate=chosen, metrics=metrics)
        return manifest

    def artifacts(self) -> dict[str, str]:
        """published.json and the version's files: as the seal lists them, or, when another
        publisher wrote the version (the seal then lists only its manifest), as the manifest
        does."""
        files = super().artifacts()
        version_files = set(files) - {"published.json", registry.MANIFEST_FILE}
        if version_files or registry.MANIFEST_FILE not in files:
            return files
        cfg = self.cfg
        folder = registry.version_dir(cfg.publish, cfg.name, self.version)
        try:
            manifest = registry.read_manifest(cfg.publish, cfg.name, self.version)
        except StorageError:
            return files
        artifacts = manifest.get("artifacts")
        for rel in sorted(artifacts if isinstance(artifacts, dict) else {}):
            files[rel] = storage.join(folder, rel)
        return files


class RetrainPipeline(luigi.WrapperTask):
    """The whole pipeline for one config and one date: what cron and ``mlcd run`` ask for."""

    config_path = ConfigPath(description="the pipeline config (YAML)")
    date = luigi.DateParameter(description="the run date (for cron)")

    def requires(self) -> PublishModel:
        return PublishModel(config_path=self.config_path, date=self.date)
