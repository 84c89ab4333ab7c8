"""The reproducibility commands of ``mlcd``: ``runs`` (list, show), ``lineage``, ``reproduce``
and ``status``."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from mlcd.cli.common import add_config, add_json, group, parse_date, print_json, table


def add_commands(sub: Any) -> None:
    """Add ``runs``, ``lineage``, ``reproduce`` and ``status`` to mlcd's subcommands."""
    _, rsub = group(
        sub,
        "runs",
        help="the runs recorded in the workspace: list, show",
        description="Every `mlcd run` writes a manifest to <workspace>/runs/<run-id>/: what ran, "
        "the config, source fingerprint, snapshot digest, each task's outputs and digests, the "
        "seeds and the environment.",
    )
    p = rsub.add_parser(
        "list",
        help="the runs of a config's model, newest first",
        description="The runs of the config's model in its workspace, newest first.",
    )
    add_config(p, "'workspace' holds the runs")
    p.add_argument("--all", action="store_true", help="every model's runs in the workspace")
    add_json(p)
    p.set_defaults(handler=cmd_runs_list)
    p = rsub.add_parser(
        "show",
        help="one run: status, config, snapshot, environment, every task and its outputs",
        description="Show one run's manifest. RUN is a run id or a unique prefix of one.",
    )
    p.add_argument("run", metavar="RUN")
    add_config(p, "'workspace' holds the runs")
    add_json(p, "the whole manifest as JSON")
    p.set_defaults(handler=cmd_runs_show)

    p = sub.add_parser(
        "lineage",
        help="what a published version was made from: config, snapshot, every task",
        description="The lineage of a published version (or of a run): the config and its "
        "digest, the source fingerprint, the snapshot digest, and every task with its identity, "
        "parameters and output digests, back from the version. VERSION is a version id, a "
        "unique prefix, NAME:VERSION, or a run id.",
    )
    p.add_argument("spec", metavar="VERSION")
    add_config(p, "'publish' and 'workspace' locate it")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--dot", action="store_true", help="print Graphviz DOT (pipe to `dot -Tsvg`)")
    add_json(fmt, "the lineage graph as JSON")
    p.set_defaults(handler=cmd_lineage)

    p = sub.add_parser(
        "reproduce",
        help="re-execute a recorded run or version and compare every output digest",
        description="Re-execute a recorded run (or the run that made a published version) in a "
        "fresh scratch workspace and registry, from the recorded snapshot, config and seeds, "
        "and compare each task's outputs with the manifest: data, splits, model, predictions "
        "and metrics by their bytes, reports by their gate outcomes. Exits 0 when identical, "
        "9 when an output differs. The real workspace and registry are only read.",
    )
    p.add_argument("spec", metavar="RUN_OR_VERSION")
    add_config(p, "'workspace' and 'publish' hold the run or version")
    p.add_argument(
        "--workdir",
        metavar="DIR",
        help="an empty folder to reproduce in, kept afterwards (default: a temporary folder, "
        "removed)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    add_json(p, "the comparison as JSON")
    p.set_defaults(handler=cmd_reproduce)

    p = sub.add_parser(
        "status",
        help="each task: complete, or why it would run (runs nothing)",
        description="For each task of the config's pipeline: complete, or why `mlcd run` would "
        "run it (no output yet, output missing, new source fingerprint, changed parameter, an "
        "upstream task changed), found by comparing with the latest run that completed it. "
        "Nothing is run or written.",
    )
    add_config(p, "pipeline to inspect")
    p.add_argument(
        "--date",
        type=parse_date,
        default=None,
        help="the run date, YYYY-MM-DD (default: today); it matters only for a source path "
        "with {date}",
    )
    add_json(p)
    p.set_defaults(handler=cmd_status)


def cmd_runs_list(args: argparse.Namespace) -> int:
    from mlcd import lineage
    from mlcd.config import load_config

    cfg = load_config(args.config)
    summaries = list(lineage.run_summaries(cfg.workspace, None if args.all else cfg.name))
    if args.json:
        print_json(summaries)
        return 0
    if not summaries:
        print(
            f"no runs of model {cfg.name} in {lineage.runs_dir(cfg.workspace)} yet: `mlcd run "
            f"--config {args.config}` records one"
        )
        return 0
    rows = []
    for s in summaries:
        if "problem" in s:
            rows.append([s["run_id"], "?", "?", "unreadable", "", "", "", s["problem"][:60]])
            continue
        published = s["published"] or "-"
        if s["published"] and not s["by_this_run"]:
            published += " (already)"
        elif s["published"] and s["promoted"]:
            published += " (promoted)"
        commit = (s["git_commit"] or "-")[:8] + ("+" if s["git_dirty"] else "")
        rows.append(
            [
                s["run_id"],
                str(s["model"]),
                str(s["run_date"]),
                str(s["status"]),
                f"{s['ran']}/{s['ran'] + s['already_complete']}",
                f"{s['seconds']:.1f}s" if isinstance(s["seconds"], int | float) else "-",
                commit,
                published,
            ]
        )
    header = ["run", "model", "date", "status", "ran", "time", "commit", "published"]
    print(table(rows, header))
    return 0


def _snapshot_state(manifest: dict[str, Any], workspace: str) -> str:
    from mlcd import data, storage
    from mlcd.storage.integrity import mismatch

    sha = manifest.get("snapshot_sha256")
    if not sha:
        return "none: the run stopped before extraction"
    path = data.snapshot_path(workspace, str(sha))
    if not storage.exists(path):
        return f"not in {workspace}: deleted, the run cannot be reproduced"
    if mismatch(storage.read_bytes(path), str(sha)):
        return f"CORRUPTED at {path}"
    return f"{data.SNAPSHOTS}/{sha}.parquet in the workspace, verified"


def cmd_runs_show(args: argparse.Namespace) -> int:
    from mlcd import lineage
    from mlcd.config import load_config

    cfg = load_config(args.config)
    run_id = lineage.require_run(cfg.workspace, args.run)
    manifest = lineage.read_run(cfg.workspace, run_id)
    if args.json:
        print_json(manifest)
        return 0
    state = {label: "ran" for label in manifest.get("ran") or []}
    state.update({label: "already complete" for label in manifest.get("already_complete") or []})
    state.update({label: "FAILED" for label in manifest.get("failed") or []})
    published = manifest.get("published")
    lines = [
        f"run {run_id} of model {manifest.get('model')}: {manifest.get('status')} "
        f"(exit {manifest.get('exit_code')}), date {manifest.get('run_date')}",
        f"  started      {manifest.get('started_at')}, {manifest.get('seconds')}s, scheduler "
        f"{manifest.get('scheduler')}, {manifest.get('workers')} worker(s)",
    ]
    if published:
        if not published.get("by_this_run", True):
            what = "published by an earlier run"
        else:
            what = "published" + (" and promoted" if published.get("promoted") else "")
        lines.append(f"  version      {published.get('version')}: {what}")
    else:
        lines.append("  version      nothing published")
    for failure in manifest.get("failures") or []:
        lines.append(
            f"  failure      {failure.get('task')}: {failure.get('kind')}: {failure.get('message')}"
        )
    text = lineage.lineage_text(manifest, None, _snapshot_state(manifest, cfg.workspace))
    lines.extend(text.splitlines()[1:])
    rows = [
        [
            label,
            str(record.get("identity")),
            state.get(label, "complete" if record.get("complete") else "not run"),
        ]
        for label, record in manifest["tasks"].items()
    ]
    candidates = [c.get("name") for c in manifest["config"].get("candidates") or []]
    order = lineage.ordered([r[0] for r in rows], candidates)
    rows.sort(key=lambda r: order.index(r[0]))
    lines.append("")
    lines.append(table(rows, ["task", "identity", "in this run"]))
    print("\n".join(lines))
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    from mlcd import lineage
    from mlcd.app.subjects import locate
    from mlcd.config import load_config

    cfg = load_config(args.config)
    subject = locate(cfg, args.spec)
    manifest = subject.manifest
    if args.dot:
        sys.stdout.write(lineage.lineage_dot(manifest, subject.version_folder))
    elif args.json:
        graph = lineage.lineage(manifest, subject.version_folder)
        print_json({"nodes": graph["nodes"], "edges": graph["edges"], "order": graph["order"]})
    else:
        print(
            lineage.lineage_text(
                manifest, subject.version_folder, _snapshot_state(manifest, cfg.workspace)
            )
        )
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from mlcd.app import reproduce
    from mlcd.app.subjects import locate
    from mlcd.config import load_config
    from mlcd.errors import NotReproduced

    cfg = load_config(args.config)
    subject = locate(cfg, args.spec)

    def say(message: str) -> None:
        print(f"mlcd: {message}", file=sys.stderr, flush=True)

    result = reproduce.reproduce(cfg, subject, workdir=args.workdir, keep=args.keep, say=say)
    if args.json:
        print_json(result.as_dict())
    else:
        print(reproduce.render(result))
    first = result.first_difference
    if first is None:
        return 0
    raise NotReproduced(
        f"{subject} did not reproduce: {first.label} is the first task that differs "
        f"({reproduce.first_detail(first)})"
    )


def cmd_status(args: argparse.Namespace) -> int:
    from mlcd.app import status

    result = status.pipeline_status(args.config, args.date or dt.date.today())
    if args.json:
        print_json(result)
    else:
        print(status.render(result))
    return 0
