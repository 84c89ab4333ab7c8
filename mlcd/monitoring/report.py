"""What ``mlcd monitor`` leaves behind: the verdict as JSON, an HTML page of every finding, and a
PNG per drifted column drawing its training distribution (from the profile) beside the logged
one. Written as one folder, all or nothing."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mlcd import registry, storage
from mlcd.monitoring import profile as prof
from mlcd.monitoring.drift import PREDICTION, VERSION, as_threshold_text, category_counts

VERDICT_FILE = "drift.json"
REPORT_FILE = "report.html"
FOLDER = "monitoring"


def default_folder(publish: str, name: str, stamp: str) -> str:
    """``<publish>/<name>/monitoring/<UTC time>/``: beside the model's versions."""
    return storage.join(registry.model_root(publish, name), FOLDER, stamp)


def plot_name(column: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", column).strip("_") or "column"
    return f"plots/{safe}.png"


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _numeric_plot(title: str, summary: Mapping[str, Any], values: np.ndarray) -> bytes:
    import matplotlib.pyplot as plt

    fig, (bars, cdf) = plt.subplots(1, 2, figsize=(10, 3.6))
    edges = summary["bins"]["edges"]
    labels = [f"<= {edges[0]:.4g}"]
    labels += [f"{a:.4g} - {b:.4g}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    labels += [f"> {edges[-1]:.4g}"]
    x = np.arange(len(labels))
    bars.bar(x - 0.2, summary["bins"]["shares"], 0.4, label="training", color="#4c78a8")
    bars.bar(x + 0.2, prof.bin_shares(values, edges), 0.4, label="logged", color="#f58518")
    bars.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
    bars.set_ylabel("share of rows")
    bars.set_title("by training decile bin (PSI)", fontsize=9)
    bars.legend(fontsize=8)
    cdf.step(
        summary["quantiles"],
        np.asarray(summary["percents"]) / 100,
        where="post",
        label="training",
        color="#4c78a8",
    )
    ordered = np.sort(values)
    cdf.step(
        ordered,
        np.arange(1, len(ordered) + 1) / len(ordered),
        where="post",
        label="logged",
        color="#f58518",
    )
    cdf.set_ylabel("cumulative share")
    cdf.set_title("cumulative distribution (KS, Wasserstein)", fontsize=9)
    cdf.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)


def _category_plot(title: str, summary: Mapping[str, Any], values: pd.Series) -> bytes:
    import matplotlib.pyplot as plt

    names, shares, logged, unseen = category_counts(summary, values)
    total = max(sum(logged) + (unseen if prof.OTHER not in names else 0), 1)
    ours = [c / total for c in logged]
    if unseen and prof.OTHER not in names:
        names, shares, ours = [*names, "(unseen)"], [*shares, 0.0], [*ours, unseen / total]
    names = ["(other)" if n == prof.OTHER else n for n in names]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(names) + 2), 3.6))
    x = np.arange(len(names))
    ax.bar(x - 0.2, shares, 0.4, label="training", color="#4c78a8")
    ax.bar(x + 0.2, ours, 0.4, label="logged", color="#f58518")
    tilted = len(names) > 6
    ax.set_xticks(
        x, names, rotation=45 if tilted else 0, ha="right" if tilted else "center", fontsize=8
    )
    ax.set_ylabel("share of rows")
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return _png(fig)


def plots(
    profile: Mapping[str, Any], log: pd.DataFrame, result: Mapping[str, Any]
) -> dict[str, bytes]:
    """A PNG per drifted feature (and for the predictions when they drifted)."""
    import matplotlib

    matplotlib.use("Agg")
    out: dict[str, bytes] = {}
    for column in result["drifted"]:
        if column in profile["columns"]:
            ref, values = profile["columns"][column], log.get(column)
            if values is None:
                continue
            title = f"{column}: training ({profile['rows']} rows) vs logged ({len(log)} rows)"
        elif column == "(prediction)" and profile.get("prediction") and PREDICTION in log:
            ref = profile["prediction"]
            mine = log[log[VERSION].astype(str) == result["version"]] if VERSION in log else log
            values = mine[PREDICTION]
            title = f"predictions: test set ({ref['rows']} rows) vs logged ({len(values)} rows)"
        else:
            continue
        if "numeric" in ref:
            present = prof.numeric_values(values).dropna().to_numpy()
            if len(present) and ref["numeric"].get("count"):
                out[plot_name(column)] = _numeric_plot(title, ref["numeric"], present)
        elif "categories" in ref:
            present_c = prof.category_values(values).dropna()
            if len(present_c):
                out[plot_name(column)] = _category_plot(title, ref["categories"], present_c)
    return out


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def render_html(result: Mapping[str, Any], pngs: Mapping[str, bytes]) -> bytes:
    """The report as one page: the verdict, a table of every finding, the plots."""
    e = html.escape
    status = str(result["status"])
    colour = {"drift": "#b00020", "ok": "#1b7f3b"}.get(status, "#555")
    rows = []
    for f in result["findings"]:
        style = ' style="color:#b00020;font-weight:bold"' if f["verdict"] == "drift" else ""
        rows.append(
            f"<tr{style}><td>{e(f['column'])}</td><td>{e(f['role'])}</td><td>{e(f['test'])}</td>"
            f"<td>{_number(f['statistic'])}</td>"
            f"<td>{e(as_threshold_text(f['test'], f['threshold'], f.get('noise')))}</td>"
            f"<td>{e(f['verdict'])}</td><td>{e(f['detail'])}</td></tr>"
        )
    images = "".join(
        f'<figure><img src="{e(name)}" alt="{e(name)}"><figcaption>{e(name)}</figcaption>'
        + "</figure>"
        for name in sorted(pngs)
    )
    message = e(str(result.get("message", "")))
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>mlcd monitor: {e(str(result["model"]))}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}}
img{{max-width:100%}}</style></head><body>
<h1>Drift of model {e(str(result["model"]))}, version {e(str(result["version"]))}</h1>
<p style="color:{colour};font-size:1.3em"><b>{e(status)}</b>: {message}</p>
<p>{result["rows"]} logged row(s) from {e(str(result["since"] or "the start"))} to
{e(str(result["until"] or "now"))} ({e(str(result["log"]))}), against the profile of
{result["training_rows"]} training rows. A statistic past its threshold is drift; "info" is shown,
not judged; a threshold with * was raised to what chance alone reaches with this many rows.
How to read it: docs/monitoring.md.</p>
<table><tr><th>column</th><th>role</th><th>test</th><th>statistic</th><th>threshold</th>
<th>verdict</th><th>detail</th></tr>
{"".join(rows)}
</table>
{images}
</body></html>
"""
    return page.encode()


def write(folder: str, result: Mapping[str, Any], pngs: Mapping[str, bytes]) -> bool:
    """The report folder, all or nothing (the verdict marks it complete); False when it
    already exists."""
    files = dict(pngs)
    files[REPORT_FILE] = render_html(result, pngs)
    files[VERDICT_FILE] = storage.dumps_json(result)
    return storage.publish_dir(folder, files, VERDICT_FILE)
