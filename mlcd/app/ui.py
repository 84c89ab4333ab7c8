"""``mlcd ui``: the model registry (and, given a workspace, its runs) as a small web page.

Tornado serves it (docs/ui.md says why): it is in the lock already because luigid runs on it.
Every page is built from the registry and lineage functions the commands use, off the event
loop (a read may go to S3), as plain HTML in which every value from the registry is escaped.
Changing production (promote, rollback) is off unless the server was started to allow it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import json
import shutil
import signal
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from typing import Any

import tornado.httpserver
import tornado.httputil
import tornado.netutil
import tornado.web

from mlcd import lineage, registry, storage
from mlcd.app.addresses import is_loopback, url
from mlcd.app.status import diff_paths, shown_value
from mlcd.catalogue import METRICS
from mlcd.errors import MlcdError, NotFound, PromotionRefused, StorageError, UsageError

DOT_TIMEOUT = 20.0
FILE_TYPES = {".png": "image/png", ".html": "text/html; charset=utf-8"}


@dataclasses.dataclass(frozen=True)
class Site:
    """What the server shows: a registry, optionally a workspace's runs, and whether people may
    change production through it."""

    publish: str
    workspace: str | None = None
    allow_changes: bool = False
    dot: str | None = dataclasses.field(default_factory=lambda: shutil.which("dot"))


class Page(Exception):
    """A page other than the one asked for: a 404 naming what is unknown, a 403, a refusal."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title


# --- HTML ------------------------------------------------------------------------------------


def e(value: Any) -> str:
    """Any value as escaped HTML text: everything shown comes from files people can write."""
    return html.escape("-" if value is None else str(value), quote=True)


def q(value: str) -> str:
    """A path segment of a link."""
    return urllib.parse.quote(value, safe="")


def when(stamp: Any) -> str:
    return e(stamp[:19].replace("T", " ") + " UTC") if isinstance(stamp, str) else "-"


