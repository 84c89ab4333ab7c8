"""The default pipeline on local disk and on a local S3 endpoint (moto_server), in one run.

    .venv/bin/python benchmarks/s3_vs_local.py [--trials 2]

For each place (local disk; workspace and registry on S3; everything on S3, the source as a CSV
object too) it times, as separate `mlcd run` processes: the first run, and a no-op rerun, with
the S3 requests each makes (counted from MLCD_S3_TRACE). Prints a table and writes
benchmarks/results/s3_vs_local.json. moto_server runs in-memory on loopback, so this measures
mlcd's request pattern and its cost in round trips, not AWS's latency.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
RESULTS = HERE / "results"
DATE = "2026-01-15"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("moto_server did not start")


def configs(folder: Path, client: Any) -> dict[str, Path]:
    """The default config three ways."""
    from sklearn.datasets import load_breast_cancer

    base = yaml.safe_load((ROOT / "config" / "pipeline.yaml").read_text())
    out: dict[str, Path] = {}

    def write(name: str, **changes: Any) -> None:
        data = {**base, **changes}
        path = folder / name / "pipeline.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        out[name] = path

    write("local disk", workspace="workspace", publish="registry")
    bucket = f"bench-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket)
    write("S3 workspace+registry", workspace=f"s3://{bucket}/a/ws", publish=f"s3://{bucket}/a/reg")
    csv = load_breast_cancer(as_frame=True).frame.to_csv(index=False).encode()
    client.put_object(Bucket=bucket, Key=f"raw/{DATE}/data.csv", Body=csv)
    write(
        "all on S3 (source too)",
        source={"path": f"s3://{bucket}/raw/{{date}}/data.csv"},
        workspace=f"s3://{bucket}/b/ws",
        publish=f"s3://{bucket}/b/reg",
    )
    return out


def run(config: Path, env: dict[str, str]) -> tuple[float, int]:
    started = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "mlcd"), "run", "--config", str(config), "--date", DATE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **env, "MLCD_S3_TRACE": "1"},
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"mlcd run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    requests = sum(line.startswith("mlcd: s3 ") for line in proc.stderr.splitlines())
    return seconds, requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=2, help="no-op reruns per place")
    args = parser.parse_args()
    import boto3

    proc, url = start_moto()
    env = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    client = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="mlcd-s3-bench-") as tmp:
            for place, config in configs(Path(tmp), client).items():
                first, first_requests = run(config, env)
                noops = [run(config, env) for _ in range(args.trials)]
                rows.append(
                    {
                        "place": place,
                        "first_run_s": round(first, 2),
                        "first_run_requests": first_requests,
                        "noop_s": round(statistics.median(s for s, _ in noops), 2),
                        "noop_requests": noops[-1][1],
                    }
                )
    finally:
        proc.terminate()
    header = f"{'place':<26}{'first run s':>12}{'requests':>10}{'no-op s':>10}{'requests':>10}"
    print(header)
    for r in rows:
        print(
            f"{r['place']:<26}{r['first_run_s']:>12}{r['first_run_requests']:>10}"
            f"{r['noop_s']:>10}{r['noop_requests']:>10}"
        )
    RESULTS.mkdir(exist_ok=True)
    record = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "rows": rows,
    }
    out = RESULTS / "s3_vs_local.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
