"""The retrain pipeline as Luigi tasks. Each ``run()`` loads its inputs, calls ``mlcd``, and
writes its outputs; the work itself lives in the library.

    ExtractData -> ValidateData -> SplitData -> ValidateSplit -> TrainModel -> EvaluateModel
        -> ValidateModel -> PublishModel -> RetrainPipeline
"""

from __future__ import annotations

import functools
import time
from typing import Any

import luigi

from mlcd import data, lineage, metrics, registry, storage, training, validation
from mlcd.config import ModelConfig, SourceConfig
from mlcd.errors import ConfigError, GateFailed
from mlcd.fingerprint import sha256_bytes
from tasks.base import PipelineTask


def _require_passed(gate: PipelineTask) -> dict[str, Any]:
    verdict: dict[str, Any] = gate.read_json("verdict.json")
    if not verdict["passed"]:
        raise GateFailed(verdict["stage"], verdict["blocking_failures"], gate.path("verdict.json"))
    return verdict


class ExtractData(PipelineTask):
    """Snapshot the source (bundled dataset, CSV or Parquet) as Parquet, with its fingerprint.

    The snapshot is kept by content, ``<workspace>/snapshots/<sha256>.parquet``; this task's own
    folder holds ``extract.json``, which records the digest. It is complete when both exist, and
    the tasks after it read the snapshot through the digest, so a run can be rebuilt from its
    snapshot after the source has changed.
    """

    stage = "extract"
    files = ("extract.json",)

    def snapshot_sha256(self) -> str | None:
        """The digest of the snapshot this task extracted (None before it ran)."""
        if not self.complete():
            return None
        try:
            sha = self.read_json("extract.json").get("snapshot_sha256")
            data.snapshot_path(self.cfg.workspace, sha)  # a well-formed digest
        except (storage.StorageError, AttributeError):
            return None  # unreadable: extract again
        return str(sha)

    def snapshot_path(self) -> str | None:
        sha = self.snapshot_sha256()
        return None if sha is None else data.snapshot_path(self.cfg.workspace, sha)

    def snapshot(self) -> Any:
        """The snapshot as a DataFrame, checked against its digest."""
        sha = self.snapshot_sha256()
        if sha is None:
            raise storage.StorageError(
                f"{self.path('extract.json')!r} is missing or unreadable; run the pipeline again "
                "to extract the source"
            )
        return data.read_snapshot(self.cfg.workspace, sha)

    def source(self) -> SourceConfig:
        return self.cfg.source.for_date(self.date)

    @functools.cached_property
    def source_fingerprint(self) -> dict[str, Any]:
        """Taken once per run: the source the run's identities were computed from."""
        return data.source_fingerprint(self.source())

    def identity_params(self) -> Any:
        cfg = self.cfg
        fingerprint = self.source_fingerprint
        return {
            "source": fingerprint,
            "target": cfg.target,
            "features": cfg.features,
            "task": cfg.task,
        }

    def produce(self) -> None:
        cfg = self.cfg
        self.progress(10, "reading the source")
        columns = None if cfg.features is None else [*cfg.features, cfg.target]
        frame = data.load_source(self.source(), columns)
        self.progress(60, f"checking {len(frame)} rows")
        snap = data.make_snapshot(frame, cfg)
        blob = data.to_parquet(snap)
        sha = data.write_snapshot(cfg.workspace, blob)
        self.wrote("snapshot.parquet", data.snapshot_path(cfg.workspace, sha), blob)
        self.write_json(
            "extract.json",
            {
                "source_fingerprint": self.source_fingerprint,
                "snapshot_sha256": sha,
                "snapshot": f"{data.SNAPSHOTS}/{sha}.parquet",
                "rows": len(snap),
                "columns": {c: str(t) for c, t in snap.dtypes.items()},
            },
        )


class ValidateData(PipelineTask):
    """deepchecks data_integrity on the snapshot: HTML report and JSON verdict."""

    stage = "validate_data"
    files = ("report.html", "verdict.json")

    def requires(self) -> ExtractData:
        return ExtractData(config_path=self.config_path, date=self.date)

    def identity_params(self) -> Any:
        cfg = self.cfg
        return {"suite": cfg.validation.data_integrity.model_dump(), "seed": cfg.split.seed}

    def produce(self) -> None:
        self.set_tracking_url(_file_url(self.path("report.html")))
        self.progress(5, "running deepchecks data_integrity")
        snap = self.requires().snapshot()
        verdict, html = validation.run_suite("data_integrity", self.cfg, snap)
        self.write("report.html", html)
        self.write_json("verdict.json", verdict)


