"""Drift of logged inputs against a version's reference profile: per feature the tests its role
calls for, each statistic computed from the profile alone (no training rows), judged against the
config's ``monitor`` thresholds; the drift of the model's predictions against its test-set
predictions; and realised metrics on logged rows whose labels arrived.

Every finding is a mapping: column, role, test, statistic, threshold, verdict (``drift``,
``ok`` or ``info``: reported, not judged) and a detail in words. See docs/monitoring.md.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mlcd import registry, storage
from mlcd.catalogue import METRICS
from mlcd.config import PipelineConfig
from mlcd.config.model import MonitorConfig
from mlcd.errors import ConfigError, DataError, NotFound, UsageError
from mlcd.monitoring import predlog
from mlcd.monitoring import profile as prof

# Shares below this count as this in PSI (an empty bin would make it infinite).
EPS = 1e-4
# Reserved columns of the prediction log (contract: mlcd.monitoring.predlog).
PREDICTION = "_mlcd_prediction"
VERSION = "_mlcd_version"
# Tests whose statistic drifts when it is below the threshold (a p-value); others: above.
BELOW = frozenset({"chi_square"})


def thresholds_for(monitor: MonitorConfig, column: str) -> dict[str, float | None]:
    """The thresholds of one column: the config's, with the column's overrides (an override
    given as null turns that test's judgement off)."""
    merged = monitor.thresholds.model_dump()
    override = monitor.columns.get(column)
    if override is not None:
        merged.update({k: getattr(override, k) for k in override.model_fields_set})
    return merged


def check_columns(monitor: MonitorConfig, profile: Mapping[str, Any], where: str) -> None:
    """ConfigError naming a ``monitor.columns`` key that is not a feature of the profile."""
    known = list(profile["columns"])
    for column in monitor.columns:
        if column not in known:
            raise ConfigError(
                f"{where}: 'monitor.columns.{column}': not a feature of the model in production; "
                f"its features are: {', '.join(known)}"
            )


def finding(
    column: str,
    role: str,
    test: str,
    statistic: float | None,
    threshold: float | None,
    detail: str = "",
    noise: float | None = None,
) -> dict[str, Any]:
    """One test's result. ``noise``: the value chance alone stays under 99 times in 100 for a
    window of this many rows; a statistic must pass both it and the threshold to be drift, so a
    small window's noise is not reported as a change."""
    if statistic is not None and not np.isfinite(statistic):
        statistic = None  # JSON has no NaN
    if statistic is None or threshold is None:
        verdict = "info"
    elif test in BELOW:
        verdict = "drift" if statistic < threshold else "ok"
    else:
        verdict = "drift" if statistic > max(threshold, noise or 0.0) else "ok"
        if noise is not None and noise > threshold:
            detail += f"; with these row counts chance alone reaches {noise:.3g}"
    return {
        "column": column,
        "role": role,
        "test": test,
        "statistic": None if statistic is None else float(statistic),
        "threshold": threshold,
        "noise": None if noise is None else round(float(noise), 6),
        "verdict": verdict,
        "detail": detail,
    }


# --- how far chance alone moves each statistic, for n logged and m training rows (99%) -----


def _spread(n: int, m: int) -> float:
    return float(np.sqrt(1 / max(n, 1) + 1 / max(m, 1)))


def ks_noise(n: int, m: int) -> float:
    """The two-sample KS critical value at 1% (Smirnov's asymptotic c(0.01) = 1.628)."""
    return 1.628 * _spread(n, m)


def psi_noise(bins: int, n: int, m: int) -> float:
    """PSI of two samples of one distribution is (1/n + 1/m) times a chi-square with
    bins - 1 degrees of freedom, asymptotically: its 99th percentile."""
    from scipy.special import chdtri

    if bins < 2:
        return 0.0
    return float(chdtri(bins - 1, 0.01)) * _spread(n, m) ** 2


def wasserstein_noise(
    percents: list[float], quantiles: list[float], scale: float, n: int, m: int
) -> float:
    """sqrt(nm/(n+m)) W1 tends to the integral of |B(F(x))| (B a Brownian bridge), whose scale
    is J, the integral of sqrt(F(1 - F)) dx: 2 J bounds its 99th percentile (measured: 1.0 to
    1.7 J on normal and lognormal columns, 200 to 3,000 rows)."""
    p = np.asarray(percents, dtype=float) / 100
    mid = (p[1:] + p[:-1]) / 2
    j = float(np.sum(np.sqrt(mid * (1 - mid)) * np.diff(np.asarray(quantiles, dtype=float))))
    return 2 * j / scale * _spread(n, m)


# --- the statistics, from the profile ------------------------------------------------------------


def psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index of two share vectors over the same bins."""
    e = np.maximum(np.asarray(expected, dtype=float), EPS)
    a = np.maximum(np.asarray(actual, dtype=float), EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_distance(percents: list[float], quantiles: list[float], values: np.ndarray) -> float:
    """The Kolmogorov-Smirnov distance between the logged values and the training distribution
    known by its quantiles: the smallest distance any distribution with those quantiles could
    have (exact for discrete columns; within one percentile step, 1%, for continuous ones)."""
    p = np.asarray(percents, dtype=float) / 100
    q = np.asarray(quantiles, dtype=float)
    values = np.sort(values)
    n = len(values)
    points = np.unique(np.concatenate([values, q]))
    at = np.searchsorted(values, points, side="right") / n  # F_log(x)
    before = np.searchsorted(values, points, side="left") / n  # F_log(x-)
    padded = np.concatenate([[0.0], p, [1.0]])
    right = np.searchsorted(q, points, side="right")
    left = np.searchsorted(q, points, side="left")
    # The quantiles are the inverted CDF: P(X <= q_i) >= p_i and P(X < q_i) <= p_i.
    lower, upper = padded[right], padded[right + 1]  # bounds of P(X <= x)
    lower_b, upper_b = padded[left], padded[left + 1]  # bounds of P(X < x)
    gaps = np.stack([at - upper, lower - at, before - upper_b, lower_b - before])
    return float(max(gaps.max(), 0.0))


def wasserstein(percents: list[float], quantiles: list[float], values: np.ndarray) -> float:
    """The Wasserstein-1 distance between the quantile functions, integrated over the profile's
    percentiles (in the column's units)."""
    p = np.asarray(percents, dtype=float) / 100
    theirs = np.asarray(prof.quantiles(values, tuple(percents)), dtype=float)
    gap = np.abs(np.asarray(quantiles, dtype=float) - theirs)
    return float(np.sum((gap[1:] + gap[:-1]) / 2 * np.diff(p)))


def category_counts(
    summary: Mapping[str, Any], values: pd.Series
) -> tuple[list[str], list[float], list[int], int]:
    """The profile's categories (and "other" when training had one), their training shares,
    the logged counts in each, and the logged values training never had."""
    names = list(summary["shares"])
    known = set(names)
    counts = values.value_counts()
    logged = [int(counts.get(name, 0)) for name in names]
    outside = int(sum(int(c) for k, c in counts.items() if str(k) not in known))
    shares = [float(summary["shares"][n]) for n in names]
    unseen = outside if summary["complete"] else 0
    if summary["other"] > 0 or not summary["complete"]:
        names.append(prof.OTHER)
        shares.append(float(summary["other"]))
        logged.append(outside)
    return names, shares, logged, unseen


def chi_square_p(shares: list[float], logged: list[int]) -> float | None:
    """The p-value of Pearson's chi-square test of the logged counts under the training shares
    (None with one category)."""
    from scipy.special import chdtrc  # the chi-square survival function (scipy.stats: +0.5 s)

    keep = [i for i, s in enumerate(shares) if s > 0]
    if len(keep) < 2:
        return None
    observed = np.asarray([logged[i] for i in keep], dtype=float)
    if observed.sum() == 0:
        return None
    expected = np.asarray([shares[i] for i in keep], dtype=float)
    expected = expected / expected.sum() * observed.sum()
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return float(chdtrc(len(keep) - 1, statistic))


# --- one column -------------------------------------------------------------------------------


def _numeric(
    column: str, ref: Mapping[str, Any], values: pd.Series, limits: Mapping[str, float | None]
) -> list[dict[str, Any]]:
    summary = ref["numeric"]
    present = prof.numeric_values(values).dropna().to_numpy()
    if summary.get("count", 0) == 0 or len(present) == 0:
        return [finding(column, "numeric", "psi", None, None, "no values to compare")]
    bins = summary["bins"]
    shares = prof.bin_shares(present, bins["edges"])
    scale = summary["std"] or summary["iqr"] or 1.0
    w = wasserstein(summary["percents"], summary["quantiles"], present) / scale
    mean = float(present.mean())
    n, m = len(present), int(summary["count"])
    return [
        finding(
            column,
            "numeric",
            "psi",
            psi(bins["shares"], shares),
            limits["psi"],
            f"on the {len(shares)} training decile bins",
            psi_noise(len(shares), n, m),
        ),
        finding(
            column,
            "numeric",
            "ks",
            ks_distance(summary["percents"], summary["quantiles"], present),
            limits["ks"],
            "largest gap between the cumulative distributions",
            ks_noise(n, m),
        ),
        finding(
            column,
            "numeric",
            "wasserstein",
            w,
            limits["wasserstein"],
            f"in training standard deviations; mean {summary['mean']:.4g} -> {mean:.4g}",
            wasserstein_noise(summary["percents"], summary["quantiles"], scale, n, m),
        ),
    ]


def _categorical(
    column: str,
    role: str,
    ref: Mapping[str, Any],
    values: pd.Series,
    limits: Mapping[str, float | None],
) -> list[dict[str, Any]]:
    summary = ref["categories"]
    present = prof.category_values(values).dropna()
    if summary.get("count", 0) == 0 or len(present) == 0:
        return [finding(column, role, "psi", None, None, "no values to compare")]
    names, shares, logged, unseen = category_counts(summary, present)
    total = max(sum(logged), 1)
    out = [
        finding(
            column,
            role,
            "psi",
            psi(shares, [c / total for c in logged]),
            limits["psi"],
            f"on {len(names)} categories",
            psi_noise(len(names), sum(logged), int(summary["count"])),
        ),
        finding(
            column,
            role,
            "chi_square",
            chi_square_p(shares, logged),
            limits["chi_square_p"],
            "p-value of the logged counts under the training shares",
        ),
    ]
    if summary["complete"]:
        new = sorted(
            {str(v) for v in present.unique()} - set(summary["shares"]),
            key=lambda v: str(v),
        )
        shown = ", ".join(repr(v) for v in new[:5]) + (", ..." if len(new) > 5 else "")
        out.append(
            finding(
                column,
                role,
                "unseen",
                unseen / len(present),
                limits["unseen"],
                f"categories training never had: {shown}" if new else "none",
            )
        )
    else:
        out.append(
            finding(
                column,
                role,
                "unseen",
                None,
                limits["unseen"],
                f"training had {summary['distinct']} categories; the profile keeps the "
                f"{len(summary['shares'])} most frequent, so new ones cannot be told apart",
            )
        )
    return out


def column_findings(
    column: str, ref: Mapping[str, Any], values: pd.Series, limits: Mapping[str, float | None]
) -> list[dict[str, Any]]:
    """Every test of one feature column."""
    role = ref["role"]
    logged_nulls = prof.null_rate(values, role)
    out = [
        finding(
            column,
            role,
            "null_rate",
            abs(logged_nulls - ref["null_rate"]),
            limits["null_rate"],
            f"missing {ref['null_rate']:.1%} in training, {logged_nulls:.1%} logged",
        )
    ]
    if role == "numeric":
        out += _numeric(column, ref, values, limits)
    elif role in ("categorical", "boolean"):
        out += _categorical(column, role, ref, values, limits)
    elif role == "datetime":
        now = prof.datetime_summary(values)
        span = ref.get("range", {})
        out.append(
            finding(
                column,
                role,
                "range",
                None,
                None,
                f"training {str(span.get('min'))[:10]} to {str(span.get('max'))[:10]}, logged "
                f"{str(now.get('min'))[:10]} to {str(now.get('max'))[:10]} (dates move on: "
                "not judged)",
            )
        )
    return out


def prediction_findings(
    profile: Mapping[str, Any], predictions: pd.Series, threshold: float | None
) -> list[dict[str, Any]]:
    """The model's logged predictions against its test-set predictions (PSI)."""
    ref = profile.get("prediction")
    column = "(prediction)"
    if not ref or len(predictions) == 0:
        why = "no test-set predictions in the profile" if not ref else "no logged predictions"
        return [finding(column, "prediction", "psi", None, None, why)]
    if ref["kind"] == "categorical":
        present = prof.category_values(predictions).dropna()
        names, shares, logged, _ = category_counts(ref["categories"], present)
        total = max(sum(logged), 1)
        value = psi(shares, [c / total for c in logged])
        noise = psi_noise(len(names), sum(logged), int(ref["categories"]["count"]))
        detail = f"on {len(names)} classes: " + ", ".join(
            f"{n} {s:.0%} -> {c / total:.0%}" for n, s, c in zip(names, shares, logged, strict=True)
        )
    else:
        summary = ref["numeric"]
        present_n = prof.numeric_values(predictions).dropna().to_numpy()
        shares = prof.bin_shares(present_n, summary["bins"]["edges"])
        value = psi(summary["bins"]["shares"], shares)
        noise = psi_noise(len(shares), len(present_n), int(summary.get("count", 0)))
        detail = "on the test-set prediction decile bins"
    return [finding(column, "prediction", "psi", value, threshold, detail, noise)]


def compare(
    profile: Mapping[str, Any], log: pd.DataFrame, monitor: MonitorConfig, version: str
) -> list[dict[str, Any]]:
    """Every finding of ``log`` (the prediction log's rows) against ``profile``: each feature's
    tests, then the predictions of ``version``."""
    out: list[dict[str, Any]] = []
    for column, ref in profile["columns"].items():
        values = log[column] if column in log.columns else pd.Series([None] * len(log))
        out += column_findings(column, ref, values, thresholds_for(monitor, column))
    if PREDICTION in log.columns:
        mine = log[PREDICTION]
        if VERSION in log.columns:
            mine = mine[log[VERSION].astype(str) == version]
        out += prediction_findings(profile, mine, monitor.prediction_psi)
    return out


def realised_findings(
    cfg: PipelineConfig,
    labelled: pd.DataFrame,
    recorded: Mapping[str, Any],
    classes: list[Any] | None,
) -> list[dict[str, Any]]:
    """Metrics of the logged predictions on the rows whose labels arrived (``_mlcd_label``),
    each against the version's test-set value: drift when worse by more than the tolerance."""
    from mlcd import metrics

    tolerance = cfg.monitor.metric_tolerance
    y = labelled["_mlcd_label"]
    predicted = labelled[PREDICTION]
    if cfg.task == "classification":
        y, predicted = y.astype(str), predicted.astype(str)
        labels = [str(c) for c in classes] if classes else sorted(set(y) | set(predicted))
        scores = metrics.score(cfg, y, (predicted.to_numpy(), None), labels)
    else:
        scores = metrics.score(
            cfg, pd.to_numeric(y, errors="coerce"), (prof.numeric_values(predicted), None), None
        )
    out = []
    for metric, direction in METRICS[cfg.task].items():
        theirs, ours = recorded.get(metric), scores.get(metric)
        if not isinstance(theirs, int | float) or not isinstance(ours, int | float):
            continue
        worse = theirs - ours if direction == "max" else ours - theirs
        out.append(
            finding(
                f"(metric {metric})",
                "metric",
                "realised",
                worse,
                tolerance,
                f"{metric} {ours:.4f} on {len(labelled)} labelled logged rows, {theirs:.4f} on "
                "the test set (statistic: how much worse)",
            )
        )
    return out


def drifted(findings: list[dict[str, Any]]) -> list[str]:
    """The columns (and predictions, metrics) with at least one test past its threshold."""
    seen: dict[str, None] = {}
    for f in findings:
        if f["verdict"] == "drift":
            seen[f["column"]] = None
    return list(seen)


def as_threshold_text(test: str, threshold: float | None, noise: float | None = None) -> str:
    """What a statistic is judged against: ``> 0.2``; ``> 0.175*`` when chance alone reaches
    past the threshold with the window's row counts."""
    if threshold is None:
        return "-"
    if test not in BELOW and noise is not None and noise > threshold:
        return f"> {noise:.3g}*"
    return f"{'<' if test in BELOW else '>'} {threshold:g}"


# --- one monitoring window: the production version, its profile, the logged rows -------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_when(text: str, flag: str, now: dt.datetime | None = None) -> dt.datetime:
    """``--since``/``--until``: a date (00:00 UTC that day), an ISO time (UTC unless it says
    otherwise) or a duration back from now (``90m``, ``24h``, ``7d``, ``2w``)."""
    now = now or dt.datetime.now(dt.UTC)
    value = text.strip()
    match = _DURATION.fullmatch(value.lower())
    if match:
        return now - dt.timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{flag} {text!r}: give a date (2026-12-01), a UTC time (2026-12-01T08:30:00) or a "
            "duration back from now (90m, 24h, 7d, 2w)"
        ) from None
    return stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp.astimezone(dt.UTC)


def log_location(cfg: PipelineConfig, given: str | None = None) -> str:
    """Where production's predictions are logged: ``given``, the config's ``monitor.log``, or
    the model's folder in the registry (the default of ``mlcd serve``)."""
    return given or cfg.monitor.log or predlog.default_location(cfg.publish, cfg.name)


def log_files(location: str, since: dt.datetime | None, until: dt.datetime | None) -> list[str]:
    """The log's files that may hold rows of the window, by name under ``location`` (each is
    written once and never changed, so the names identify what a window read)."""
    # Each file is <location>/date=YYYY-MM-DD/<name>.parquet: its name is the last two parts.
    return sorted("/".join(p.rsplit("/", 2)[-2:]) for p in predlog.files(location, since, until))


def production_profile(cfg: PipelineConfig, where: str) -> tuple[str, dict[str, Any]]:
    """The version in production and its profile; NotFound, naming the fix, for a version
    published before mlcd kept profiles."""
    version = registry.production_version(cfg.publish, cfg.name)
    profile = prof.read(cfg.publish, cfg.name, version)
    if profile is None:
        raise NotFound(
            f"version {version} of model {cfg.name!r} (in production) was published before mlcd "
            f"kept a profile of the training data, so its drift cannot be measured; retrain "
            f"(`mlcd run --config {where}`) to publish a version with {registry.PROFILE_FILE}"
        )
    check_columns(cfg.monitor, profile, where)
    return version, profile


def read_labels(path: str, id_column: str) -> pd.DataFrame:
    """The labels file (CSV or Parquet); ids read as text."""
    import io

    if not storage.exists(path):
        raise DataError(
            f"monitor.labels.path {path!r} does not exist; write the labels there (the id "
            "column and the target) or fix the path in the config"
        )
    blob = storage.read_bytes(path)
    try:
        if path.lower().endswith((".parquet", ".pq")):
            return pd.read_parquet(io.BytesIO(blob))
        return pd.read_csv(io.BytesIO(blob), dtype={id_column: str})
    except Exception as exc:
        raise DataError(
            f"monitor.labels.path {path!r} cannot be read: {exc}".splitlines()[0]
        ) from None


def assess(
    cfg: PipelineConfig,
    *,
    since: dt.datetime | None,
    until: dt.datetime | None,
    where: str,
    location: str | None = None,
) -> dict[str, Any]:
    """The drift of production's logged inputs in ``[since, until]``: the verdict as data
    (``status``: ``drift``, ``ok`` or ``not enough data``), with every finding."""
    version, profile = production_profile(cfg, where)
    location = log_location(cfg, location)
    log = predlog.read(location, since=since, until=until)
    monitor = cfg.monitor
    result: dict[str, Any] = {
        "model": cfg.name,
        "version": version,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "log": location,
        "rows": len(log),
        "training_rows": profile["rows"],
        "min_rows": monitor.min_rows,
        "findings": [],
        "drifted": [],
    }
    if len(log) < monitor.min_rows:
        result["status"] = "not enough data"
        result["message"] = (
            f"{len(log)} logged row(s) in the window, fewer than "
            f"monitor.min_rows ({monitor.min_rows}); nothing was judged"
        )
        return result
    findings = compare(profile, log, monitor, version)
    if monitor.labels is not None:
        findings += _realised(cfg, log, version, profile)
    result["findings"] = findings
    result["drifted"] = drifted(findings)
    result["status"] = "drift" if result["drifted"] else "ok"
    result["message"] = (
        f"drift in {', '.join(result['drifted'])}"
        if result["drifted"]
        else f"no drift past the thresholds in {len(profile['columns'])} column(s)"
    )
    return result


def _realised(
    cfg: PipelineConfig, log: pd.DataFrame, version: str, profile: Mapping[str, Any]
) -> list[dict[str, Any]]:
    labels_cfg = cfg.monitor.labels
    assert labels_cfg is not None
    labels = read_labels(labels_cfg.path, labels_cfg.id)
    mine = log[log[VERSION].astype(str) == version] if VERSION in log.columns else log
    rows = predlog.labelled(mine, labels, labels_cfg.id, cfg.target)
    column = "(metrics)"
    if len(rows) < cfg.monitor.min_rows:
        return [
            finding(
                column,
                "metric",
                "realised",
                None,
                None,
                f"{len(rows)} labelled logged row(s), fewer than monitor.min_rows "
                f"({cfg.monitor.min_rows}): not judged",
            )
        ]
    manifest = registry.read_manifest(cfg.publish, cfg.name, version)
    recorded = json.loads(
        registry.verified_bytes(cfg.publish, cfg.name, version, registry.METRICS_FILE, manifest)
    )
    classes = None
    ref = profile.get("prediction") or profile.get("label")
    if cfg.task == "classification":
        matrix = recorded.get("confusion_matrix")
        if isinstance(matrix, dict) and isinstance(matrix.get("labels"), list):
            classes = list(matrix["labels"])
        elif ref:
            classes = list(ref["categories"]["shares"])
    return realised_findings(cfg, rows, recorded, classes)
