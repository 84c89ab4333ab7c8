"""Webhook notifications: a real HTTP receiver on a free port gets one JSON POST per event
(published, gate_failed, run_failed) from real ``mlcd run`` processes, and a receiver that is
down costs the run one warning line, never its success."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import free_port, run_mlcd
from daily import daily_config, write_day

from mlcd import notify
from mlcd.config import load_config
from mlcd.config.model import NotifyConfig
from mlcd.errors import ConfigError

DAY = "2026-01-15"


class Receiver:
    """An HTTP server that keeps every POST's path and JSON body; a path may be told to answer
    with an error status a number of times first."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.failures: dict[str, list[int]] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((self.path, json.loads(body)))
                pending = receiver.failures.get(self.path, [])
                status = pending.pop(0) if pending else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def at(self, path: str) -> list[dict[str, Any]]:
        return [body for where, body in self.posts if where == path]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.server.shutdown()


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("mlcd: warning:")]


# --- the sender on its own ----------------------------------------------------------------------


def test_a_receiver_error_is_retried_once_then_delivered(receiver, capsys):
    receiver.failures["/flaky"] = [503]
    cfg = SimpleNamespace(notify=NotifyConfig(webhooks=[receiver.url("/flaky")]))
    notify.send("drift", "churn", "drift on tenure", {"columns": ["tenure"]}, config=cfg)
    bodies = receiver.at("/flaky")
    assert len(bodies) == 2 and bodies[0] == bodies[1]
    (body,) = bodies[1:]
    assert body["text"] == "drift on tenure" and body["event"] == "drift"
    assert body["model"] == "churn" and body["details"] == {"columns": ["tenure"]}
    assert body["time"].endswith("+00:00") and body["host"]
    assert warnings(capsys.readouterr().err) == []


def test_a_refused_notification_is_one_warning_without_a_retry(receiver, capsys):
    receiver.failures["/gone"] = [404, 404]
    cfg = SimpleNamespace(notify=NotifyConfig(webhooks=[receiver.url("/gone")]))
    notify.send("published", "churn", "v1", {}, config=cfg)
    assert len(receiver.at("/gone")) == 1
    (line,) = warnings(capsys.readouterr().err)
    assert "HTTP 404" in line and "/gone" not in line  # a webhook's path is its secret


def test_events_not_chosen_are_not_sent(receiver):
    cfg = SimpleNamespace(
        notify=NotifyConfig(webhooks=[receiver.url("/chosen")], events=["gate_failed"])
    )
    notify.send("published", "churn", "v1", {}, config=cfg)
    notify.send("gate_failed", "churn", "blocked", {}, config=cfg)
    assert [b["event"] for b in receiver.at("/chosen")] == ["gate_failed"]


@pytest.mark.parametrize(
    "notify_section, problem",
    [
        ({"webhooks": ["hooks.example.com/x"]}, "'notify.webhooks': 'hooks.example.com/x'"),
        ({"webhooks": ["ftp://example.com/x"]}, "is not a webhook URL"),
        ({"events": ["publish"]}, "'notify.events': unknown event(s) 'publish'; allowed:"),
    ],
)
def test_a_bad_notify_section_is_a_config_error(tmp_path, notify_section, problem):
    config = daily_config(tmp_path, notify=notify_section)
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert caught.value.exit_code == 2 and problem in str(caught.value)


# --- from real runs -------------------------------------------------------------------------------


def test_a_publish_is_notified_once_and_a_receiver_that_is_down_is_one_warning(tmp_path, receiver):
    down = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    config = daily_config(tmp_path, notify={"webhooks": [receiver.url("/published"), down]})
    write_day(tmp_path, DAY)
    result = run_mlcd("run", "--config", str(config), "--date", DAY, "--json")
    assert result.returncode == 0, result.stderr
    version = json.loads(result.stdout)["published"]["version"]
    (body,) = receiver.at("/published")
    assert body["event"] == "published" and body["model"] == "churn"
    assert version in body["text"] and "promoted" in body["text"]
    assert body["details"]["version"] == version and body["details"]["promoted"] is True
    assert body["details"]["run_date"] == DAY
    (line,) = warnings(result.stderr)
    assert "published notification for churn was not delivered to http://127.0.0.1:" in line
    # a rerun publishes nothing, so it sends nothing
    again = run_mlcd("run", "--config", str(config), "--date", DAY)
    assert again.returncode == 0 and len(receiver.at("/published")) == 1


def test_a_failed_gate_is_notified_with_its_name_and_nothing_else(tmp_path, receiver):
    config = daily_config(
        tmp_path,
        notify={"webhooks": [receiver.url("/gate")]},
        gates={"thresholds": {"accuracy": {"min": 1.01}}},  # cannot pass
    )
    write_day(tmp_path, DAY)
    result = run_mlcd("run", "--config", str(config), "--date", DAY)
    assert result.returncode == 3, result.stderr
    (body,) = receiver.at("/gate")
    assert body["event"] == "gate_failed"
    assert body["details"]["stage"] == "model_evaluation"
    assert any("accuracy >= 1.01" in gate for gate in body["details"]["gates"])
    assert body["details"]["verdict"].endswith("verdict.json")
    assert "accuracy >= 1.01" in body["text"]


def test_a_failed_run_is_notified_through_luigi_cfg(tmp_path, receiver):
    cfg = tmp_path / "luigi.cfg"
    cfg.write_text(
        f"[mlcd]\nwebhook_url = {receiver.url('/failed')}\nwebhook_events = run_failed\n"
    )
    config = daily_config(tmp_path, features=["tenure", "contract_type"])  # not in the data
    write_day(tmp_path, DAY)
    result = run_mlcd(
        "run", "--config", str(config), "--date", DAY, env={"LUIGI_CONFIG_PATH": str(cfg)}
    )
    assert result.returncode == 2, result.stderr
    (body,) = receiver.at("/failed")
    assert body["event"] == "run_failed" and body["model"] == "churn"
    details = body["details"]
    assert details["kind"] == "config error" and details["exit_code"] == 2
    assert "contract_type" in details["message"] and details["run_date"] == DAY
