"""mlcd against its peers: gokart and a plain script, doing the same work, measured in one run.

    .venv/bin/python benchmarks/peers.py [--sizes 100000,1000000,5000000] [--repeats 1]
                                         [--out benchmarks/results/peers.json]

The work is mlcd's pipeline with validation off: extract a snapshot, split (stratified, 25% test),
train HistGradientBoostingClassifier(max_iter=100, random_state=0), evaluate (metrics,
predictions, confusion-matrix and ROC plots). The three tools:
  mlcd    `mlcd run` as a real process, the config of benchmarks/pipeline_cost.py with the three
          deepchecks suites off (it also publishes the model to a registry on local disk);
  gokart  benchmarks/gokart_pipeline.py in benchmarks/.venv-gokart (gokart 1.12.2, created here
          with the same Python and the project's lock file as constraints);
  plain   benchmarks/plain_pipeline.py.
The data is pipeline_cost.py's (make_classification, 20 features, a Parquet source written once
per size under benchmarks/.data/). At each size, and in each repeat, the tools take turns (the
order rotates): a cold run in an empty folder, then the same command again (the no-op rerun; the
plain script has no cache, so its rerun does all the work again). Measured per run: wall time;
peak RSS, the largest resident set of any process of the run's process tree (ru_maxrss of
os.wait4 on the run's process: the kernel takes the maximum over the process and all its waited-for
descendants; one-worker runs do all their tasks in one process); bytes written to disk (the sizes
of the files the run created or changed in its folder). Prints a table, writes the JSON; nothing
here is asserted: targets are reported as met or missed.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from pipeline_cost import ROOT, dataset, stage_table, write_config  # noqa: E402

BIN = Path(sys.executable).parent
VENV = HERE / ".venv-gokart"
GOKART = "gokart==1.12.2"
# What gokart_pipeline.py imports besides gokart: the same versions as mlcd's, from the lock.
GOKART_EXTRAS = ["scikit-learn", "matplotlib"]
SHARED = ["luigi", "pandas", "numpy", "pyarrow", "scikit-learn", "matplotlib", "joblib"]
# Not shared, but imported by luigi at start-up when installed (luigi.parameter, luigi.rpc):
# mlcd's environment has them (deepchecks, boto3 and others need them), gokart's has not.
OPTIONAL = ["jsonschema", "requests"]
TOOLS = ("mlcd", "gokart", "plain")
TARGETS = {
    "cold_at_or_below_gokart": 1.0,
    "noop_at_or_below_gokart": 1.0,
    "cold_over_plain": 1.10,
    "peak_rss_over_data_at_1m_and_5m": 3.0,
}


def lock_file() -> Path:
    return ROOT / "constraints" / f"py{sys.version_info[0]}.{sys.version_info[1]}.txt"


def venv_versions(python: Path) -> dict[str, str]:
    code = (
        "import json, sys; from importlib import metadata as m\n"
        "def v(n):\n"
        "    try:\n"
        "        return m.version(n)\n"
        "    except m.PackageNotFoundError:\n"
        "        return None\n"
        "print(json.dumps({n: v(n) for n in sys.argv[1:]}))"
    )
    out = subprocess.run(
        [str(python), "-c", code, "gokart", *SHARED, *OPTIONAL],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout))


def gokart_venv() -> dict[str, Any]:
    """benchmarks/.venv-gokart with gokart 1.12.2, made once with this Python; installed with
    the lock file as constraints so that the libraries it shares with mlcd are mlcd's versions.
    Returns the versions on both sides and those that differ."""
    python = VENV / "bin" / "python"
    note = None
    fresh = not python.exists()
    if not fresh:
        try:
            fresh = venv_versions(python).get("gokart") != GOKART.split("==")[1]
        except subprocess.CalledProcessError:
            fresh = True
    if fresh:
        print(f"creating {VENV} ({GOKART}) ...", file=sys.stderr, flush=True)
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        constrained = subprocess.run(
            [*pip, "-c", str(lock_file()), GOKART, *GOKART_EXTRAS], capture_output=True, text=True
        )
        if constrained.returncode != 0:
            # gokart's requirements conflict with the lock: install it unconstrained and say so.
            note = "gokart's requirements conflict with the lock file: " + " ".join(
                constrained.stderr.strip().splitlines()[-3:]
            )
            print(note, file=sys.stderr)
            subprocess.run([*pip, GOKART, *GOKART_EXTRAS], check=True)
    gokart_side = venv_versions(python)
    mlcd_side = {n: venv_versions(Path(sys.executable)).get(n) for n in [*SHARED, *OPTIONAL]}
    differ = {
        n: {"mlcd": mlcd_side[n], "gokart": gokart_side[n]}
        for n in SHARED
        if mlcd_side[n] != gokart_side[n]
    }
    return {
        "python": platform.python_version(),
        "constraints": str(lock_file().relative_to(ROOT)),
        "gokart_venv": gokart_side,
        "mlcd_venv": {"mlcd": metadata.version("mlcd"), **mlcd_side},
        "luigi_optional_imports": {
            n: {"mlcd": mlcd_side[n], "gokart": gokart_side[n]} for n in OPTIONAL
        },
        "differ": differ,
        "note": note,
    }


def files(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: its size and modification time."""
    out = {}
    for path in folder.rglob("*"):
        if path.is_file():
            st = path.stat()
            out[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return out


def written(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> tuple[int, int, dict[str, float]]:
    """Bytes and number of the files created or rewritten between two listings, and the MB of
    them under each top-level folder (mlcd: workspace and registry)."""
    changed = [k for k, v in after.items() if before.get(k) != v]
    by_folder: dict[str, float] = {}
    for k in changed:
        top = k.split(os.sep)[0] if os.sep in k else "."
        by_folder[top] = by_folder.get(top, 0.0) + after[k][0] / 2**20
    by_folder = {k: round(v, 2) for k, v in sorted(by_folder.items())}
    return sum(after[k][0] for k in changed), len(changed), by_folder


def run(cmd: list[str], cwd: Path, folder: Path, log: Path) -> dict[str, Any]:
    """One run of ``cmd``: wall seconds, peak RSS of its process tree, bytes written in
    ``folder``; stdout and stderr kept in ``log``.*."""
    before = files(folder)
    with open(f"{log}.out", "w") as out, open(f"{log}.err", "w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = Path(f"{log}.err").read_text()[-3000:]
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{tail}")
    nbytes, nfiles, by_folder = written(before, files(folder))
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # ru_maxrss is in KiB on Linux
        "written_mb": round(nbytes / 2**20, 2),
        "files_written": nfiles,
        "written_mb_by_folder": by_folder,
    }


def startup(repeat: int = 3) -> dict[str, float]:
    """Seconds to start each tool and import what its no-op needs (median of ``repeat``): a
    floor under the no-op rerun."""
    import statistics

    cmds = {
        "mlcd --help": [str(BIN / "mlcd"), "--help"],
        # luigi imports jsonschema, which imports rfc3987_syntax where installed (mlcd's
        # environment); `mlcd` itself blocks that import (mlcd/cli/__init__.py), this does not.
        "mlcd's venv: import luigi, pandas": [sys.executable, "-c", "import luigi, pandas"],
        "gokart's venv: import luigi, pandas": [
            str(VENV / "bin" / "python"),
            "-c",
            "import luigi, pandas",
        ],
        "gokart: import gokart": [str(VENV / "bin" / "python"), "-c", "import gokart"],
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    out = {}
    for name, cmd in cmds.items():
        runs = []
        for _ in range(repeat):
            started = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True)
            runs.append(time.perf_counter() - started)
        out[name] = round(statistics.median(runs), 3)
    return out


def commands(tool: str, source: Path, folder: Path) -> tuple[list[str], Path]:
    """The command line of ``tool`` on ``source`` with its outputs under ``folder``, and the
    working directory it runs in."""
    folder.mkdir(parents=True, exist_ok=True)
    if tool == "mlcd":
        config = write_config(folder, source, validation=False, n_samples=10_000)
        cmd = [str(BIN / "mlcd"), "run", "--config", str(config), "--date", "2026-01-01"]
        return cmd, ROOT  # mlcd reads the project's luigi.cfg, as `make run` does
    if tool == "gokart":
        script = HERE / "gokart_pipeline.py"
        return [str(VENV / "bin" / "python"), str(script), str(source), str(folder / "ws")], folder
    return [sys.executable, str(HERE / "plain_pipeline.py"), str(source), str(folder / "out")], ROOT


def stages(tool: str, folder: Path, log: Path) -> dict[str, float]:
    """Seconds per task of a cold run: mlcd's own log lines, gokart's processing_time logs."""
    if tool == "mlcd":
        return {k: v["seconds"] for k, v in stage_table(Path(f"{log}.err").read_text()).items()}
    if tool == "gokart":
        out = {}
        for path in sorted((folder / "ws" / "log" / "processing_time").glob("*.pkl")):
            # gokart dumps a float with dill, which plain pickle reads
            out[path.name.split("_")[0]] = round(float(pickle.loads(path.read_bytes())), 2)
        return out
    return {}


def measure_size(rows: int, index: int, repeats: int, scratch: Path) -> dict[str, Any]:
    source, data_bytes = dataset(rows)
    result: dict[str, Any] = {
        "rows": rows,
        "data_mb": round(data_bytes / 2**20, 1),
        "runs": {t: [] for t in TOOLS},
    }
    for r in range(repeats):
        shift = (index + r) % len(TOOLS)
        order = TOOLS[shift:] + TOOLS[:shift]
        for tool in order:
            folder = scratch / f"{tool}-{rows}-{r}"
            cmd, cwd = commands(tool, source, folder)
            log = scratch / f"{tool}-{rows}-{r}"
            print(f"  {rows} rows, repeat {r + 1}: {tool} ...", file=sys.stderr, flush=True)
            cold = run(cmd, cwd, folder, Path(f"{log}-cold"))
            noop = run(cmd, cwd, folder, Path(f"{log}-noop"))
            if tool == "mlcd":
                assert "ran (0)" in Path(f"{log}-noop.out").read_text(), "mlcd's rerun ran tasks"
            result["runs"][tool].append(
                {"cold": cold, "noop": noop, "stages": stages(tool, folder, Path(f"{log}-cold"))}
            )
            shutil.rmtree(folder, ignore_errors=True)
    summary = {}
    for tool, runs in result["runs"].items():
        best = min(runs, key=lambda x: x["cold"]["seconds"])
        summary[tool] = {
            "cold_seconds": min(x["cold"]["seconds"] for x in runs),
            "noop_seconds": min(x["noop"]["seconds"] for x in runs),
            "peak_rss_mb": max(x["cold"]["peak_rss_mb"] for x in runs),
            "rss_over_data": round(
                max(x["cold"]["peak_rss_mb"] for x in runs) / (data_bytes / 2**20), 2
            ),
            "written_mb": best["cold"]["written_mb"],
            "written_mb_by_folder": best["cold"]["written_mb_by_folder"],
            "noop_written_mb": best["noop"]["written_mb"],
            "stages": best["stages"],
        }
    result["summary"] = summary
    m, g, p = (summary[t] for t in TOOLS)
    result["ratios"] = {
        "cold_mlcd_over_gokart": round(m["cold_seconds"] / g["cold_seconds"], 3),
        "noop_mlcd_over_gokart": round(m["noop_seconds"] / g["noop_seconds"], 3),
        "cold_mlcd_over_plain": round(m["cold_seconds"] / p["cold_seconds"], 3),
    }
    return result


def verdicts(sizes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    worst = {
        "cold_at_or_below_gokart": max(s["ratios"]["cold_mlcd_over_gokart"] for s in sizes),
        "noop_at_or_below_gokart": max(s["ratios"]["noop_mlcd_over_gokart"] for s in sizes),
        "cold_over_plain": max(s["ratios"]["cold_mlcd_over_plain"] for s in sizes),
    }
    large = [s["summary"]["mlcd"]["rss_over_data"] for s in sizes if s["rows"] >= 1_000_000]
    worst["peak_rss_over_data_at_1m_and_5m"] = max(large) if large else None
    return {
        key: {
            "measured": worst[key],
            "target": target,
            "met": None if worst[key] is None else worst[key] <= target,
        }
        for key, target in TARGETS.items()
    }


def table(report: dict[str, Any]) -> str:
    lines = [
        f"machine: {report['machine']}",
        f"load average before/after: {report['load_before']} / {report['load_after']}",
    ]
    head = (
        f"{'rows':>9} {'data MB':>8} {'tool':<7} {'cold s':>7} {'no-op s':>8} {'peak MB':>8} "
        f"{'RSS/data':>8} {'disk MB':>8} {'no-op disk MB':>13}"
    )
    lines += [head, "-" * len(head)]
    for s in report["sizes"]:
        for tool in TOOLS:
            t = s["summary"][tool]
            lines.append(
                f"{s['rows']:>9} {s['data_mb']:>8} {tool:<7} {t['cold_seconds']:>7} "
                f"{t['noop_seconds']:>8} {t['peak_rss_mb']:>8} {t['rss_over_data']:>8} "
                f"{t['written_mb']:>8} {t['noop_written_mb']:>13}"
            )
        r = s["ratios"]
        lines.append(
            f"{'':>18} mlcd/gokart cold {r['cold_mlcd_over_gokart']}x, no-op "
            f"{r['noop_mlcd_over_gokart']}x; mlcd/plain cold {r['cold_mlcd_over_plain']}x"
        )
    lines += ["", "seconds per task, cold run:"]
    for s in report["sizes"]:
        for tool in ("mlcd", "gokart"):
            parts = [f"{k} {v}" for k, v in s["summary"][tool]["stages"].items()]
            lines.append(f"  {s['rows']:>9} {tool:<7} " + ", ".join(parts))
    lines.append("")
    lines.append(
        "start-up, median of 3: "
        + ", ".join(f"{k} {v} s" for k, v in report["startup_seconds"].items())
    )
    mlcd_disk = [
        f"{s['rows']}: {s['summary']['mlcd']['written_mb_by_folder']}" for s in report["sizes"]
    ]
    lines.append("mlcd's disk MB by folder: " + "; ".join(mlcd_disk))
    lines.append("")
    for key, v in report["targets"].items():
        state = {True: "met", False: "MISSED", None: "not measured"}[v["met"]]
        lines.append(f"  {key:<34} measured {v['measured']!s:>7}  target {v['target']:>5}  {state}")
    differ = report["versions"]["differ"]
    lines.append(
        "shared library versions: "
        + ("all the same as mlcd's" if not differ else f"differ: {json.dumps(differ)}")
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[100_000, 1_000_000, 5_000_000],
        help="comma-separated row counts (default 100000,1000000,5000000)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs per tool and size")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "peers.json")
    args = parser.parse_args()
    versions = gokart_venv()
    started = time.time()
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "versions": versions,
        "repeats": args.repeats,
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "sizes": [],
    }
    report["startup_seconds"] = startup()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="mlcd-peers-"))
    try:
        for index, rows in enumerate(args.sizes):
            print(f"measuring {rows} rows ...", file=sys.stderr, flush=True)
            report["sizes"].append(measure_size(rows, index, args.repeats, scratch))
            # Written after each size: a run cut short keeps the sizes it measured.
            report["load_after"] = [round(x, 2) for x in os.getloadavg()]
            report["minutes"] = round((time.time() - started) / 60, 1)
            report["complete"] = len(report["sizes"]) == len(args.sizes)
            report["targets"] = verdicts(report["sizes"])
            args.out.write_text(json.dumps(report, indent=2) + "\n")
            if not report["complete"]:
                print(table(report), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(table(report))
    print(f"\n{report['minutes']} min; wrote {args.out}")


if __name__ == "__main__":
    main()
