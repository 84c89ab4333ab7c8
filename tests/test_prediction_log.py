"""The prediction log of ``mlcd serve`` and ``mlcd predict``, run as real processes on a real
churn model: the rows, columns, versions and sampled share it holds, whole Parquet files after a
kill, an S3 location on moto_server, a store that goes away without failing a request, and bad
locations and rates refused at start in one line."""

from __future__ import annotations

import http.client
import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlcd.monitoring import predlog
from tests.churn_versions import MODEL, TARGET, Site, rows, site, table
from tests.conftest import run_mlcd
from tests.test_serving import Service, wait_for

pytestmark = pytest.mark.e2e
FAST = ("--log-flush-seconds", "0.2")


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return site(tmp_path_factory, tmp_path_factory.mktemp("predlog"))


@pytest.fixture
def serve(churn: Site, tmp_path: Path) -> Iterator[Any]:
    started: list[Service] = []

    def start(*extra: str) -> Service:
        service = Service(
            churn.registry, tmp_path / f"serve-{len(started)}.log", *extra, model=MODEL
        )
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


def post(service: Service, body: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    try:
        conn.request("POST", "/predict", body=json.dumps({"rows": body}))
        response = conn.getresponse()
        answer = json.loads(response.read())
        assert response.status == 200, answer
        return answer, str(response.getheader("X-Mlcd-Request"))
    finally:
        conn.close()


def health(service: Service) -> dict[str, Any]:
    status, answer = service.request("GET", "/health")
    assert status == 200
    return dict(answer)


def test_serve_logs_every_row_as_sent_with_its_prediction_version_and_request(
    churn: Site, serve: Any
):
    service = serve(*FAST)  # the default location: beside the model's versions
    sent = [rows(0, 1), rows(1, 6), rows(6, 26)]
    answers = [post(service, body) for body in sent]
    assert service.stop() == 0  # SIGTERM flushes the log
    log = predlog.read(str(churn.log_dir()))
    assert len(log) == 26
    inputs = [c for c in table().columns if c != TARGET]
    assert set(log.columns) == {*inputs, *predlog.RESERVED}  # the id too, as sent
    assert set(log[predlog.VERSION]) == {churn.second}
    assert set(log[predlog.SOURCE]) == {"serve"}
    assert log[predlog.REQUEST].drop_duplicates().tolist() == [r for _, r in answers]
    assert log[predlog.PREDICTION].tolist() == sum((a["predictions"] for a, _ in answers), [])
    expected = pd.DataFrame(sum(sent, []))
    assert log["customer_id"].tolist() == expected["customer_id"].tolist()
    assert log["plan"].tolist() == expected["plan"].tolist()  # blanks kept
    assert log["monthly_charges"].isna().sum() == expected["monthly_charges"].isna().sum() > 0
    assert log[predlog.TIME].is_monotonic_increasing
    # one file per batch, named by time, host, pid and sequence, in the day's partition
    (day,) = [p.name for p in churn.log_dir().iterdir()]
    assert day == "date=" + log[predlog.TIME].iloc[0].strftime("%Y-%m-%d")
    assert predlog.read(str(churn.log_dir()), version="nope").empty


def test_sampling_keeps_a_share_of_requests_whole_and_a_share_of_predicted_rows(
    churn: Site, serve: Any, tmp_path: Path
):
    service = serve("--log-sample-rate", "0.3", "--prediction-log", str(tmp_path / "s"), *FAST)
    for i in range(100):
        post(service, rows(2 * i, 2 * i + 2))
    assert health(service)["prediction_log"]["sample_rate"] == 0.3
    service.stop()
    log = predlog.read(str(tmp_path / "s"))
    per_request = log.groupby(predlog.REQUEST).size()
    assert set(per_request) == {2}  # a request is logged whole or not at all
    assert 12 <= len(per_request) <= 50  # 100 x 0.3 = 30 (sd 4.6)

    source = tmp_path / "in.csv"
    table().drop(columns=[TARGET]).head(1000).to_csv(source, index=False)
    proc = run_mlcd(
        "predict", MODEL, "--input", str(source), "--output", str(tmp_path / "out.csv"),
        "--log-sample-rate", "0.5", "--prediction-log", str(tmp_path / "p"), *churn.reg(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    logged = predlog.read(str(tmp_path / "p"))
    assert 400 <= len(logged) <= 600  # 1000 rows x 0.5 (sd 16)
    assert logged["customer_id"].is_unique


def test_predict_logs_the_rows_of_its_file_with_their_predictions(churn: Site, tmp_path: Path):
    source = tmp_path / "in.parquet"
    frame = table().drop(columns=[TARGET]).head(700)
    frame.to_parquet(source, index=False)
    out = tmp_path / "out.csv"
    proc = run_mlcd(
        "predict", MODEL, "--input", str(source), "--output", str(out), "--keep", "customer_id",
        "--prediction-log", str(tmp_path / "log"), *churn.reg(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"logged 700 row(s) to {tmp_path / 'log'}" in proc.stdout
    log = predlog.read(str(tmp_path / "log"))
    written = pd.read_csv(out, dtype={"customer_id": str})
    assert log["customer_id"].tolist() == written["customer_id"].tolist()
    assert log[predlog.PREDICTION].tolist() == written["prediction"].tolist()
    assert set(log[predlog.SOURCE]) == {"predict"} and log[predlog.REQUEST].nunique() == 1
    assert set(log[predlog.VERSION]) == {churn.second}
    assert set(frame.columns) <= set(log.columns)

    off = run_mlcd(
        "predict", MODEL, "--input", str(source), "--output", str(out),
        "--prediction-log", "off", *churn.reg(),
    )  # fmt: skip
    assert off.returncode == 0 and "logged" not in off.stdout


def parquet_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.parquet") if not p.name.startswith("."))


def test_a_killed_serve_leaves_only_whole_parquet_files_and_a_stopped_one_loses_nothing(
    churn: Site, serve: Any, tmp_path: Path
):
    for how in (signal.SIGKILL, signal.SIGTERM):
        where = tmp_path / how.name
        service = serve("--prediction-log", str(where), "--log-flush-seconds", "0.05")
        answered: list[int] = []
        stop = threading.Event()

        def hammer(
            service: Service = service, answered: list[int] = answered, stop: Any = stop
        ) -> None:
            i = 0
            while not stop.is_set():
                try:
                    answer, _ = post(service, rows(i % 2900, i % 2900 + 50))
                except (OSError, AssertionError):
                    return
                answered.append(answer["n"])
                i += 50

        thread = threading.Thread(target=hammer, daemon=True)
        thread.start()
        wait_for(lambda where=where: len(parquet_files(where)) >= 3, "a few batches")
        service.proc.send_signal(how)
        service.proc.wait(timeout=60)
        stop.set()
        thread.join(timeout=30)
        files = parquet_files(where)
        for path in files:
            assert pq.read_table(path).num_rows > 0  # every visible file is whole
        log = predlog.read(str(where))
        if how == signal.SIGTERM:
            assert len(log) == sum(answered)  # every answered row was written at the stop


def test_logging_to_s3_and_a_store_that_goes_away_fails_no_request(
    churn: Site, serve: Any, s3_endpoint: Any
):
    bucket = s3_endpoint.bucket("predlog")
    location = f"s3://{bucket}/churn/predictions"
    service = serve("--prediction-log", location, *FAST)
    for i in range(3):
        post(service, rows(10 * i, 10 * i + 10))
    wait_for(lambda: health(service)["prediction_log"]["written_rows"] == 30, "the S3 writes")
    keys = list(s3_endpoint.objects(bucket))
    assert keys and all(k.startswith("churn/predictions/date=") for k in keys)
    assert len(predlog.read(location)) == 30

    client = s3_endpoint.client()  # the bucket goes away
    for key in keys:
        client.delete_object(Bucket=bucket, Key=key)
    client.delete_bucket(Bucket=bucket)
    for i in range(3, 8):
        answer, _ = post(service, rows(10 * i, 10 * i + 10))
        assert answer["n"] == 10
    wait_for(lambda: health(service)["prediction_log"]["error"] is not None, "the failure")
    state = health(service)
    assert state["status"] == "degraded" and state["error"] is None  # the model is fine
    assert bucket in state["prediction_log"]["error"]
    assert state["prediction_log"]["queued_rows"] == 50  # kept for the retry
    post(service, rows(80, 90))
    client.create_bucket(Bucket=bucket)  # it comes back: the held rows are written
    wait_for(lambda: health(service)["prediction_log"]["written_rows"] == 90, "the retry")
    assert health(service)["status"] == "ok"
    assert service.stop() == 0
    assert len(predlog.read(location)) == 60  # the 30 deleted with the bucket are gone
    reported = [line for line in service.log().splitlines() if "cannot write (" in line]
    assert len(reported) == 1  # once, not per request or retry


@pytest.mark.parametrize(
    "args,code,fragment",
    [
        (("--log-sample-rate", "0"), 2, "--log-sample-rate '0': give the share to log"),
        (("--log-sample-rate", "1.5"), 2, "more than 0 and at most 1"),
        (("--log-sample-rate", "many"), 2, "--log-sample-rate 'many'"),
        (("--prediction-log", "ftp://host/log"), 2, "the ftp:// scheme is not supported"),
        (("--prediction-log", "s3://No_Bucket/log"), 2, "not a valid S3 bucket name"),
        (("--prediction-log", "s3://mlcd-no-such-bucket/log"), 7, "does not exist"),
        (("--prediction-log", "FILE"), 7, "predictions cannot be written there"),
    ],
)
def test_a_bad_prediction_log_or_rate_is_refused_at_start_in_one_line(
    churn: Site, tmp_path: Path, s3_endpoint: Any, args: tuple[str, ...], code: int, fragment: str
):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    args = tuple(str(a_file) if a == "FILE" else a for a in args)
    table().drop(columns=[TARGET]).head(5).to_csv(tmp_path / "in.csv", index=False)
    predict = ["predict", MODEL, "--input", str(tmp_path / "in.csv"), "--output"]
    for command in (["serve", MODEL, "--port", "0"], [*predict, str(tmp_path / "out.csv")]):
        proc = run_mlcd(*command, *args, *churn.reg(), timeout=120)
        assert proc.returncode == code, proc.stderr
        assert proc.stderr.count("\n") == 1 and fragment in proc.stderr, proc.stderr
        assert proc.stdout == ""  # nothing served, nothing scored
    assert not (tmp_path / "out.csv").exists()
