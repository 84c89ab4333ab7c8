"""``mlcd ui`` as a real process over a registry the real pipeline built: its pages over HTTP, its
refusals (unknown names, changes when read-only, changes on a public address), promote and
rollback through its forms, and a version page and a failed run as headless Chromium draws them.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    MLCD,
    ROOT,
    browser_dom,
    browser_screenshot,
    chromium,
    production,
    run_json,
    run_mlcd,
    serving_port,
    stop_server,
    versions,
    write_config,
)

pytestmark = pytest.mark.e2e
MODEL = "breast-cancer"
START_TIMEOUT = 60.0  # a liveness bound, not a timing
OFF = {"enabled": False}
FAST = {"data_integrity": OFF, "train_test": OFF, "model_evaluation": OFF}


class UI:
    """``mlcd ui`` on a free port of 127.0.0.1."""

    def __init__(self, log: Path, *args: str) -> None:
        self.log_path = log
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [MLCD, "ui", "--port", "0", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self.port = serving_port(self.proc, log, "mlcd ui", START_TIMEOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        cookie: str = "",
        host: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Cookie": cookie} if cookie else {}
        if host is not None:
            headers["Host"] = host
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def page(self, path: str, status: int = 200) -> str:
        code, _, body = self.request("GET", path)
        text = body.decode()
        assert code == status, (path, code, text[-2000:])
        assert "Traceback" not in text
        return text

    def stop(self) -> int:
        code = stop_server(self.proc)
        self._log.close()
        return code


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[Callable[..., UI]]:
    started: list[UI] = []

    def start(*args: str) -> UI:
        server = UI(tmp_path / f"ui-{len(started)}.log", *args)
        started.append(server)
        return server

    yield start
    for server in started:
        assert server.stop() == 0, server.log_path.read_text()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two published versions (a second run with a shallower forest, a day later) and, in the
    same workspace, a run whose accuracy threshold cannot pass: it fails and publishes nothing.
    The deepchecks suites are off: these tests are about the page, not the suites."""
    folder = tmp_path_factory.mktemp("ui")
    first = write_config(folder, validation=FAST)
    code, _, err = run_json(first)
    assert code == 0, err
    (v1,) = versions(folder / "registry", MODEL)
    second = write_config(
        folder, filename="shallow.yaml", validation=FAST, model={"params": {"max_depth": 3}}
    )
    code, _, err = run_json(second, date="2026-01-16")
    assert code == 0, err
    (v2,) = set(versions(folder / "registry", MODEL)) - {v1}
    failing = write_config(
        folder,
        filename="strict.yaml",
        validation=FAST,
        gates={"thresholds": {"accuracy": {"min": 1.01}}},
    )
    code, report, err = run_json(failing)
    assert code == 3, err
    runs = sorted(p.name for p in (folder / "workspace" / "runs").iterdir())
    return {"folder": folder, "config": first, "v1": v1, "v2": v2, "failed_run": runs[-1]}


def _copy(built: dict[str, Any], tmp_path: Path) -> Path:
    """A copy of the registry, for the tests that change or damage it."""
    target = tmp_path / "registry"
    shutil.copytree(built["folder"] / "registry", target)
    return target


def test_pages_show_models_versions_gates_files_and_runs(built: dict[str, Any], ui: Any):
    server = ui("--config", str(built["config"]))
    v1, v2 = built["v1"], built["v2"]
    current = production(built["folder"] / "registry", MODEL)
    assert current in (v1, v2)

    index = server.page("/")
    assert f'href="/models/{MODEL}"' in index and current in index

    model = server.page(f"/models/{MODEL}")
    assert model.index(v2) < model.index(v1), "newest version first"
    assert "<polyline" in model and "passed" in model and "Production history" in model
    assert "<form" not in model, "read-only: no buttons"

    page = server.page(f"/models/{MODEL}/versions/{v1}")
    for text in ("Metrics", "accuracy", "Gates", "accuracy &gt;= 0.9", "Lineage", "Manifest"):
        assert text in page, text
    assert f"&quot;version&quot;: &quot;{v1}&quot;" in page, "the manifest, pretty-printed"
    if shutil.which("dot"):
        assert '<div class="lineage"><svg' in page and "PublishModel" in page
    else:
        assert '<pre class="dot">digraph' in page
    assert "file://" not in page
    plots = re.findall(r'<img class="plot" src="([^"]+)"', page)
    reports = re.findall(r'<a class="report" href="([^"]+)"', page)
    assert len(plots) == 2 and len(reports) == 3, (plots, reports)
    code, headers, body = server.request("GET", plots[0])
    assert code == 200 and headers["Content-Type"] == "image/png" and body[:4] == b"\x89PNG"
    code, headers, body = server.request("GET", reports[0])
    assert code == 200 and headers["Content-Type"].startswith("text/html") and b"<html" in body

    # Unknown names: a 404 page that names them.
    assert "no model &#x27;nope&#x27;" in server.page("/models/nope", 404)
    missing = server.page(f"/models/{MODEL}/versions/0123456789abcdef", 404)
    assert "0123456789abcdef" in missing
    assert server.request("GET", f"/models/{MODEL}/versions/{v1}/model.joblib")[0] == 404
    assert server.request("GET", f"/models/{MODEL}/versions/{v1}/plots/nope.png")[0] == 404

    # Read-only: every change is refused, production is unchanged.
    code, _, body = server.request(
        "POST", f"/models/{MODEL}/promote", {"version": v1, "reason": "try"}
    )
    assert code == 403 and b"read-only" in body
    assert server.request("POST", f"/models/{MODEL}/rollback", {"reason": "try"})[0] == 403
    assert production(built["folder"] / "registry", MODEL) == current

    runs = server.page("/runs")
    assert runs.count('href="/runs/') == 3 and "failed" in runs
    failed = server.page(f"/runs/{built['failed_run']}")
    assert "accuracy &gt;= 1.01" in failed and "FAILED" in failed
    # Why ValidateModel ran again: the threshold changed since the earlier run of the config.
    assert "changed parameter: gates.thresholds.accuracy.min (0.9 -&gt; 1.01)" in failed
    assert "already complete" in failed, "the tasks before it were skipped"
    assert "no run" in server.page("/runs/nope", 404)


