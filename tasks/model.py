"""One candidate's chain: train, evaluate on the test set, validate (deepchecks, thresholds and the
comparison with production)."""

from __future__ import annotations

import time
from typing import Any

import luigi

from mlcd import columns, data, gates, metrics, registry, schema, storage, training
from mlcd.catalogue import HEADLINE_METRICS
from mlcd.config import ModelConfig
from mlcd.errors import ConfigError
from mlcd.fingerprint import sha256_bytes
from tasks.base import PipelineTask, report_url, require_passed
from tasks.data import ExtractData, SplitData, ValidateData, ValidateSplit


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

    def roles(self) -> dict[str, dict[str, str]]:
        return ExtractData(config_path=self.config_path, date=self.date).roles()

    def split(self) -> SplitData:
        return SplitData(config_path=self.config_path, date=self.date)

    def frame(self, which: str) -> tuple[Any, Any]:
        """The model's features and the target of the ``train`` or ``test`` set."""
        rows = self.split().rows(which)
        return rows[columns.features(self.roles())], rows[self.cfg.target]

    def chain_kwargs(self) -> dict[str, Any]:
        return {"config_path": self.config_path, "date": self.date, "candidate": self.candidate}


class TrainModel(CandidateTask):
    """Build the configured estimator, fit it on the training set, dump it with joblib."""

    stage = "train"
    files = ("model.joblib", "train.json")
    resources = {"training": 1}  # capped by luigi.cfg's [resources] training

    def requires(self) -> dict[str, PipelineTask]:
        kw = {"config_path": self.config_path, "date": self.date}
        return {
            "split": SplitData(**kw),
            "data_gate": ValidateData(**kw),
            "split_gate": ValidateSplit(**kw),
        }

    def identity_inputs(self) -> list[PipelineTask]:
        return [self.requires()["split"]]

    def identity_params(self) -> Any:
        return {"model": self.spec.model_dump()}

    def produce(self) -> None:
        # Both gates, the data's first: ValidateData ran beside the split, not before it.
        require_passed(self.requires()["data_gate"])
        require_passed(self.requires()["split_gate"])
        spec = self.spec
        roles = self.roles()
        x, y = self.frame("train")
        self.progress(10, f"fitting {spec.estimator} on {len(x)} rows")
        started = time.perf_counter()
        model = training.fit(spec, x, y, roles)
        seconds = time.perf_counter() - started
        self.progress(90, "saving the model")
        blob = training.dump(model)
        prepared = not columns.is_pipeline(training.build(spec, None))
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
                "roles": roles,
                "preprocessing": prepared,
                "contract": schema.contract(x, roles, list(x.columns)),
                "nulls_ok": [c for c in x.columns if prepared or x[c].isna().any()],
                "train_rows": len(x),
                "fit_seconds": round(seconds, 3),
            },
        )
        self.result(f"fitted {spec.estimator} on {len(x)} rows in {seconds:.1f} s")


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
        x, y = self.frame("test")
        self.progress(20, f"scoring {len(x)} test rows")
        y_pred, proba = training.predict(model, x)  # once, for the metrics and the file
        scores = metrics.score(cfg, y, (y_pred, proba), training.classes(model))
        preds, classes = metrics.predictions(model, x, y, y_pred, proba)
        self.progress(70, "drawing plots")
        pngs = metrics.plots(cfg.task, y, y_pred, proba, classes, scores)
        for name, png in pngs.items():
            self.write_at(f"plots/{name}", self.plot_path(name), png)
        self.write("predictions.parquet", data.to_parquet(preds))
        self.write_json("plots.json", {name: sha256_bytes(png) for name, png in pngs.items()})
        self.write_json("metrics.json", scores)
        shown = [k for k in HEADLINE_METRICS[cfg.task] if isinstance(scores.get(k), float)]
        self.result(f"test set, {len(x)} rows: " + ", ".join(f"{k} {scores[k]:.4f}" for k in shown))


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
        self.set_tracking_url(report_url(self))
        model = _load_trained(self.requires()["model"])
        scores = self.requires()["evaluate"].read_json("metrics.json")

        self.progress(5, "running deepchecks model_evaluation")
        roles = self.roles()
        # The rows are taken only when a check needs them (the suite, or a champion to score).
        enabled = cfg.validation.model_evaluation.enabled
        train, test = self.split().frames() if enabled else (None, None)
        verdict, html = gates.run_suite(
            "model_evaluation",
            cfg,
            train,
            test,
            model,
            roles,
            progress=self.check_progress(5, 80, "model_evaluation"),
        )

        self.progress(85, "comparing with the model in production")
        champion_gate = self._champion_gate(scores, test)
        judged = (
            verdict["gates"]
            + gates.threshold_gates(scores, cfg.gates)
            + gates.every_class_gates(scores, cfg.gates)
            + [champion_gate]
        )
        verdict = gates.summarise("model_evaluation", judged)
        verdict["candidate"] = self.candidate
        self.write("report.html", html)
        self.write_json("verdict.json", verdict)
        self.judged(verdict, blocks=cfg.candidates is None)

    def _champion_gate(self, scores: dict[str, Any], test: Any) -> dict[str, Any]:
        cfg = self.cfg
        pointer = registry.production(cfg.publish, cfg.name)
        if pointer is None:
            return gates.champion_gate(cfg, scores, None, None, "none")
        version = pointer["version"]
        champion, manifest = registry.load_model(cfg.publish, cfg.name, version)
        x_test = self.split().rows("test") if test is None else test
        y_test = x_test[cfg.target]
        try:
            wanted = getattr(champion, "feature_names_in_", None)
            x = x_test[list(wanted)] if wanted is not None else x_test.drop(columns=[cfg.target])
            predicted = training.predict(champion, x)
            theirs = metrics.score(cfg, y_test, predicted, training.classes(champion))
            basis = "both models scored on this run's test set"
        except Exception as exc:  # a champion with another input schema cannot score our data
            theirs = manifest.get("metrics", {})
            basis = f"champion's recorded metrics (it cannot score this test set: {exc})"[:300]
        return gates.champion_gate(cfg, scores, theirs, version, basis)