def num(value: Any, signed: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def table(
    header: list[str], rows: list[list[str]], cls: str = "", marks: list[str] | None = None
) -> str:
    """A table of cells that are already HTML; ``marks``: a class for each row."""
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    marks = marks or [""] * len(rows)
    body = "".join(
        (f'<tr class="{mark}">' if mark else "<tr>")
        + "".join(f"<td>{c}</td>" for c in row)
        + "</tr>"
        for row, mark in zip(rows, marks, strict=True)
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def verdict(passed: bool) -> str:
    return '<span class="ok">passed</span>' if passed else '<span class="bad">FAILED</span>'


STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#222}
header{background:#263238;color:#fff;padding:.6em 1.2em}header a{color:#fff;margin-right:1em}
main{padding:1em 1.5em;max-width:1200px}table{border-collapse:collapse;margin:.5em 0 1.2em}
th,td{border-bottom:1px solid #ddd;padding:.25em .7em;text-align:left;vertical-align:top}
th{background:#f4f6f8}code,pre{font-family:ui-monospace,monospace;font-size:.85em}
pre{background:#f6f8fa;padding:.8em;overflow:auto;max-height:30em}
.ok{color:#2e7d32;font-weight:600}.bad{color:#c62828;font-weight:600}
tr.blocking-fail td{background:#ffebee;color:#b71c1c}.error{background:#ffebee;color:#b71c1c;
padding:.8em;border-left:4px solid #c62828}.muted{color:#777}
form.change{display:inline-block;margin:.3em 1em .3em 0;padding:.5em;border:1px solid #ccc}
img.plot{max-width:480px;border:1px solid #ddd;margin:0 1em 1em 0}
.lineage{overflow-x:auto;border:1px solid #eee}
"""


def layout(site: Site, title: str, body: str) -> str:
    runs = '<a href="/runs">runs</a>' if site.workspace is not None else ""
    mode = "changes allowed" if site.allow_changes else "read-only"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)} - mlcd</title><style>{STYLE}</style></head><body>"
        f'<header><a href="/"><b>mlcd</b> registry</a>{runs}'
        f'<span class="muted">{e(site.publish)} ({mode})</span></header>'
        f"<main><h1>{e(title)}</h1>{body}</main></body></html>"
    )


# --- the registry's pages ----------------------------------------------------------------------


def _pointer(site: Site, name: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return registry.production(site.publish, name), None
    except StorageError as exc:
        return None, str(exc)


def _require_model(site: Site, name: str) -> None:
    if name not in registry.list_models(site.publish):
        raise Page(404, "not found", f"no model {name!r} in the registry at {site.publish}")


def _require_version(site: Site, name: str, version: str) -> None:
    _require_model(site, name)
    if version not in registry.version_ids(site.publish, name):
        raise Page(404, "not found", f"model {name!r} has no version {version!r}")


def index_page(site: Site) -> str:
    rows = []
    for name in registry.list_models(site.publish):
        pointer, problem = _pointer(site, name)
        records = registry.promotions(site.publish, name)
        last = records[-1] if records else None
        prod = (
            f'<a href="/models/{q(name)}/versions/{q(pointer["version"])}"><code>'
            f"{e(pointer['version'])}</code></a>"
            if pointer
            else (f'<span class="bad">{e(problem)}</span>' if problem else "none")
        )
        change = (
            f"{when(last.get('at'))}: {e(last.get('action') or 'promote')} of "
            f"<code>{e(last['version'])}</code> by {e(last.get('user') or last.get('actor'))}"
            f" &mdash; {e(last.get('reason'))}"
            if last
            else "-"
        )
        rows.append(
            [
                f'<a href="/models/{q(name)}">{e(name)}</a>',
                str(len(registry.version_ids(site.publish, name))),
                prod,
                change,
            ]
        )
    if not rows:
        body = f"<p>No models in the registry at <code>{e(site.publish)}</code> yet.</p>"
    else:
        body = table(["model", "versions", "production", "last change"], rows, "models")
    return layout(site, "models", body)


def _headline(infos: list[dict[str, Any]]) -> str | None:
    for info in [i for i in infos if i["production"]] + infos[::-1]:
        if info["headline_metric"]:
            return str(info["headline_metric"])
    return None


def chart(metric: str, infos: list[dict[str, Any]]) -> str:
    """An SVG polyline of ``metric`` over the versions, oldest first."""
    points = [
        (i, float(info["metrics"][metric]), info)
        for i, info in enumerate(infos)
        if isinstance(info["metrics"].get(metric), int | float)
    ]
    if not points:
        return f'<p class="muted">no version records {e(metric)}</p>'
    width, height, pad = 640, 220, 40
    low, high = min(p[1] for p in points), max(p[1] for p in points)
    span = (high - low) or 1.0
    steps = max(len(infos) - 1, 1)

    def xy(index: int, value: float) -> tuple[float, float]:
        x = 2 * pad + (width - 3 * pad) * index / steps  # room on the left for the labels
        y = height - pad - (height - 2 * pad) * (value - low) / span
        return round(x, 1), round(y, 1)

    coords = [xy(i, v) for i, v, _ in points]
    line = " ".join(f"{x},{y}" for x, y in coords)
    dots = "".join(
        f'<circle cx="{x}" cy="{y}" r="4" fill="{"#2e7d32" if info["production"] else "#1565c0"}">'
        f"<title>{e(info['version'])}: {e(metric)} {num(value)}</title></circle>"
        for (x, y), (_, value, info) in zip(coords, points, strict=True)
    )
    return (
        f'<svg class="chart" width="{width}" height="{height}" role="img" '
        f'aria-label="{e(metric)} over versions" xmlns="http://www.w3.org/2000/svg">'
        f'<rect width="{width}" height="{height}" fill="#fafafa"/>'
        f'<polyline points="{line}" fill="none" stroke="#1565c0" stroke-width="2"/>{dots}'
        f'<text x="4" y="{pad}" font-size="11">{num(high)}</text>'
        f'<text x="4" y="{height - pad}" font-size="11">{num(low)}</text>'
        f'<text x="{pad}" y="{height - 10}" font-size="11">{e(metric)}, oldest version to '
        f"newest (green: production)</text></svg>"
    )


def model_page(site: Site, name: str) -> str:
    _require_model(site, name)
    pointer, problem = _pointer(site, name)
    infos = registry.list_versions(site.publish, name)
    records, log_problems = registry.read_log(site.publish, name)
    metric = _headline(infos)
    parts = []
    if pointer:
        parts.append(
            f"<p>Production: <code>{e(pointer['version'])}</code> since "
            f"{when(pointer.get('updated_at'))}</p>"
        )
    elif problem:
        parts.append(f'<p class="error">{e(problem)}</p>')
    else:
        parts.append("<p>No version in production.</p>")
    rows = []
    for info in reversed(infos):
        v = info["version"]
        state = "production" if info["production"] else ""
        if info["problem"]:
            state = f'<span class="bad">damaged: {e(info["problem"])}</span>'
        rows.append(
            [
                f'<a href="/models/{q(name)}/versions/{q(v)}"><code>{e(v)}</code></a>',
                when(info["created_at"]),
                e(info["run_date"]),
                num(info["metrics"].get(metric)) if metric else "-",
                verdict(info["gates"]["passed"]),
                state,
            ]
        )
    parts.append("<h2>Versions, newest first</h2>")
    parts.append(
        table(["version", "created", "run date", metric or "metric", "gates", ""], rows, "versions")
    )
    if metric:
        parts.append(f"<h2>{e(metric)} over versions</h2>" + chart(metric, infos))
    parts.append("<h2>Production history</h2>")
    history = registry.production_history(records, pointer["version"] if pointer else None)
    parts.append(
        "<p>Production went through: "
        + " &rarr; ".join(f"<code>{e(v)}</code>" for v in history)
        + "</p>"
        if history
        else "<p>Production has never changed.</p>"
    )
    log_rows = [
        [
            when(r.get("at")),
            e(r.get("action") or "promote") + (" (forced)" if r.get("forced") else ""),
            f"<code>{e(r['version'])}</code>",
            f"<code>{e(r.get('previous'))}</code>",
            e(r.get("user") or r.get("actor")),
            e(r.get("reason")),
        ]
        for r in reversed(records)
    ]
    if log_rows:
        parts.append(
            table(["at", "action", "version", "previous", "by", "reason"], log_rows, "history")
        )
    if log_problems:
        msg = registry.log_problem_message(site.publish, name, log_problems)
        parts.append(f'<p class="error">{e(msg)}</p>')
    if site.allow_changes and pointer:
        parts.append(
            "<h2>Roll back</h2>"
            + change_form(f"/models/{q(name)}/rollback", "Roll back to the previous version")
        )
    return layout(site, f"model {name}", "".join(parts))


XSRF_FIELD = "{xsrf}"  # replaced by the handler with Tornado's hidden token field


def change_form(action: str, label: str, version: str | None = None) -> str:
    hidden = f'<input type="hidden" name="version" value="{e(version)}">' if version else ""
    return (
        f'<form class="change" method="post" action="{e(action)}">{XSRF_FIELD}{hidden}'
        '<label>reason <input name="reason" required size="40"></label> '
        f'<button type="submit">{e(label)}</button></form>'
    )


def _gates_html(verdict_obj: Any) -> str:
    summary = registry.gates_summary(verdict_obj)
    if summary.get("problem"):
        return f'<p class="error">{e(summary["problem"])}</p>'
    parts = [f"<p>Gates: {verdict(summary['passed'])}</p>"]
    stages = verdict_obj.get("stages") if isinstance(verdict_obj, dict) else None
    for stage, raw in sorted((stages or {}).items()):
        stage_info = summary["stages"].get(stage, {"passed": False})
        gates = [g for g in (raw.get("gates") or []) if isinstance(g, dict)]
        # Failed blocking gates first: they are why a version did not pass.
        gates.sort(key=lambda g: not (g.get("blocking") and g.get("result") == "fail"))
        rows, classes = [], []
        for g in gates:
            failed = bool(g.get("blocking")) and g.get("result") == "fail"
            classes.append("blocking-fail" if failed else "")
            rows.append(
                [
                    e(g.get("name")),
                    e(g.get("result")),
                    "blocking" if g.get("blocking") else "advisory",
                    e(g.get("details")),
                ]
            )
        disabled = " (suite disabled)" if raw.get("disabled") else ""
        parts.append(f"<h3>{e(stage)}: {verdict(stage_info['passed'])}{disabled}</h3>")
        if rows:
            parts.append(table(["gate", "result", "", "details"], rows, "gates", classes))
    return "".join(parts)


def _metrics_html(site: Site, name: str, info: dict[str, Any], current: str | None) -> str:
    prod = None
    if current and current != info["version"]:
        if current in registry.version_ids(site.publish, name):
            prod = registry.version_summary(site.publish, name, current, current=current)
    task = str(info["metrics"].get("task") or "")
    names = list(METRICS.get(task, {})) or sorted(
        {m for t in METRICS.values() for m in t} & set(info["metrics"])
    )
    deltas = registry.metric_deltas(info["metrics"], prod["metrics"]) if prod else {}
    rows = [
        [
            e(m),
            num(info["metrics"].get(m)),
            num(prod["metrics"].get(m)) if prod else "-",
            num(deltas.get(m, {}).get("delta"), signed=True),
        ]
        for m in names
        if m in info["metrics"] or (prod and m in prod["metrics"])
    ]
    theirs = f"production ({prod['version'][:8]})" if prod else "production"
    if info["production"]:
        theirs = "production (this version)"
    return table(["metric", "this version", theirs, "delta"], rows, "metrics")


def _artifacts(manifest: dict[str, Any], folder: str, suffix: str) -> list[str]:
    artifacts = manifest.get("artifacts")
    names = artifacts if isinstance(artifacts, dict) else {}
    return sorted(rel for rel in names if rel.startswith(folder + "/") and rel.endswith(suffix))


def lineage_html(site: Site, manifest: dict[str, Any], version_folder: str | None) -> str:
    """The lineage graph drawn by Graphviz when ``dot`` is installed, else its DOT text."""
    try:
        checked = lineage.check_manifest(manifest, "the manifest")
        dot = lineage.lineage_dot(checked, version_folder)
    except StorageError as exc:
        return f'<p class="error">{e(exc)}</p>'
    if site.dot is None:
        return (
            '<p class="muted">Graphviz is not installed (no <code>dot</code>): the graph as '
            f'DOT text.</p><pre class="dot">{e(dot)}</pre>'
        )
    try:
        proc = subprocess.run(
            [site.dot, "-Tsvg"], input=dot.encode(), capture_output=True, timeout=DOT_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f'<p class="error">dot failed ({e(exc)})</p><pre class="dot">{e(dot)}</pre>'
    svg = proc.stdout.decode("utf-8", "replace")
    start = svg.find("<svg")
    if proc.returncode != 0 or start < 0:
        err = proc.stderr.decode("utf-8", "replace")
        return f'<p class="error">dot failed: {e(err)}</p><pre class="dot">{e(dot)}</pre>'
    # dot writes labels as XML text (escaped): the SVG is inlined without its XML prolog.
    return f'<div class="lineage">{svg[start:]}</div>'


def version_page(site: Site, name: str, version: str) -> str:
    _require_version(site, name, version)
    pointer, _ = _pointer(site, name)
    current = pointer["version"] if pointer else None
    info = registry.version_summary(site.publish, name, version, current=current)
    title = f"model {name} version {version}"
    base = f"/models/{q(name)}/versions/{q(version)}"
    parts = [
        f'<p><a href="/models/{q(name)}">&larr; all versions of {e(name)}</a></p>',
        f"<p>Created {when(info['created_at'])}, run date {e(info['run_date'])}, estimator "
        f"<code>{e(info['estimator'])}</code>"
        + (" &mdash; <b>in production</b>" if info["production"] else "")
        + "</p>",
    ]
    try:
        manifest = registry.read_manifest(site.publish, name, version)
    except StorageError as exc:
        parts.append(f'<p class="error damaged">This version is damaged: {e(exc)}</p>')
        return layout(site, title, "".join(parts))
    if site.allow_changes and not info["production"]:
        parts.append(change_form(f"/models/{q(name)}/promote", "Promote to production", version))
    parts.append("<h2>Metrics</h2>" + _metrics_html(site, name, info, current))
    folder = registry.version_dir(site.publish, name, version)
    verdict_obj = registry.read_optional_json(storage.join(folder, registry.VERDICT_FILE))
    parts.append("<h2>Gates</h2>" + _gates_html(verdict_obj))
    plots = _artifacts(manifest, "plots", ".png")
    parts.append(
        "<h2>Plots</h2>"
        + "".join(
            f'<figure style="display:inline-block"><img class="plot" src="{base}/{e(rel)}" '
            f'alt="{e(rel)}"><figcaption>{e(rel)}</figcaption></figure>'
            for rel in plots
        )
        if plots
        else "<h2>Plots</h2><p>none</p>"
    )
    reports = _artifacts(manifest, "reports", ".html")
    parts.append(
        "<h2>Reports</h2><ul>"
        + "".join(
            f'<li><a class="report" href="{base}/{e(rel)}">{e(rel)}</a></li>' for rel in reports
        )
        + "</ul>"
    )
    parts.append("<h2>Lineage</h2>" + lineage_html(site, manifest, folder))
    text = json.dumps(manifest, indent=2, sort_keys=True, default=str)
    parts.append(f'<h2>Manifest</h2><pre class="manifest">{e(text)}</pre>')
    parts.append(PLOT_SCRIPT)
    return layout(site, title, "".join(parts))


# A plot that does not load (damaged, unreadable store) says so under the broken image; one that
# does records its size, which is how the browser test knows it was drawn.
PLOT_SCRIPT = """<script>
for (const img of document.querySelectorAll("img.plot")) {
  const mark = () => {
    img.dataset.naturalWidth = img.naturalWidth;
    if (!img.naturalWidth) img.insertAdjacentHTML("afterend", '<p class="error">not loaded</p>');
  };
  if (img.complete) mark(); else { img.onload = mark; img.onerror = mark; }
}
</script>"""


def version_file(site: Site, name: str, version: str, rel: str) -> tuple[bytes, str]:
    """A plot or report of a version, checked against the sha256 its manifest records."""
    _require_version(site, name, version)
    suffix = rel[rel.rfind(".") :]
    kind = FILE_TYPES.get(suffix)
    top = rel.partition("/")[0]
    if kind is None or top not in ("plots", "reports") or ".." in rel.split("/"):
        raise Page(404, "not found", f"version {version} of {name!r} has no file {rel!r} to show")
    manifest = registry.read_manifest(site.publish, name, version)
    if registry.recorded_sha256(manifest, rel) is None:
        raise Page(404, "not found", f"version {version} of {name!r} has no file {rel!r}")
    return registry.verified_bytes(site.publish, name, version, rel, manifest), kind


# The workspace reports the Luigi web UI links to (a task's tracking URL, tasks/base.py).
REPORT_STAGES = ("validate_data", "validate_split", "validate_model")


def task_report(site: Site, stage: str, identity: str) -> tuple[bytes, str]:
    """The deepchecks report of a validation task in the workspace, by its stage and identity:
    what a Luigi tracking URL opens over http (a file:// link opens nowhere but on its host)."""
    workspace = _workspace(site)
    if stage not in REPORT_STAGES or not identity.isalnum():
        raise Page(404, "not found", f"no task report {stage}/{identity}")
    path = storage.join(workspace, stage, identity, "report.html")
    if not storage.exists(path):
        raise Page(
            404,
            "not found",
            f"no report of task {stage}/{identity} in {workspace} (not run yet, or another "
            "workspace: start mlcd ui with that pipeline's --config)",
        )
    return storage.read_bytes(path), FILE_TYPES[".html"]


# --- runs ------------------------------------------------------------------------------------


def _workspace(site: Site) -> str:
    if site.workspace is None:
        raise Page(
            404,
            "no workspace",
            "runs are shown when `mlcd ui` is started with --config (its workspace holds them)",
        )
    return site.workspace


def runs_page(site: Site) -> str:
    workspace = _workspace(site)
    rows = []
    for s in lineage.run_summaries(workspace, None):
        link = f'<a href="/runs/{q(s["run_id"])}"><code>{e(s["run_id"])}</code></a>'
        if "problem" in s:
            rows.append([link, "-", "-", f'<span class="bad">{e(s["problem"])}</span>', "", ""])
            continue
        status = str(s["status"])
        shown = f'<span class="{"ok" if status == "success" else "bad"}">{e(status)}</span>'
        rows.append(
            [
                link,
                e(s["model"]),
                e(s["run_date"]),
                shown,
                f"{s['ran']}/{s['ran'] + s['already_complete']}",
                f"<code>{e(s['published'])}</code>" if s["published"] else "-",
            ]
        )
    body = (
        table(["run", "model", "date", "status", "ran", "published"], rows, "runs")
        if rows
        else f"<p>No runs recorded in <code>{e(lineage.runs_dir(workspace))}</code> yet.</p>"
    )
    return layout(site, "runs", body)


def _earlier(workspace: str, run_id: str, model: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    """For each task label, the latest earlier run of the model that completed it."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for other in reversed([r for r in lineage.run_ids(workspace) if r < run_id]):
        try:
            manifest = lineage.read_run(workspace, other)
        except StorageError:
            continue
        if manifest.get("model") != model:
            continue
        for label, record in manifest["tasks"].items():
            if label not in found and record.get("complete"):
                found[label] = (other, manifest)
    return found


def why_ran(
    label: str, manifest: dict[str, Any], earlier: dict[str, tuple[str, dict[str, Any]]]
) -> str:
    """Why a task ran in a run: what differs from the latest earlier run that completed it."""
    record = manifest["tasks"][label]
    if label not in earlier:
        return "no earlier run completed it"
    other, before = earlier[label]
    old = before["tasks"][label]
    if old.get("identity") == record.get("identity"):
        return f"its output was missing (run {other} had completed it)"
    reasons = []
    family = str(record.get("family"))
    candidates = bool(manifest["config"].get("candidates"))
    for path in diff_paths(old.get("params") or {}, record.get("params") or {}):
        key = lineage.config_key(family, record.get("candidate"), candidates, path)
        reasons.append(
            f"changed parameter: {key} ({shown_value(old.get('params'), path)} -> "
            f"{shown_value(record.get('params'), path)})"
        )
    changed = [
        r
        for r in record.get("requires") or []
        if r in before["tasks"]
        and before["tasks"][r].get("identity") != manifest["tasks"].get(r, {}).get("identity")
    ]
    if changed:
        reasons.append(f"an upstream task changed: {', '.join(changed)}")
    return "; ".join(reasons) or f"its identity changed since run {other}"


def run_page(site: Site, run_text: str) -> str:
    workspace = _workspace(site)
    run_id = lineage.resolve_run(workspace, run_text)
    if run_id is None:
        raise Page(404, "not found", f"no run {run_text!r} in {lineage.runs_dir(workspace)}")
    manifest = lineage.read_run(workspace, run_id)
    earlier = _earlier(workspace, run_id, manifest.get("model"))
    failed = set(manifest.get("failed") or [])
    ran = set(manifest.get("ran") or [])
    done = set(manifest.get("already_complete") or [])
    messages = {f.get("task"): f for f in manifest.get("failures") or [] if isinstance(f, dict)}
    status = str(manifest.get("status"))
    parts = [
        f"<p>Model {e(manifest.get('model'))}, date {e(manifest.get('run_date'))}: "
        f'<span class="{"ok" if status == "success" else "bad"}">{e(status)}</span> '
        f"(exit {e(manifest.get('exit_code'))}), started {when(manifest.get('started_at'))}, "
        f"{e(manifest.get('seconds'))} s</p>"
    ]
    for task, failure in messages.items():
        parts.append(
            f'<p class="error failure"><b>{e(task)}</b>: {e(failure.get("kind"))}: '
            f"{e(failure.get('message'))}</p>"
        )
    published = manifest.get("published")
    if isinstance(published, dict):
        parts.append(f"<p>Published version <code>{e(published.get('version'))}</code></p>")
    else:
        parts.append("<p>Nothing published.</p>")
    candidates = [str(c.get("name")) for c in manifest["config"].get("candidates") or []]
    rows = []
    for label in lineage.ordered(manifest["tasks"], candidates):
        record = manifest["tasks"][label]
        if label in failed:
            state = '<span class="bad">FAILED</span>'
            message = messages.get(label, {}).get("message")
            why = e(message) if message else "it failed (see the run's log)"
            why = f"ran because {e(why_ran(label, manifest, earlier))}; failed: {why}"
        elif label in ran:
            state, why = "ran", e(why_ran(label, manifest, earlier))
        elif label in done:
            state, why = "already complete", "its output was complete: skipped"
        else:
            state = "not run"
            why = "complete" if record.get("complete") else "an upstream task failed"
        rows.append([e(label), f"<code>{e(record.get('identity'))}</code>", state, why])
    parts.append("<h2>Tasks and why each ran</h2>")
    parts.append(table(["task", "identity", "in this run", "why"], rows, "tasks"))
    parts.append("<h2>Lineage</h2>" + lineage_html(site, manifest, None))
    return layout(site, f"run {run_id}", "".join(parts))


# --- changes ---------------------------------------------------------------------------------


def promote(site: Site, name: str, version: str, reason: str) -> str:
    _require_version(site, name, version)
    registry.promote(site.publish, name, version, reason=reason, user=registry.current_user())
    return f"/models/{q(name)}/versions/{q(version)}"


def rollback(site: Site, name: str, reason: str) -> str:
    _require_model(site, name)
    registry.rollback(site.publish, name, reason=reason, user=registry.current_user())
    return f"/models/{q(name)}"


# --- the server ------------------------------------------------------------------------------


class _Handler(tornado.web.RequestHandler):
    site: Site

    def initialize(self, site: Site) -> None:
        self.site = site

    def prepare(self) -> None:
        # On loopback, a page may only be asked for by a loopback name: a web page elsewhere
        # that points its own host name at 127.0.0.1 (DNS rebinding) cannot read the registry.
        if self.application.settings.get("loopback_only"):
            name = tornado.httputil.split_host_and_port(self.request.host)[0]
            if not is_loopback(name):
                self.error_page(
                    403,
                    "forbidden",
                    f"this mlcd ui listens on loopback and answers only to a loopback host "
                    f"name (127.0.0.1, localhost), not {self.request.host!r}; to reach it by "
                    "another name, start it with --host",
                )

    async def answer(self, build: Callable[..., str], *args: str) -> None:
        """Build the page off the event loop (a registry read may wait on S3), then send it."""
        loop = asyncio.get_running_loop()
        try:
            text = await loop.run_in_executor(None, build, self.site, *args)
        except Page as page:
            self.error_page(page.status, page.title, str(page))
            return
        except NotFound as exc:
            self.error_page(404, "not found", str(exc))
            return
        except MlcdError as exc:
            self.error_page(500, exc.kind, str(exc))
            return
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(text.replace(XSRF_FIELD, self.xsrf_form_html()))

    def error_page(self, status: int, title: str, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(layout(self.site, title, f'<p class="error">{e(message)}</p>'))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) or self._reason
        self.finish(
            layout(self.site, f"{status_code} {self._reason}", f'<p class="error">{e(message)}</p>')
        )


class IndexHandler(_Handler):
    async def get(self) -> None:
        await self.answer(index_page)


class ModelHandler(_Handler):
    async def get(self, name: str) -> None:
        await self.answer(model_page, name)


class VersionHandler(_Handler):
    async def get(self, name: str, version: str) -> None:
        await self.answer(version_page, name, version)


class _FileHandler(_Handler):
    async def send_file(self, read: Callable[..., tuple[bytes, str]], *args: str) -> None:
        """A file read off the event loop; a report sandboxed (it runs its own scripts, plotly,
        but not as this site)."""
        loop = asyncio.get_running_loop()
        try:
            data, kind = await loop.run_in_executor(None, read, self.site, *args)
        except Page as page:
            self.error_page(page.status, page.title, str(page))
            return
        except MlcdError as exc:
            self.error_page(500, exc.kind, str(exc))
            return
        self.set_header("Content-Type", kind)
        if kind.startswith("text/html"):
            self.set_header("Content-Security-Policy", "sandbox allow-scripts")
        self.finish(data)


class FileHandler(_FileHandler):
    async def get(self, name: str, version: str, rel: str) -> None:
        await self.send_file(version_file, name, version, rel)


class TaskReportHandler(_FileHandler):
    async def get(self, stage: str, identity: str) -> None:
        await self.send_file(task_report, stage, identity)


class RunsHandler(_Handler):
    async def get(self) -> None:
        await self.answer(runs_page)


class RunHandler(_Handler):
    async def get(self, run_id: str) -> None:
        await self.answer(run_page, run_id)


class _ChangeHandler(_Handler):
    """A POST that changes production: refused unless the server allows changes."""

    def check_xsrf_cookie(self) -> None:
        if not self.site.allow_changes:
            raise tornado.web.HTTPError(
                403, "this mlcd ui is read-only: start it with --allow-changes to change production"
            )
        super().check_xsrf_cookie()

    async def change(self, do: Callable[..., str], *args: str) -> None:
        loop = asyncio.get_running_loop()
        reason = self.get_body_argument("reason", "")
        try:
            target = await loop.run_in_executor(None, lambda: do(self.site, *args, reason))
        except Page as page:
            self.error_page(page.status, page.title, str(page))
            return
        except NotFound as exc:
            self.error_page(404, "not found", str(exc))
            return
        except (UsageError, PromotionRefused) as exc:
            self.error_page(400, exc.kind, str(exc))
            return
        except MlcdError as exc:
            self.error_page(409, exc.kind, str(exc))
            return
        self.redirect(target, status=303)


class PromoteHandler(_ChangeHandler):
    async def post(self, name: str) -> None:
        await self.change(promote, name, self.get_body_argument("version", ""))


class RollbackHandler(_ChangeHandler):
    async def post(self, name: str) -> None:
        await self.change(rollback, name)


def make_app(site: Site, *, loopback_only: bool = False) -> tornado.web.Application:
    seg = r"([^/]+)"
    routes: list[Any] = [
        (r"/", IndexHandler),
        (rf"/models/{seg}", ModelHandler),
        (rf"/models/{seg}/promote", PromoteHandler),
        (rf"/models/{seg}/rollback", RollbackHandler),
        (rf"/models/{seg}/versions/{seg}", VersionHandler),
        (rf"/models/{seg}/versions/{seg}/((?:plots|reports)/[^/]+)", FileHandler),
        (rf"/tasks/{seg}/{seg}/report.html", TaskReportHandler),
        (r"/runs", RunsHandler),
        (rf"/runs/{seg}", RunHandler),
    ]
    return tornado.web.Application(
        [(pattern, handler, {"site": site}) for pattern, handler in routes],
        xsrf_cookies=True,
        loopback_only=loopback_only,
        default_handler_class=_NotFoundHandler,
        default_handler_args={"site": site},
        log_function=lambda handler: None,
    )


class _NotFoundHandler(_Handler):
    def prepare(self) -> None:
        super().prepare()
        if self._finished:
            return
        self.error_page(404, "not found", f"no page {self.request.path}")


def serve(
    site: Site,
    *,
    host: str = "127.0.0.1",
    port: int,
    allow_remote_changes: bool = False,
) -> int:
    """Serve the pages until SIGTERM or SIGINT."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be 0-65535 (got {port}); 0 picks a free port")
    if site.allow_changes and not is_loopback(host) and not allow_remote_changes:
        raise UsageError(
            f"--allow-changes on --host {host} would let anyone who reaches it change "
            "production (no authentication): bind 127.0.0.1, or add --allow-remote-changes"
        )
    return asyncio.run(_serve(site, host, port))


async def _serve(site: Site, host: str, port: int) -> int:
    try:
        sockets = tornado.netutil.bind_sockets(port, address=host)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port "
            "(0 picks a free one), or stop the process holding it"
        ) from None
    server = tornado.httpserver.HTTPServer(make_app(site, loopback_only=is_loopback(host)))
    server.add_sockets(sockets)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = sockets[0].getsockname()[1]
    mode = "promote and rollback allowed" if site.allow_changes else "read-only"
    runs = f", runs of {site.workspace}" if site.workspace else ""
    print(f"mlcd ui: registry {site.publish}{runs} on {url(host, bound)} ({mode})", flush=True)
    if not is_loopback(host):
        print(
            f"mlcd ui: warning: listening on {host}, not loopback: the page has no "
            "authentication or TLS; expose it only behind a proxy that adds them",
            file=sys.stderr,
            flush=True,
        )
    await stop.wait()
    server.stop()
    await server.close_all_connections()
    return 0