def test_promote_and_rollback_from_the_page_change_production(
    built: dict[str, Any], ui: Any, tmp_path: Path
):
    registry_dir = _copy(built, tmp_path)
    server = ui("--registry", str(registry_dir), "--allow-changes")
    assert server.page("/runs", 404), "no workspace without --config"
    before = production(registry_dir, MODEL)
    other = built["v1"] if before == built["v2"] else built["v2"]
    code, headers, body = server.request("GET", f"/models/{MODEL}/versions/{other}")
    assert code == 200 and b"Promote to production" in body
    token = re.search(rb'name="_xsrf" value="([^"]+)"', body)
    assert token is not None
    cookie = headers["Set-Cookie"].split(";")[0]
    form = {"_xsrf": token.group(1).decode(), "version": other}

    # No reason: refused with the registry's own message.
    code, _, body = server.request("POST", f"/models/{MODEL}/promote", form, cookie)
    assert code == 400 and b"needs a reason" in body
    # A forged form (no token from the page) is refused too.
    forged = {"version": other, "reason": "forged"}
    assert server.request("POST", f"/models/{MODEL}/promote", forged)[0] == 403
    assert production(registry_dir, MODEL) == before

    code, headers, _ = server.request(
        "POST", f"/models/{MODEL}/promote", {**form, "reason": "from the ui"}, cookie
    )
    assert code == 303 and headers["Location"].endswith(other)
    assert production(registry_dir, MODEL) == other
    log = (registry_dir / MODEL / "promotions.jsonl").read_text().splitlines()
    assert json.loads(log[-1])["reason"] == "from the ui"
    assert "from the ui" in server.page(f"/models/{MODEL}")

    rollback = {"_xsrf": form["_xsrf"], "reason": "back again"}
    code, _, _ = server.request("POST", f"/models/{MODEL}/rollback", rollback, cookie)
    assert code == 303 and production(registry_dir, MODEL) == before


def _xsrf(server: UI, path: str) -> tuple[str, str]:
    """The form token of a page and the cookie that goes with it."""
    code, headers, body = server.request("GET", path)
    token = re.search(rb'name="_xsrf" value="([^"]+)"', body)
    assert code == 200 and token is not None, body[-2000:]
    return token.group(1).decode(), headers["Set-Cookie"].split(";")[0]


def test_a_registry_on_s3_is_browsed_promoted_and_rolled_back_like_a_local_one(
    built: dict[str, Any], ui: Any, s3_endpoint: Any
):
    bucket = s3_endpoint.bucket()
    client = s3_endpoint.client()
    local = built["folder"] / "registry"
    for path in local.rglob("*"):
        if path.is_file() and path.name != ".lock":
            client.upload_file(str(path), bucket, f"reg/{path.relative_to(local).as_posix()}")
    server = ui("--registry", f"s3://{bucket}/reg", "--allow-changes")
    v1, v2 = built["v1"], built["v2"]
    current = production(local, MODEL)
    other = v1 if current == v2 else v2
    assert current in server.page("/")
    page = server.page(f"/models/{MODEL}/versions/{other}")
    assert "accuracy &gt;= 0.9" in page and "Promote to production" in page
    plots = re.findall(r'<img class="plot" src="([^"]+)"', page)
    code, headers, body = server.request("GET", plots[0])
    assert code == 200 and headers["Content-Type"] == "image/png" and body[:4] == b"\x89PNG"

    def pointer() -> str:
        body = client.get_object(Bucket=bucket, Key=f"reg/{MODEL}/production.json")["Body"]
        return str(json.loads(body.read())["version"])

    token, cookie = _xsrf(server, f"/models/{MODEL}/versions/{other}")
    form = {"_xsrf": token, "version": other, "reason": "on s3"}
    code, _, body = server.request("POST", f"/models/{MODEL}/promote", form, cookie)
    assert code == 303, body[-2000:]
    assert pointer() == other
    assert "on s3" in server.page(f"/models/{MODEL}")
    form = {"_xsrf": token, "reason": "back on s3"}
    code, _, body = server.request("POST", f"/models/{MODEL}/rollback", form, cookie)
    assert code == 303, body[-2000:]
    assert pointer() == current
    log = client.get_object(Bucket=bucket, Key=f"reg/{MODEL}/promotions.jsonl")["Body"].read()
    reasons = [json.loads(line).get("reason") for line in log.decode().splitlines()]
    assert reasons[-2:] == ["on s3", "back on s3"]


