"""Shadow deployment: ``mlcd serve churn --shadow OLD`` answers exactly as without it, scores the
shadow on the same rows off the request path, records agreement in the prediction log, counts
the shadow's errors without returning them, and ``mlcd models show`` turns the log (and a file
of labels) into evidence for a promotion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from mlcd import registry
from mlcd.app import scoring
from mlcd.monitoring import predlog
from tests.churn_versions import MODEL, TARGET, Site, rows, site, table
from tests.conftest import run_mlcd
from tests.test_prediction_log import post
from tests.test_serving import Service, wait_for

pytestmark = pytest.mark.e2e
REQUESTS = [(0, 1), (1, 41), (41, 42), (42, 242)]  # 1, 40, 1 and 200 rows


class Shadowed:
    """The same requests sent to production alone and to production with the first version as
    its shadow; the second service's log and health."""

    def __init__(self, churn: Site, folder: Path) -> None:
        self.site, self.log = churn, folder / "log"
        plain = Service(
            churn.registry, folder / "plain.log", "--prediction-log", "off", model=MODEL
        )
        shadowed = Service(
            churn.registry,
            folder / "shadowed.log",
            *("--shadow", churn.first[:7], "--prediction-log", str(self.log)),
            *("--log-flush-seconds", "0.2"),
            model=MODEL,
        )
        try:
            self.bodies = [rows(a, b) for a, b in REQUESTS]
            self.plain = [post(plain, body)[0] for body in self.bodies]
            self.answers = [post(shadowed, body)[0] for body in self.bodies]
            n = sum(len(b) for b in self.bodies)
            wait_for(lambda: shadowed.request("GET", "/health")[1]["shadow"]["rows"] == n, "shadow")
            self.health = shadowed.request("GET", "/health")[1]
            self.version = shadowed.request("GET", "/version")[1]
            # the new version no longer takes `region`: the shadow cannot score rows without it
            self.no_region, _ = post(shadowed, rows(300, 303, drop=("region",)))
            wait_for(lambda: shadowed.request("GET", "/health")[1]["shadow"]["errors"] == 1, "err")
            self.after_error = shadowed.request("GET", "/health")[1]
        finally:
            plain.stop()
            assert shadowed.stop() == 0
            self.stderr = shadowed.log()


@pytest.fixture(scope="module")
def shadowed(tmp_path_factory: pytest.TempPathFactory) -> Shadowed:
    folder = tmp_path_factory.mktemp("shadow")
    return Shadowed(site(tmp_path_factory, folder), folder)


def test_the_shadow_never_changes_an_answer_and_its_agreement_is_logged(shadowed: Shadowed):
    churn = shadowed.site
    assert shadowed.answers == shadowed.plain  # byte for byte the same JSON
    assert {a["version"] for a in shadowed.answers} == {churn.second}
    first = registry.load_version(str(churn.registry), MODEL, churn.first)
    expected = [scoring.predict_rows(first, {"rows": b})["predictions"] for b in shadowed.bodies]
    served = sum((a["predictions"] for a in shadowed.answers), [])
    shadow = sum(expected, [])
    agrees = [a == b for a, b in zip(served, shadow, strict=True)]
    assert 0 < sum(agrees) < len(agrees)  # two different models: some rows differ

    log = predlog.read(str(shadowed.log))
    scored = log[log[predlog.SHADOW_AGREES].notna()]
    assert scored[predlog.PREDICTION].tolist() == served
    assert scored[predlog.SHADOW_PREDICTION].tolist() == shadow
    assert scored[predlog.SHADOW_AGREES].tolist() == agrees
    assert set(log[predlog.SHADOW_VERSION]) == {churn.first}
    assert set(log[predlog.VERSION]) == {churn.second}
    assert scored["customer_id"].tolist() == [r["customer_id"] for b in shadowed.bodies for r in b]

    state = shadowed.health["shadow"]
    assert state["version"] == churn.first and state["rows"] == len(agrees)
    assert state["agreed_rows"] == sum(agrees) and state["errors"] == 0
    assert state["agreement"] == pytest.approx(sum(agrees) / len(agrees))
    assert shadowed.version["shadow"]["version"] == churn.first
    assert shadowed.version["shadow"]["agreement"] == state["agreement"]
    assert f"shadow version {churn.first}" in shadowed.stderr


