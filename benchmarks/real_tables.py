"""The generated real-looking tables of the tests (tests/tables.py), each run once through
``mlcd run`` with its six-line config in a fresh folder: the roles inferred, the headline
metrics, the gates and the wall time.

    .venv/bin/python benchmarks/real_tables.py [--tables churn wide ...]

Prints a table, writes benchmarks/results/real_tables.json. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from mlcd.app.report import roles_line  # noqa: E402
from tests import tables  # noqa: E402

MLCD = str(Path(sys.executable).parent / "mlcd")
HEADLINE = {
    "classification": ("accuracy", "f1", "recall", "roc_auc"),
    "regression": ("r2", "rmse", "mae"),
}


def run(name: str, folder: Path) -> dict:
    folder.mkdir(parents=True)
    csv, config = tables.write(folder, name)
    started = time.perf_counter()
    proc = subprocess.run(
        [MLCD, "run", "--config", str(config), "--json"], capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    report = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
    task = tables.TABLES[name][1]
    metrics = report.get("metrics") or {}
    return {
        "table": name,
        "rows": sum(1 for _ in csv.open()) - 1,
        "columns": len(csv.open().readline().split(",")),
        "exit": proc.returncode,
        "seconds": round(seconds, 1),
        "roles": report.get("roles"),
        "dropped_missing_target": report.get("dropped_missing_target", 0),
        "metrics": {m: metrics.get(m) for m in HEADLINE[task]},
        "published": (report.get("published") or {}).get("version"),
        "gates": {
            stage: {"passed": g["passed"], "counts": g["counts"]}
            for stage, g in (report.get("gates") or {}).items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", nargs="*", default=list(tables.TABLES))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.tables:
            rows.append(run(name, Path(scratch) / name))
            row = rows[-1]
            shown = "  ".join(
                f"{k} {v:.3f}" for k, v in row["metrics"].items() if isinstance(v, float)
            )
            print(
                f"{name:<13} {row['rows']:>5} rows {row['columns']:>3} cols  exit {row['exit']}  "
                f"{row['seconds']:>5.1f} s  {shown}"
            )
            if row["roles"]:
                print(f"{'':<13} {roles_line(row['roles'])}")
    out = HERE / "results" / "real_tables.json"
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