class SplitData(PipelineTask):
    """Deterministic train/test split (stratified for classification)."""

    stage = "split"
    files = ("train.parquet", "test.parquet", "split.json")

    def requires(self) -> dict[str, Any]:
        kw = {"config_path": self.config_path, "date": self.date}
        return {"data": ExtractData(**kw), "gate": ValidateData(**kw)}

    def identity_inputs(self) -> list[PipelineTask]:
        return [self.requires()["data"]]

    def identity_params(self) -> Any:
        return {"split": self.cfg.split.model_dump(), "task": self.cfg.task}

    def produce(self) -> None:
        _require_passed(self.requires()["gate"])
        self.progress(20, "splitting")
        snap = self.requires()["data"].snapshot()
        train, test = data.split(snap, self.cfg)
        train_blob, test_blob = data.to_parquet(train), data.to_parquet(test)
        self.write("train.parquet", train_blob)
        self.write("test.parquet", test_blob)
        self.write_json(
            "split.json",
            {
                "train_rows": len(train),
                "test_rows": len(test),
                "train_sha256": sha256_bytes(train_blob),
                "test_sha256": sha256_bytes(test_blob),
                "seed": self.cfg.split.seed,
            },
        )


class ValidateSplit(PipelineTask):
    """deepchecks train_test_validation: drift and leakage between train and test."""

    stage = "validate_split"
    files = ("report.html", "verdict.json")

    def requires(self) -> SplitData:
        return SplitData(config_path=self.config_path, date=self.date)

    def identity_params(self) -> Any:
        cfg = self.cfg
        return {"suite": cfg.validation.train_test.model_dump(), "seed": cfg.split.seed}

    def produce(self) -> None:
        self.set_tracking_url(_file_url(self.path("report.html")))
        self.progress(5, "running deepchecks train_test_validation")
        train = data.read_parquet(self.input()["train.parquet"].path)
        test = data.read_parquet(self.input()["test.parquet"].path)
        verdict, html = validation.run_suite("train_test", self.cfg, train, test)
        self.write("report.html", html)
        self.write_json("verdict.json", verdict)


class CandidateTask(PipelineTask):
    """A task of one candidate model's chain (train, evaluate, validate)."""

    candidate = luigi.Parameter(default="model", description="candidate name (config)")

    @property
    def spec(self) -> ModelConfig:
        models = self.cfg.models()
        if self.candidate not in models:
            raise ConfigError(
                f"unknown candidate {self.candidate!r}; the config has: {', '.join(models)}"
            )
        return models[self.candidate]

    def label(self) -> str:
        family = str(self.get_task_family())
        return family if self.cfg.candidates is None else f"{family}[{self.candidate}]"

    def chain_kwargs(self) -> dict[str, Any]:
        return {"config_path": self.config_path, "date": self.date, "candidate": self.candidate}


class TrainModel(CandidateTask):
    """Build the configured estimator, fit it on the training set, dump it with joblib."""

    stage = "train"
    files = ("model.joblib", "train.json")
    resources = {"training": 1}  # capped by luigi.cfg's [resources] training

    def requires(self) -> dict[str, PipelineTask]:
        kw = {"config_path": self.config_path, "date": self.date}
        return {"split": SplitData(**kw), "gate": ValidateSplit(**kw)}

    def identity_inputs(self) -> list[PipelineTask]:
        return [self.requires()["split"]]

    def identity_params(self) -> Any:
        return {"model": self.spec.model_dump()}

    def produce(self) -> None:
        _require_passed(self.requires()["gate"])
        cfg, spec = self.cfg, self.spec
        train = data.read_parquet(self.input()["split"]["train.parquet"].path)
        x, y = data.features_and_target(train, cfg.target)
        self.progress(10, f"fitting {spec.estimator} on {len(x)} rows")
        started = time.perf_counter()
        model = training.fit(spec, x, y)
        seconds = time.perf_counter() - started
        self.progress(90, "saving the model")
        blob = training.dump(model)
        self.write("model.joblib", blob)
        self.write_json(
            "train.json",
            {
                "candidate": self.candidate,
                "estimator": spec.estimator,
                "params": spec.params,
                "model_sha256": sha256_bytes(blob),
                "features": list(x.columns),
                "dtypes": {c: str(t) for c, t in x.dtypes.items()},
                "train_rows": len(x),
                "fit_seconds": round(seconds, 3),
            },
        )


def _load_trained(task: PipelineTask) -> Any:
    info = task.read_json("train.json")
    return training.load_verified(
        task.read("model.joblib"), info["model_sha256"], task.path("model.joblib")
    )


