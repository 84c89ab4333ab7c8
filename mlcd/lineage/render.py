"""A manifest's lineage for people: the graph of tasks back from a version, as text or Graphviz
DOT."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mlcd.lineage.records import config_key, mapping, ordered
from mlcd.lineage.runs import recorded_tasks

if TYPE_CHECKING:
    pass


def _short(sha: Any) -> str:
    return str(sha)[:12] if sha else "-"


def describe_source(fingerprint: Any) -> str:
    if not isinstance(fingerprint, dict):
        return "unknown"
    if fingerprint.get("kind") == "sklearn":
        return (
            f"bundled dataset {fingerprint.get('dataset')} "
            f"(scikit-learn {fingerprint.get('sklearn')})"
        )
    return (
        f"{fingerprint.get('kind')} file, sha256 {_short(fingerprint.get('sha256'))}, "
        f"{fingerprint.get('size')} bytes"
    )


def _seed_text(seed_info: Any) -> str:
    if not isinstance(seed_info, dict):
        return "-"
    parts = [f"split {seed_info.get('split')}", f"deepchecks {seed_info.get('deepchecks')}"]
    for name, params in (seed_info.get("models") or {}).items():
        shown = ", ".join(f"{k}={v}" for k, v in params.items()) or "no random_state"
        parts.append(f"{name} {shown}")
    return "; ".join(parts)


def _champion_text(tasks: dict[str, Any]) -> str:
    versions = sorted(
        {str(r["champion_version"]) for r in tasks.values() if r.get("champion_version")}
    )
    if versions:
        return f"version {', '.join(versions)} (in production when the gates ran)"
    if any(r.get("family") == "ValidateModel" and "champion_version" in r for r in tasks.values()):
        return "none (no version was in production)"
    return "not recorded"


def _wrapped(first: str, text: str, width: int = 100) -> list[str]:
    """``text`` after the label ``first``, wrapped, continuation lines indented under it."""
    import textwrap

    indent = " " * len(first)
    return textwrap.wrap(
        text,
        width=width,
        initial_indent=first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [first.rstrip()]


def _output_text(name: str, output: dict[str, Any]) -> str:
    if output.get("missing"):
        return f"{name} (missing)"
    text = f"{name} {_short(output.get('sha256'))}"
    outcomes = output.get("outcomes")
    if isinstance(outcomes, dict) and outcomes.get("passed") is not None:
        text += " (passed)" if outcomes["passed"] else " (FAILED)"
    return text


def lineage(manifest: dict[str, Any], version_folder: str | None) -> dict[str, Any]:
    """The lineage of a version (or run): its nodes and edges, from the config and the source
    through the snapshot and every task to the version."""
    tasks = recorded_tasks(manifest, version_folder)
    cfg = manifest["config"]
    candidates = [str(c.get("name")) for c in cfg.get("candidates") or [] if isinstance(c, dict)]
    labels = ordered(tasks, candidates)
    nodes: list[dict[str, Any]] = [
        {
            "id": "config",
            "kind": "config",
            "label": f"config {cfg.get('name')}",
            "detail": f"sha256 {_short(manifest.get('config_digest'))}",
        },
        {
            "id": "source",
            "kind": "source",
            "label": "source",
            "detail": describe_source(manifest.get("source_fingerprint")),
        },
        {
            "id": "snapshot",
            "kind": "snapshot",
            "label": "snapshot",
            "detail": f"sha256 {_short(manifest.get('snapshot_sha256'))}",
        },
    ]
    edges: list[dict[str, Any]] = [{"from": "source", "to": "ExtractData", "label": "read"}]
    edges.append({"from": "ExtractData", "to": "snapshot", "label": "wrote"})
    for label in labels:
        record = tasks[label]
        nodes.append(
            {
                "id": label,
                "kind": "task",
                "label": label,
                "detail": str(record.get("identity")),
            }
        )
        params = record.get("params")
        candidate = record.get("candidate")
        keys = ", ".join(
            sorted(
                config_key(str(record.get("family")), candidate, bool(candidates), (key,))
                for key in (params if isinstance(params, dict) else {})
            )
        )
        if keys:
            edges.append({"from": "config", "to": label, "label": keys, "style": "config"})
        for required in record.get("requires") or []:
            if required == "ExtractData" and label != "PublishModel":
                source = "snapshot"  # the tasks after extraction read the snapshot by digest
            else:
                source = required
            if source in tasks or source == "snapshot":
                edges.append({"from": source, "to": label, "label": ""})
    for label in labels:
        champion = tasks[label].get("champion_version")
        if champion:
            if not any(n["id"] == "champion" for n in nodes):
                nodes.append(
                    {
                        "id": "champion",
                        "kind": "version",
                        "label": "champion",
                        "detail": f"version {champion} (in production then)",
                    }
                )
            edges.append({"from": "champion", "to": label, "label": "compared with"})
    version = manifest.get("version")
    if (
        version
        and "PublishModel" in tasks
        and (manifest.get("kind") != "run" or manifest.get("published"))
    ):
        model = tasks["PublishModel"]["outputs"].get("model.joblib") or {}
        nodes.append(
            {
                "id": "version",
                "kind": "version",
                "label": f"version {version}",
                "detail": f"model.joblib {_short(model.get('sha256'))}",
            }
        )
        edges.append({"from": "PublishModel", "to": "version", "label": "published"})
    return {"nodes": nodes, "edges": edges, "tasks": tasks, "order": labels}


def lineage_text(manifest: dict[str, Any], version_folder: str | None, snapshot_state: str) -> str:
    graph_ = lineage(manifest, version_folder)
    tasks = graph_["tasks"]
    env = mapping(manifest, "environment")
    packages = mapping(env, "packages")
    cfg = manifest["config"]
    version = manifest.get("version")
    head = f"model {manifest.get('model')}"
    if manifest.get("kind") == "version":
        head += f", version {version} (candidate {manifest.get('candidate')})"
    else:
        head += f", run {manifest.get('run_id')} ({manifest.get('status')})"
    commit = env.get("git_commit")
    code = f"mlcd {env.get('mlcd') or packages.get('mlcd')}"
    if commit:
        code += f", git {str(commit)[:12]}" + (
            " (with uncommitted changes)" if env.get("git_dirty") else ""
        )
    else:
        code += ", not a git checkout"
    libs = ", ".join(f"{k} {v}" for k, v in packages.items() if k != "mlcd" and v)
    lines = [
        head,
        f"  run          {manifest.get('run_id')}, date {manifest.get('run_date')}"
        + (f", published {manifest['created_at']}" if manifest.get("created_at") else ""),
        f"  command      {' '.join(str(a) for a in manifest.get('command') or []) or '-'}",
        f"  code         {code}",
        f"  environment  Python {env.get('python')} on {env.get('platform')}",
        *_wrapped("               ", libs),
        f"  config       sha256 {_short(manifest.get('config_digest'))} "
        f"(name {cfg.get('name')}, task {cfg.get('task')}, "
        f"from {manifest.get('config_path', '-')})",
        f"  source       {describe_source(manifest.get('source_fingerprint'))}",
        f"  snapshot     sha256 {_short(manifest.get('snapshot_sha256'))} ({snapshot_state})",
        f"  seeds        {_seed_text(manifest.get('seeds'))}",
        f"  champion     {_champion_text(tasks)}",
        "",
        "tasks, from the data to the version (identity; inputs; parameters; outputs):",
    ]
    for label in graph_["order"]:
        record = tasks[label]
        requires = [r for r in record.get("requires") or []]
        lines.extend(
            _wrapped(
                f"  {label:<24} {record.get('identity')}  from ",
                ", ".join(requires) or "the source",
            )
        )
        params = record.get("params")
        if params:
            text = json.dumps(params, sort_keys=True, separators=(", ", ": "), default=str)
            lines.extend(_wrapped("      params   ", text))
        outputs = [
            _output_text(name, out)
            for name, out in sorted(record.get("outputs", {}).items())
            if out.get("compare") != "none"
        ]
        for start in range(0, len(outputs), 3):
            prefix = "outputs " if start == 0 else "        "
            lines.append(f"      {prefix} {',  '.join(outputs[start : start + 3])}")
    if version and "PublishModel" in tasks:
        lines.append(f"  -> version {version}")
    return "\n".join(lines)


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lineage_dot(manifest: dict[str, Any], version_folder: str | None) -> str:
    """The lineage as a Graphviz digraph (``dot -Tsvg`` draws it)."""
    graph_ = lineage(manifest, version_folder)
    shapes = {
        "config": "note",
        "source": "cylinder",
        "snapshot": "cylinder",
        "task": "box",
        "version": "box3d",
    }
    name = f"lineage {manifest.get('model')} {manifest.get('version') or manifest.get('run_id')}"
    lines = [
        f"digraph {_dot_id(name)} {{",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=8];',
    ]
    for node in graph_["nodes"]:
        label = f"{node['label']}\\n{node['detail']}".replace('"', "'")
        lines.append(f'  {_dot_id(node["id"])} [shape={shapes[node["kind"]]}, label="{label}"];')
    for edge in graph_["edges"]:
        attrs = []
        if edge.get("label"):
            attrs.append(f"label={_dot_id(edge['label'])}")
        if edge.get("style") == "config":
            attrs.append("style=dashed")
            attrs.append("color=gray50")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"  {_dot_id(edge['from'])} -> {_dot_id(edge['to'])}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"