def test_a_failing_shadow_is_counted_and_never_reaches_the_client(shadowed: Shadowed):
    assert shadowed.no_region["n"] == 3 and "error" not in shadowed.no_region
    state = shadowed.after_error
    assert state["status"] == "ok" and state["shadow"]["errors"] == 1
    assert "'region'" in state["shadow"]["last_error"]
    log = predlog.read(str(shadowed.log))
    failed = log[log[predlog.SHADOW_AGREES].isna()]
    assert len(failed) == 3 and failed[predlog.SHADOW_PREDICTION].isna().all()
    assert failed[predlog.PREDICTION].tolist() == shadowed.no_region["predictions"]


def show(churn: Site, log: Path, *extra: str) -> dict[str, Any]:
    proc = run_mlcd(
        "models", "show", MODEL, "--prediction-log", str(log), "--json", *extra, *churn.reg()
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_models_show_reports_agreement_and_with_labels_each_versions_metrics(
    shadowed: Shadowed, tmp_path: Path
):
    churn = shadowed.site
    health = shadowed.after_error["shadow"]
    (evidence,) = show(churn, shadowed.log)["shadow"]["versions"]
    assert evidence["version"] == churn.first and evidence["against"] == [churn.second]
    assert (evidence["rows"], evidence["agreed"], evidence["errors"]) == (
        health["rows"],
        health["agreed_rows"],
        3,
    )
    assert evidence["agreement"] == pytest.approx(health["agreement"])
    assert evidence["first"] <= evidence["last"] and evidence["labelled"] is None

    # Labels arrive for every other customer; one was first mislabelled, then corrected.
    truth = table().iloc[:242][["customer_id", TARGET]].iloc[::2].dropna()
    wrong = truth.head(1).assign(**{TARGET: "maybe"})
    labels = tmp_path / "labels.csv"
    pd.concat([wrong, truth]).to_csv(labels, index=False)
    result = show(churn, shadowed.log, "--labels", str(labels), "--label-id", "customer_id")
    (evidence,) = result["shadow"]["versions"]
    labelled = evidence["labelled"]
    log = predlog.read(str(shadowed.log))
    joined = log.merge(truth, on="customer_id")
    assert labelled["rows"] == len(joined) > 100
    y, served, shadow = (
        joined[TARGET],
        joined[predlog.PREDICTION],
        joined[predlog.SHADOW_PREDICTION],
    )
    expected = {
        "accuracy": (accuracy_score(y, served), accuracy_score(y, shadow)),
        "f1": (f1_score(y, served, pos_label="yes"), f1_score(y, shadow, pos_label="yes")),
    }
    for metric in labelled["metrics"]:
        ours, theirs = expected[metric["metric"]]
        assert metric["served"] == pytest.approx(ours) and metric["shadow"] == pytest.approx(theirs)
        assert metric["delta"] == pytest.approx(theirs - ours)

    text = run_mlcd(
        "models", "show", MODEL, "--prediction-log", str(shadowed.log), *churn.reg(),
        "--labels", str(labels), "--label-id", "customer_id",
    ).stdout  # fmt: skip
    assert "AGREEMENT" in text and f"{100 * evidence['agreement']:.2f}%" in text
    assert f"shadow {churn.first} on {labelled['rows']} labelled row(s)" in text


@pytest.mark.parametrize(
    "args,code,fragment",
    [
        (("--shadow", "ffff0000"), 8, "--shadow ffff0000: "),
        (("--shadow", "SECOND"), 2, "is the one being served"),
        (("--shadow", "FIRST"), 7, "model.joblib"),  # its model file was damaged
    ],
)
def test_a_bad_shadow_is_refused_at_start_in_one_line(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, args: Any, code: int, fragment: str
):
    churn = site(tmp_path_factory, tmp_path)
    model = churn.registry / MODEL / "versions" / churn.first / "model.joblib"
    model.write_bytes(model.read_bytes()[:-10])
    args = [{"FIRST": churn.first, "SECOND": churn.second}.get(a, a) for a in args]
    proc = run_mlcd("serve", MODEL, "--port", "0", *args, *churn.reg(), timeout=120)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.count("\n") == 1 and fragment in proc.stderr, proc.stderr
    assert proc.stdout == ""
    if code == 8:
        proc = run_mlcd("models", "show", MODEL, "--labels", "x.csv", *churn.reg())
        assert proc.returncode == 2 and "--labels needs --label-id COLUMN" in proc.stderr