def test_on_loopback_it_answers_only_to_loopback_host_names(built: dict[str, Any], ui: Any):
    # A page elsewhere that points its own name at 127.0.0.1 (DNS rebinding) reads nothing.
    server = ui("--registry", str(built["folder"] / "registry"))
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", "[::1]"):
        assert server.request("GET", "/", host=host)[0] == 200, host
    for host in (f"rebind.example:{server.port}", "10.1.2.3", "127.0.0.1.example"):
        for path in ("/", f"/models/{MODEL}", "/nope"):
            code, _, body = server.request("GET", path, host=host)
            assert code == 403 and b"answers only to a loopback host name" in body, host
            assert MODEL.encode() not in body


def test_changes_are_refused_on_a_public_address_without_allow_remote_changes(
    built: dict[str, Any], tmp_path: Path
):
    registry_dir = built["folder"] / "registry"
    proc = run_mlcd(
        "ui", "--registry", str(registry_dir), "--host", "0.0.0.0", "--allow-changes", timeout=60
    )
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("mlcd: usage error: --allow-changes on --host 0.0.0.0")
    assert "--allow-remote-changes" in line


def test_a_damaged_version_shows_its_error_not_a_traceback(
    built: dict[str, Any], ui: Any, tmp_path: Path
):
    registry_dir = _copy(built, tmp_path)
    manifest = registry_dir / MODEL / "versions" / built["v1"] / "manifest.json"
    manifest.write_text("{not json")
    server = ui("--registry", str(registry_dir))
    page = server.page(f"/models/{MODEL}/versions/{built['v1']}")
    assert "This version is damaged" in page and "is not valid JSON" in page
    assert "damaged" in server.page(f"/models/{MODEL}")


def test_browser_shows_a_version_with_its_plots_reports_and_a_failed_run(
    built: dict[str, Any], ui: Any, tmp_path: Path
):
    base = chromium(tmp_path)
    server = ui("--config", str(built["config"]))
    version = f"{server.url}/models/{MODEL}/versions/{built['v1']}"
    dom = browser_dom(base, version)
    # Each plot was fetched and decoded: the page's script recorded its width.
    widths = re.findall(r'<img class="plot"[^>]*data-natural-width="(\d+)"', dom)
    assert len(widths) == 2 and all(int(w) > 100 for w in widths), dom[:3000]
    assert "not loaded" not in dom.replace("'<p class=\"error\">not loaded</p>'", "")
    (report,) = re.findall(r'<a class="report" href="([^"]+model_evaluation[^"]+)"', dom)
    target = browser_dom(base, urllib.parse.urljoin(version, report))
    assert "validation.model_evaluation is disabled in the config" in target
    browser_screenshot(base, version, tmp_path / "version.png")

    run = f"{server.url}/runs/{built['failed_run']}"
    dom = browser_dom(base, run)
    assert "accuracy &gt;= 1.01" in dom and "FAILED" in dom
    browser_screenshot(base, run, tmp_path / "failed-run.png")


def test_luigi_tracking_urls_open_the_reports_in_mlcd_ui_over_http(ui, tmp_path):
    """With [mlcd] ui_url (here MLCD_UI_URL), each validation task's link in the Luigi web UI is
    its report in `mlcd ui`, over http, not a file:// link that opens only on the worker."""
    from tests.conftest import Luigid

    config = write_config(
        tmp_path, validation={"data_integrity": {}, "train_test": OFF, "model_evaluation": OFF}
    )
    server = ui("--config", str(config))
    scheduler = Luigid(tmp_path / "luigid")
    scheduler.start()
    try:
        code, _, err = run_json(config, *scheduler.args(), env={"MLCD_UI_URL": server.url})
        assert code == 0, err
        done = scheduler.api("task_list", status="DONE", upstream_status="", search=str(config))
    finally:
        scheduler.stop()
    links = {t["name"]: t.get("tracking_url") for t in done.values()}
    for name in ("ValidateData", "ValidateSplit", "ValidateModel"):
        assert links[name].startswith(f"{server.url}/tasks/"), links
    report = server.page(urllib.parse.urlsplit(links["ValidateData"]).path)
    assert "<html" in report[:500].lower() and "Data Integrity" in report
    server.page("/tasks/validate_data/0000000000000000/report.html", status=404)
