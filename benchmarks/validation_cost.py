"""Where mlcd's deepchecks validation spends its time and memory, check by check.

    .venv/bin/python benchmarks/validation_cost.py [--sizes 10000 100000 1000000]
        [--n-samples 10000] [--suites data_integrity train_test model_evaluation] [--tag NAME]
        [--config-json '{"model_evaluation": {"costly_checks_max_rows": null}}']

The data and model are those of `make bench` (benchmarks/pipeline_cost.py): make_classification
with 20 features, split by mlcd's own split (seed 42), HistGradientBoostingClassifier(max_iter=100),
and by default the same validation section (every suite sampled to 10,000 rows,
WeakSegmentsPerformance known-broken). The snapshot, train and test sets and the fitted model are
written per size under benchmarks/.data/validation_cost/ (the fit, best of 3, is timed there).
Each (size, suite) then runs in a fresh process that has imported what a forked Luigi worker of
`mlcd run` already has (luigi, pandas, pyarrow, mlcd) and does what its task does: import
deepchecks (and with it scikit-learn), read its Parquet frames,
for model_evaluation load the model, and call
`mlcd.gates.run_suite`. Per-check seconds come from timing each check's `run_logic` (train
and test runs summed); permutation feature importance, deepchecks' Context and the HTML report
are rows of their own. Prints a table, writes benchmarks/results/validation_cost[-TAG].json.
Nothing is asserted: tests never assert on wall time.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
RESULTS = HERE / "results"
PREPARED = HERE / ".data" / "validation_cost"
SUITES = ("data_integrity", "train_test", "model_evaluation")
# What each suite's task reads (tasks/data.py, tasks/model.py).
READS = {
    "data_integrity": ("snapshot",),
    "train_test": ("train", "test"),
    "model_evaluation": ("train", "test"),
}


def _config(source: Path, n_samples: int | None, overrides: dict[str, Any]) -> Any:
    from pipeline_cost import MODEL

    from mlcd.config import parse_config

    validation: dict[str, Any] = {}
    for suite in SUITES:
        section: dict[str, Any] = {} if n_samples is None else {"n_samples": n_samples}
        if suite == "model_evaluation":
            section["known_broken"] = ["WeakSegmentsPerformance"]  # as make bench configures it
        section.update(overrides.get(suite, {}))
        validation[suite] = section
    raw = {
        "name": "bench",
        "task": "classification",
        "source": {"path": str(source)},
        "target": "label",
        "split": {"test_size": 0.25, "seed": 42},
        "model": MODEL,
        "validation": validation,
        "workspace": "workspace",
        "publish": "registry",
    }
    return parse_config(raw, "validation_cost", HERE)


def prepare(rows: int) -> dict[str, Any]:
    """Snapshot, train, test and model for ``rows`` rows, and the fit's seconds: the best of three
    fits timed on every run (a shared machine slows some; the best one makes the ratio to
    validation the least flattering)."""
    from pipeline_cost import dataset

    from mlcd import data, training

    folder = PREPARED / str(rows)
    cfg = _config(dataset(rows)[0], None, {})
    frame = data.load_source(cfg.source)
    train, test = data.split(frame, cfg)
    x_train, y_train = data.features_and_target(train, cfg.target)
    assert cfg.model is not None
    fits = []
    for _ in range(3):
        started = time.perf_counter()
        model = training.fit(cfg.model, x_train, y_train)
        fits.append(time.perf_counter() - started)
    fit = min(fits)
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in (("snapshot", frame), ("train", train), ("test", test)):
        (folder / f"{name}.parquet").write_bytes(data.to_parquet(part))
    (folder / "model.joblib").write_bytes(training.dump(model))
    return {"rows": rows, "fit_seconds": round(fit, 3), "data_mb": round(_mb(frame), 1)}


def _mb(frame: Any) -> float:
    return float(frame.memory_usage(deep=True).sum()) / 2**20


class _Clock:
    """Seconds per label; time spent in a nested timed call counts only for the inner label."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._stack: list[float] = []

    def wrap(self, label: str, func: Any) -> Any:
        @functools.wraps(func)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._stack.append(0.0)
            started = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                spent = time.perf_counter() - started
                inner = self._stack.pop()
                self.seconds[label] = self.seconds.get(label, 0.0) + spent - inner
                if self._stack:
                    self._stack[-1] += spent

        return timed


