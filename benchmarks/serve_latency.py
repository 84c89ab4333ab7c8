"""Latency of ``mlcd serve``'s POST /predict for 1 row and for 1,000 rows on the default model,
with the prediction log off, on (every request logged), and with a shadow version.

    .venv/bin/python benchmarks/serve_latency.py [--registry DIR] [--requests N] [--requests-1000 N]

Without --registry it first publishes two versions of the default model (config/pipeline.yaml: a
random forest of 100 trees on the bundled breast-cancer data, then the default 200; the
deepchecks suites are off, they do not change what is served) into a temporary folder. It then
starts three ``mlcd serve`` processes on free ports of 127.0.0.1: ``off`` (--prediction-log
off), ``log`` (logging every request, --log-sample-rate 1, to a temporary folder) and ``shadow``
(logging, and --shadow the other version). It warms each up and sends requests one after the
other over one keep-alive connection per service (the way a client with a connection pool calls
it), alternating the configurations in blocks of ``--block`` requests so that they share the
machine's conditions; after a shadow block it waits until the shadow has caught up, so its
background work does not land on the next configuration's requests. Each request is timed from
the first byte sent to the last byte received. Prints a table and writes
benchmarks/results/serve_latency.json. Nothing is asserted.
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


CONFIGS = ("off", "log", "shadow")


def publish_default_model(folder: Path) -> Path:
    """Run the default pipeline twice (100 trees, then the default 200) with its registry and
    workspace in ``folder``: two versions, the second in production."""
    data = yaml.safe_load((ROOT / "config" / "pipeline.yaml").read_text())
    data["workspace"], data["publish"] = "workspace", "registry"
    data["validation"] = {s: {"enabled": False} for s in VALIDATION}
    data["gates"]["champion"]["tolerance"] = 1.0
    for date, trees in (("2026-01-15", 100), ("2026-01-16", 200)):
        data["model"]["params"]["n_estimators"] = trees
        config = folder / "pipeline.yaml"
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        proc = subprocess.run(
            [str(BIN / "mlcd"), "run", "--config", str(config), "--date", date],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if proc.returncode != 0:
            sys.exit(f"the pipeline failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return folder / "registry"


VALIDATION = ("data_integrity", "train_test", "model_evaluation")


def other_version(registry: Path) -> str:
    """A version that is not in production: the shadow."""
    current = json.loads((registry / MODEL / "production.json").read_text())["version"]
    others = sorted(p.name for p in (registry / MODEL / "versions").iterdir() if p.name != current)
    if not others:
        sys.exit(f"model {MODEL} has one version in {registry}: the shadow needs a second")
    return others[0]


def start_service(registry: Path, log: Path, extra: list[str]) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [str(BIN / "mlcd"), "serve", MODEL, "--registry", str(registry), "--port", "0", *extra],
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


class Client:
    """One keep-alive connection to one service, and the times of its requests."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.version: str | None = None
        self.sent = 0  # every request so far, warm-ups included

    def post(self, body: bytes) -> float:
        started = time.perf_counter()
        self.conn.request(
            "POST", "/predict", body=body, headers={"Content-Type": "application/json"}
        )
        response = self.conn.getresponse()
        payload = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            sys.exit(f"POST /predict answered {response.status}: {payload[:500]!r}")
        self.version = self.version or json.loads(payload)["version"]
        self.sent += 1
        return elapsed

    def health(self) -> dict[str, Any]:
        self.conn.request("GET", "/health")
        answer: dict[str, Any] = json.loads(self.conn.getresponse().read())
        return answer

    def caught_up(self) -> None:
        """Wait until the shadow has taken every request sent (bounded: 120 s)."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            shadow = self.health().get("shadow") or {}
            if shadow.get("requests", 0) + shadow.get("not_shadowed_requests", 0) >= self.sent:
                return
            time.sleep(0.005)


def summary(seconds: list[float], n_rows: int, warmup: int, body: bytes) -> dict[str, Any]:
    ms = sorted(s * 1000 for s in seconds)

    def pct(p: float) -> float:
        # nearest-rank percentile
        return ms[min(len(ms) - 1, max(0, round(p / 100 * len(ms) + 0.5) - 1))]

    return {
        "rows_per_request": n_rows,
        "requests": len(ms),
        "warmup_requests": warmup,
        "request_bytes": len(body),
        "p50_ms": round(pct(50), 2),
        "p90_ms": round(pct(90), 2),
        "p99_ms": round(pct(99), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "max_ms": round(ms[-1], 2),
        "rows_per_second": round(n_rows * len(ms) / (sum(ms) / 1000)),
    }


def measure(
    clients: dict[str, Client], n_rows: int, requests: int, warmup: int, block: int
) -> list[dict[str, Any]]:
    """``requests`` timed requests of ``n_rows`` rows per configuration, alternating blocks."""
    body = json.dumps({"rows": rows(n_rows)}).encode()
    times: dict[str, list[float]] = {name: [] for name in clients}

    def send(name: str, count: int, keep: bool) -> None:
        for _ in range(count):
            elapsed = clients[name].post(body)
            if keep:
                times[name].append(elapsed)
        if name == "shadow":
            clients[name].caught_up()

    for name in clients:
        send(name, warmup, keep=False)
    while any(len(times[name]) < requests for name in clients):
        for name in clients:
            send(name, min(block, requests - len(times[name])), keep=True)
    out = []
    for name, client in clients.items():
        result = summary(times[name], n_rows, warmup, body)
        log = client.health().get("prediction_log") or {}
        out.append(
            {
                "config": name,
                **result,
                "version": client.version,
                "logged_rows": log.get("written_rows", 0) + log.get("queued_rows", 0),
                "dropped_rows": log.get("dropped_rows", 0),
            }
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", help="an existing registry with model breast-cancer")
    parser.add_argument(
        "--requests", type=int, default=300, help="1-row requests per configuration (300)"
    )
    parser.add_argument(
        "--requests-1000", type=int, default=60, help="1,000-row requests per configuration (60)"
    )
    parser.add_argument("--block", type=int, default=20, help="requests per turn (20)")
    parser.add_argument("--output", default=str(RESULTS / "serve_latency.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mlcd-serve-bench-"))
    procs: list[subprocess.Popen[str]] = []
    try:
        if args.registry:
            registry = Path(args.registry)
        else:
            print("publishing two versions of the default model ...", file=sys.stderr)
            registry = publish_default_model(work)
        shadow = other_version(registry)
        extra = {
            "off": ["--prediction-log", "off"],
            "log": ["--prediction-log", str(work / "log-on"), "--log-sample-rate", "1"],
            "shadow": ["--prediction-log", str(work / "log-shadow"), "--shadow", shadow],
        }
        clients = {}
        for name in CONFIGS:
            proc, port = start_service(registry, work / f"serve-{name}.log", extra[name])
            procs.append(proc)
            clients[name] = Client(port)
        results = measure(clients, 1, args.requests, warmup=20, block=args.block)
        results += measure(clients, 1000, args.requests_1000, warmup=5, block=args.block)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)

    import sklearn

    report = {
        "benchmark": "serve_latency",
        "model": MODEL,
        "estimator": "sklearn.ensemble.RandomForestClassifier (200 trees, max_depth 8)",
        "client": "one keep-alive HTTP/1.1 connection per service, requests one after the "
        f"other, the configurations alternating in blocks of {args.block}",
        "configs": {
            "off": "--prediction-log off",
            "log": "every request logged (--log-sample-rate 1) to local disk",
            "shadow": f"logged, and --shadow {shadow} (the other version) in the background",
        },
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "scikit-learn": sklearn.__version__,
        },
        "results": results,
    }
    print(f"mlcd serve, POST /predict, model {MODEL} version {results[0]['version']}")
    header = f"{'rows/request':>12} {'config':>7} {'requests':>9} {'p50 ms':>8} {'p90 ms':>8}"
    print(header + f" {'p99 ms':>8} {'mean ms':>8} {'max ms':>8} {'rows/s':>9} {'logged':>8}")
    for r in results:
        print(
            f"{r['rows_per_request']:>12} {r['config']:>7} {r['requests']:>9} "
            f"{r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['mean_ms']:>8.2f} "
            f"{r['max_ms']:>8.2f} {r['rows_per_second']:>9} {r['logged_rows']:>8}"
        )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
