"""Latency of ``mlcd serve``'s POST /predict for 1 row and for 1,000 rows on the default model.

    .venv/bin/python benchmarks/serve_latency.py [--registry DIR] [--requests N] [--requests-1000 N]

Without --registry it first publishes the default model (config/pipeline.yaml: a random forest of
200 trees on the bundled breast-cancer data) into a temporary folder. It then starts
``mlcd serve`` as a real process on a free port of 127.0.0.1, warms it up, and sends a bounded
number of requests one after the other over one keep-alive connection (the way a client with a
connection pool calls it), timing each from the first byte sent to the last byte received.
Prints a table and writes benchmarks/results/serve_latency.json. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
RESULTS = HERE / "results"
MODEL = "breast-cancer"


def publish_default_model(folder: Path) -> Path:
    """Run the default pipeline with its registry and workspace in ``folder``."""
    data = yaml.safe_load((ROOT / "config" / "pipeline.yaml").read_text())
    data["workspace"], data["publish"] = "workspace", "registry"
    config = folder / "pipeline.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    proc = subprocess.run(
        [str(BIN / "mlcd"), "run", "--config", str(config), "--date", "2026-01-15"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        sys.exit(f"the pipeline failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return folder / "registry"


def start_service(registry: Path, log: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [str(BIN / "mlcd"), "serve", MODEL, "--registry", str(registry), "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout
    assert stdout is not None
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        first = lines.get(timeout=120)
    except queue.Empty:
        proc.kill()
        sys.exit(f"mlcd serve did not start:\n{log.read_text()}")
    match = re.search(r"http://127\.0\.0\.1:(\d+)", first)
    if not match:
        proc.kill()
        sys.exit(f"unexpected first line from mlcd serve: {first!r}\n{log.read_text()}")
    return proc, int(match.group(1))


def rows(n: int) -> list[dict[str, Any]]:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
    records = frame.to_dict(orient="records")
    return [records[i % len(records)] for i in range(n)]


def measure(port: int, n_rows: int, requests: int, warmup: int) -> dict[str, Any]:
    body = json.dumps({"rows": rows(n_rows)}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    seconds = []
    version = None
    try:
        for i in range(warmup + requests):
            started = time.perf_counter()
            conn.request("POST", "/predict", body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                sys.exit(f"POST /predict answered {response.status}: {payload[:500]!r}")
            if i >= warmup:
                seconds.append(elapsed)
            version = version or json.loads(payload)["version"]
    finally:
        conn.close()
    ms = sorted(s * 1000 for s in seconds)

    def pct(p: float) -> float:
        # nearest-rank percentile
        return ms[min(len(ms) - 1, max(0, round(p / 100 * len(ms) + 0.5) - 1))]

    return {
        "rows_per_request": n_rows,
        "requests": requests,
        "warmup_requests": warmup,
        "request_bytes": len(body),
        "p50_ms": round(pct(50), 2),
        "p90_ms": round(pct(90), 2),
        "p99_ms": round(pct(99), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "max_ms": round(ms[-1], 2),
        "rows_per_second": round(n_rows * len(ms) / (sum(ms) / 1000)),
        "version": version,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", help="an existing registry with model breast-cancer")
    parser.add_argument("--requests", type=int, default=500, help="1-row requests (500)")
    parser.add_argument("--requests-1000", type=int, default=100, help="1,000-row requests (100)")
    parser.add_argument("--output", default=str(RESULTS / "serve_latency.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mlcd-serve-bench-"))
    try:
        if args.registry:
            registry = Path(args.registry)
        else:
            print("publishing the default model ...", file=sys.stderr)
            registry = publish_default_model(work)
        proc, port = start_service(registry, work / "serve.log")
        try:
            results = [
                measure(port, 1, args.requests, warmup=20),
                measure(port, 1000, args.requests_1000, warmup=5),
            ]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    import sklearn

    report = {
        "benchmark": "serve_latency",
        "model": MODEL,
        "estimator": "sklearn.ensemble.RandomForestClassifier (200 trees, max_depth 8)",
        "client": "one keep-alive HTTP/1.1 connection, requests one after the other",
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "scikit-learn": sklearn.__version__,
        },
        "results": results,
    }
    print(f"mlcd serve, POST /predict, model {MODEL} version {results[0]['version']}")
    header = f"{'rows/request':>12} {'requests':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}"
    print(header + f" {'mean ms':>8} {'max ms':>8} {'rows/s':>9}")
    for r in results:
        print(
            f"{r['rows_per_request']:>12} {r['requests']:>9} {r['p50_ms']:>8.2f} "
            f"{r['p90_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['mean_ms']:>8.2f} {r['max_ms']:>8.2f} "
            f"{r['rows_per_second']:>9}"
        )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