def _peak_mb() -> int:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, it does not carry over the parent's
    across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def child(rows: int, suite: str, n_samples: int | None, overrides: dict[str, Any]) -> None:
    # What a forked Luigi worker of `mlcd run` already holds: luigi, pandas, pyarrow and mlcd.
    # Not scikit-learn: since 75e8e23 a checked config no longer imports it in the parent, so
    # each validation task imports it with deepchecks.
    import joblib
    import luigi  # noqa: F401
    import pandas as pd
    import pyarrow  # noqa: F401

    from mlcd.catalogue import SUITE_CHECKS
    from mlcd.gates import importance, suites

    folder = PREPARED / str(rows)
    steps: dict[str, float] = {}
    peak_at_start = _peak_mb()

    started = time.perf_counter()
    import mlcd.gates.compat  # noqa: F401, I001  (first: mends deepchecks for the current stack)
    import deepchecks.tabular.checks as dc_checks
    import deepchecks.tabular.context as dc_context
    import deepchecks.tabular.utils.feature_importance as dc_importance

    steps["import deepchecks and scikit-learn"] = time.perf_counter() - started
    cfg = _config(folder / "snapshot.parquet", n_samples, overrides)
    clock = _Clock()
    for names in SUITE_CHECKS.values():
        for name in names:
            cls = getattr(dc_checks, name)
            cls.run_logic = clock.wrap(name, cls.run_logic)
    dc_importance._calc_permutation_importance = clock.wrap(
        "(deepchecks permutation importance)", dc_importance._calc_permutation_importance
    )
    importance.permutation_importance = clock.wrap(
        "(mlcd permutation importance)", importance.permutation_importance
    )
    dc_context.Context.__init__ = clock.wrap("(deepchecks Context)", dc_context.Context.__init__)
    suites.render_html = clock.wrap("(HTML report)", suites.render_html)

    t0 = time.perf_counter()
    frames = [
        pd.read_parquet(io.BytesIO((folder / f"{name}.parquet").read_bytes()))
        for name in READS[suite]
    ]
    steps["read frames"] = time.perf_counter() - t0
    args: tuple[Any, ...] = tuple(frames)
    if suite == "model_evaluation":
        t0 = time.perf_counter()
        model = joblib.load(folder / "model.joblib")
        steps["load the model"] = time.perf_counter() - t0
        args = (*args, model)
    peak_before_suite = _peak_mb()
    t0 = time.perf_counter()
    verdict, html = suites.run_suite(suite, cfg, *args)
    steps["run_suite"] = time.perf_counter() - t0
    out = {
        "rows": rows,
        "suite": suite,
        "seconds": {k: round(v, 3) for k, v in steps.items()},
        "task_seconds": round(sum(steps.values()), 2),
        "checks": {k: round(v, 3) for k, v in clock.seconds.items()},
        "gates": [
            f"{g['result']}{' (blocking)' if g['blocking'] else ''}: {g['check']}"
            + (f": {g['condition']}" if g.get("condition") else f" ({g['details'][:120]})")
            for g in verdict["gates"]
        ],
        "passed": verdict["passed"],
        "report_mb": round(len(html) / 2**20, 1),
        "peak_rss_at_start_mb": peak_at_start,
        "peak_rss_before_suite_mb": peak_before_suite,
        "peak_rss_mb": _peak_mb(),
    }
    print(json.dumps(out))


def measure(rows: int, suite: str, n_samples: int | None, overrides: dict[str, Any]) -> Any:
    cmd = [sys.executable, __file__, "--child", str(rows), suite]
    cmd += ["--n-samples", str(n_samples or 0), "--config-json", json.dumps(overrides)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{suite} at {rows} rows failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(report: dict[str, Any]) -> str:
    lines = [
        f"machine: {report['machine']}; {report['date']}; n_samples {report['n_samples']}; "
        f"config overrides {report['config_overrides']}"
    ]
    for size in report["sizes"]:
        lines.append("")
        lines.append(
            f"{size['rows']} rows ({size['data_mb']} MB): validation {size['validation_seconds']} s"
            f" = {size['validation_over_fit']}x fit ({size['fit_seconds']} s); peak RSS"
            f" {size['peak_rss_mb']} MB = {size['peak_rss_over_data']}x data"
        )
        for run in size["suites"]:
            lines.append(
                f"  {run['suite']}: task {run['task_seconds']} s, peak RSS {run['peak_rss_mb']} MB"
                f" (at start {run['peak_rss_at_start_mb']}, before the suite "
                f"{run['peak_rss_before_suite_mb']}); "
                + ", ".join(f"{k} {v:.2f} s" for k, v in run["seconds"].items())
            )
            ranked = sorted(run["checks"].items(), key=lambda kv: -kv[1])
            for name, seconds in ranked:
                if seconds >= 0.01:
                    lines.append(f"      {seconds:8.2f} s  {name}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--suites", nargs="+", default=list(SUITES), choices=SUITES)
    parser.add_argument("--n-samples", type=int, default=10_000, help="0: deepchecks' defaults")
    parser.add_argument("--config-json", default="{}", help="validation section overrides")
    parser.add_argument("--tag", default="", help="suffix of the JSON file name")
    parser.add_argument("--child", nargs=2, metavar=("ROWS", "SUITE"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    n_samples = args.n_samples or None
    overrides = json.loads(args.config_json)
    if args.child:
        child(int(args.child[0]), args.child[1], n_samples, overrides)
        return
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "n_samples": n_samples,
        "config_overrides": overrides,
        "sizes": [],
    }
    for rows in args.sizes:
        info = prepare(rows)
        runs = []
        for suite in args.suites:
            print(f"measuring {suite} at {rows} rows ...", file=sys.stderr, flush=True)
            runs.append(measure(rows, suite, n_samples, overrides))
        fit = info["fit_seconds"]
        total = sum(r["task_seconds"] for r in runs)
        peak = max(r["peak_rss_mb"] for r in runs)
        report["sizes"].append(
            {
                "rows": rows,
                "data_mb": info["data_mb"],
                "fit_seconds": fit,
                "validation_seconds": round(total, 2),
                "validation_over_fit": round(total / fit, 2),
                "peak_rss_mb": peak,
                "peak_rss_over_data": round(peak / info["data_mb"], 2),
                "suites": runs,
            }
        )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"validation_cost{'-' + args.tag if args.tag else ''}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