class EvaluateModel(CandidateTask):
    """Test-set metrics (metrics.json), predictions and plots."""

    stage = "evaluate"
    files = ("metrics.json", "predictions.parquet", "plots.json")

    def requires(self) -> dict[str, PipelineTask]:
        return {
            "model": TrainModel(**self.chain_kwargs()),
            "split": SplitData(config_path=self.config_path, date=self.date),
        }

    def identity_params(self) -> Any:
        return {"evaluation": self.cfg.evaluation.model_dump(), "task": self.cfg.task}

    def plot_path(self, name: str) -> str:
        return storage.join(self.folder(), "plots", name)

    def produce(self) -> None:
        cfg = self.cfg
        model = _load_trained(self.requires()["model"])
        test = data.read_parquet(self.input()["split"]["test.parquet"].path)
        x, y = data.features_and_target(test, cfg.target)
        self.progress(20, f"scoring {len(x)} test rows")
        y_pred, proba = training.predict(model, x)  # once, for the metrics and the file
        scores = metrics.score(cfg, model, x, y, predicted=(y_pred, proba))
        preds, classes = metrics.predictions(model, x, y, y_pred, proba)
        self.progress(70, "drawing plots")
        pngs = metrics.plots(cfg.task, y, y_pred, proba, classes, scores)
        for name, png in pngs.items():
            self.write_at(f"plots/{name}", self.plot_path(name), png)
        self.write("predictions.parquet", data.to_parquet(preds))
        self.write_json("plots.json", {name: sha256_bytes(png) for name, png in pngs.items()})
        self.write_json("metrics.json", scores)


class ValidateModel(CandidateTask):
    """deepchecks model_evaluation, metric thresholds, and the comparison with production."""

    stage = "validate_model"
    files = ("report.html", "verdict.json")

    def requires(self) -> dict[str, PipelineTask]:
        return {
            "evaluate": EvaluateModel(**self.chain_kwargs()),
            "model": TrainModel(**self.chain_kwargs()),
            "split": SplitData(config_path=self.config_path, date=self.date),
        }

    def identity_params(self) -> Any:
        cfg = self.cfg
        return {
            "suite": cfg.validation.model_evaluation.model_dump(),
            "gates": cfg.gates.model_dump(),
            "seed": cfg.split.seed,
        }

    def produce(self) -> None:
        cfg = self.cfg
        inputs = self.input()
        self.set_tracking_url(_file_url(self.path("report.html")))
        model = _load_trained(self.requires()["model"])
        train = data.read_parquet(inputs["split"]["train.parquet"].path)
        test = data.read_parquet(inputs["split"]["test.parquet"].path)
        scores = self.requires()["evaluate"].read_json("metrics.json")

        self.progress(5, "running deepchecks model_evaluation")
        x_test, y_test = data.features_and_target(test, cfg.target)
        verdict, html = validation.run_suite("model_evaluation", cfg, train, test, model)

        self.progress(85, "comparing with the model in production")
        champion_gate = self._champion_gate(scores, x_test, y_test)
        gates = verdict["gates"] + validation.threshold_gates(scores, cfg.gates) + [champion_gate]
        verdict = validation.summarise("model_evaluation", gates)
        verdict["candidate"] = self.candidate
        self.write("report.html", html)
        self.write_json("verdict.json", verdict)

    def _champion_gate(self, scores: dict[str, Any], x_test: Any, y_test: Any) -> dict[str, Any]:
        cfg = self.cfg
        pointer = registry.production(cfg.publish, cfg.name)
        if pointer is None:
            return validation.champion_gate(cfg, scores, None, None, "none")
        version = pointer["version"]
        champion, manifest = registry.load_model(cfg.publish, cfg.name, version)
        try:
            theirs = metrics.score(cfg, champion, x_test, y_test)
            basis = "both models scored on this run's test set"
        except Exception as exc:  # a champion with another input schema cannot score our data
            theirs = manifest.get("metrics", {})
            basis = f"champion's recorded metrics (it cannot score this test set: {exc})"[:300]
        return validation.champion_gate(cfg, scores, theirs, version, basis)


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
        cfg = self.cfg
        req = self.requires()
        inputs = self.input()
        stages = {key: _require_passed(req[key]) for key in ("data_gate", "split_gate")}
        outcomes = {
            name: {
                "verdict": chain["model_gate"].read_json("verdict.json"),
                "metrics": chain["evaluate"].read_json("metrics.json"),
                "verdict_path": chain["model_gate"].path("verdict.json"),
            }
            for name, chain in req["candidates"].items()
        }
        chosen = validation.select_candidate(cfg, outcomes)
        if chosen is None:
            failures = [
                (f"{name}: {f}" if cfg.candidates else f)
                for name, o in outcomes.items()
                for f in o["verdict"]["blocking_failures"]
            ]
            paths = [o["verdict_path"] for o in outcomes.values()]
            raise GateFailed("model_evaluation", failures, ", ".join(paths))
        model_verdict = outcomes[chosen]["verdict"]
        chain_req = req["candidates"][chosen]

        self.progress(10, f"collecting the artifacts of candidate {chosen}")
        plots = chain_req["evaluate"].read_json("plots.json")
        verdict = {
            "passed": True,
            "selected": chosen,
            "selection_metric": cfg.selection_metric(),
            "stages": {
                "data_integrity": stages["data_gate"],
                "train_test": stages["split_gate"],
                "model_evaluation": model_verdict,
            },
            "candidates": {
                name: {
                    "passed": o["verdict"]["passed"],
                    "blocking_failures": o["verdict"]["blocking_failures"],
                    cfg.selection_metric(): o["metrics"].get(cfg.selection_metric()),
                }
                for name, o in outcomes.items()
            },
        }
        files: dict[str, bytes] = {
            registry.MODEL_FILE: chain_req["model"].read("model.joblib"),
            "metrics.json": chain_req["evaluate"].read("metrics.json"),
            "predictions.parquet": chain_req["evaluate"].read("predictions.parquet"),
            "verdict.json": storage.dumps_json(verdict),
        }
        for name in plots:
            files[f"plots/{name}"] = chain_req["evaluate"].read(f"plots/{name}")
        reports = {
            "data_integrity": req["data_gate"],
            "train_test": req["split_gate"],
            "model_evaluation": chain_req["model_gate"],
        }
        for report, gate in reports.items():
            files[f"reports/{report}.html"] = gate.read("report.html")
        train_info = chain_req["model"].read_json("train.json")
        files["schema.json"] = storage.dumps_json(
            {
                "features": train_info["features"],
                "dtypes": train_info["dtypes"],
                "target": cfg.target,
                "task": cfg.task,
            }
        )
        # A few test rows in the body format of POST /predict (mlcd serve); see docs/serving.md.
        test = data.read_parquet(inputs["split"]["test.parquet"].path)
        files[registry.EXAMPLE_FILE] = registry.input_example(test, train_info["features"])
        manifest = self._manifest(req, chosen, train_info)
        self.progress(60, f"publishing version {self.version}")
        created = registry.publish_version(cfg.publish, cfg.name, self.version, files, manifest)
        folder = registry.version_dir(cfg.publish, cfg.name, self.version)
        if created:  # what another publisher wrote is read from its manifest instead
            for rel, blob in files.items():
                self.wrote(rel, storage.join(folder, rel), blob)
        manifest_path = storage.join(folder, registry.MANIFEST_FILE)
        self.wrote(registry.MANIFEST_FILE, manifest_path, storage.read_bytes(manifest_path))
        promote = created or not registry.ever_promoted(cfg.publish, cfg.name, self.version)
        if promote:
            champion: dict[str, Any] = next(
                (g for g in model_verdict["gates"] if g["kind"] == "champion"), {}
            )
            registry.set_production(
                cfg.publish,
                cfg.name,
                self.version,
                actor="run",
                reason=f"retrain of {self.date.isoformat()} passed all blocking gates",
                extra={
                    "candidate": chosen,
                    "metric_delta": {champion.get("metric"): champion.get("delta")},
                    "gates_passed": True,
                },
            )
        self.write_json(
            "published.json",
            {
                "version": self.version,
                "candidate": chosen,
                # Relative to the registry: no absolute path inside a digested output.
                "path": f"{cfg.name}/versions/{self.version}",
                "promoted": promote,
            },
        )

    def _manifest(
        self, req: dict[str, Any], chosen: str, train_info: dict[str, Any]
    ) -> dict[str, Any]:
        # The same record `mlcd run` writes for the run (mlcd/lineage.py), with this version's.
        manifest = lineage.build_manifest(self, kind="version")
        chain = req["candidates"][chosen]
        manifest.update(
            version=self.version,
            candidate=chosen,
            metrics=chain["evaluate"].read_json("metrics.json"),
        )
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
        except storage.StorageError:
            return files
        artifacts = manifest.get("artifacts")
        for rel in sorted(artifacts if isinstance(artifacts, dict) else {}):
            files[rel] = storage.join(folder, rel)
        return files


def _file_url(path: str) -> str:
    """A link the Luigi web UI shows for a task (its report, once written)."""
    import os

    return "file://" + os.path.abspath(path) if "://" not in path else path


class RetrainPipeline(luigi.WrapperTask):
    """The whole pipeline for one config and one date: what cron and ``mlcd run`` ask for."""

    config_path = luigi.Parameter(description="the pipeline config (YAML)")
    date = luigi.DateParameter(description="the run date (for cron)")

    def requires(self) -> PublishModel:
        return PublishModel(config_path=self.config_path, date=self.date)
