"""Webhook notifications: one JSON POST per event to each configured webhook (Slack-compatible:
a top-level ``text``), never failing the pipeline and never holding it up for long.

Where the webhooks come from: the pipeline config's ``notify`` section (passed as ``config``),
else luigi.cfg's ``[mlcd] webhook_url`` (comma-separated) and ``webhook_events``. Which code
sends which event, and why each is sent once: docs/triggers.md.
"""

from __future__ import annotations

import configparser
import datetime as dt
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from typing import Any

EVENTS = ("published", "gate_failed", "run_failed", "drift")

# Seconds per attempt, and attempts per webhook: a receiver that is down costs a run at most
# TIMEOUT * ATTEMPTS + RETRY_PAUSE seconds per webhook, then one warning line.
TIMEOUT = 3.0
ATTEMPTS = 2
RETRY_PAUSE = 0.5

# Overrides luigi.cfg's [mlcd] webhook_url (a test, or a one-off run, points it elsewhere).
WEBHOOK_ENV = "MLCD_WEBHOOK_URL"


def check_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host; else ValueError naming what is wrong."""
    text = url.strip()
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{url!r} is not a webhook URL: give http:// or https:// with a host, as "
            "https://hooks.slack.com/services/..."
        )
    return text


def check_events(events: Iterable[str]) -> list[str]:
    """The event names, each one of EVENTS; else ValueError listing the allowed ones."""
    names = [e.strip() for e in events if e.strip()]
    unknown = [e for e in names if e not in EVENTS]
    if unknown:
        raise ValueError(
            f"unknown event(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(EVENTS)}"
        )
    return names


def _luigi_cfg() -> tuple[list[str], list[str] | None]:
    """luigi.cfg's [mlcd] webhook_url and webhook_events, read as Luigi reads its file (the
    working directory's luigi.cfg, or LUIGI_CONFIG_PATH), without importing Luigi."""
    parser = configparser.ConfigParser(interpolation=None)
    paths = ["/etc/luigi/luigi.cfg", "luigi.cfg"]
    if os.environ.get("LUIGI_CONFIG_PATH"):
        paths.append(os.environ["LUIGI_CONFIG_PATH"])
    try:
        parser.read(paths)
    except configparser.Error as exc:
        raise ValueError(f"luigi.cfg cannot be read: {exc}") from None
    urls = os.environ.get(WEBHOOK_ENV) or str(parser.get("mlcd", "webhook_url", fallback=""))
    events = str(parser.get("mlcd", "webhook_events", fallback=""))
    try:
        found = [check_url(u) for u in urls.split(",") if u.strip()]
        chosen = check_events(events.split(",")) if events.strip() else None
    except ValueError as exc:
        key = "webhook_url" if "URL" in str(exc) else "webhook_events"
        raise ValueError(f"luigi.cfg [mlcd] {key}: {exc}") from None
    return found, chosen


def targets(event: str, config: Any = None) -> list[str]:
    """The webhooks ``event`` goes to: the pipeline config's ``notify`` when it names
    webhooks, else luigi.cfg's; none when the event is not among the chosen ``events``."""
    notify = getattr(config, "notify", None)
    if notify is not None and notify.webhooks:
        urls, events = list(notify.webhooks), notify.events
    else:
        urls, events = _luigi_cfg()
        if notify is not None and notify.events is not None:
            events = notify.events
    if events is not None and event not in events:
        return []
    return urls


def payload(event: str, model: str, text: str, details: dict[str, Any]) -> dict[str, Any]:
    """The JSON body: Slack shows ``text``; other receivers read the fields."""
    return {
        "text": text,
        "event": event,
        "model": model,
        "details": details,
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
    }


def send(event: str, model: str, text: str, details: dict[str, Any], *, config: Any = None) -> None:
    """POST ``event`` to each webhook configured for it. A receiver that does not answer
    within TIMEOUT, or answers with an error, is tried once more, then skipped with one
    warning line on stderr: a notification never fails the caller."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}; allowed: {', '.join(EVENTS)}")
    try:
        urls = targets(event, config)
    except ValueError as exc:  # a bad [mlcd] webhook_url: the run goes on without it
        warn(f"no {event} notification was sent: {exc}")
        return
    if not urls:
        return
    body = json.dumps(payload(event, model, text, details), default=str).encode()
    for url in urls:
        problem = _post(url, body)
        if problem is not None:
            warn(
                f"the {event} notification for {model} was not delivered to "
                f"{_shown(url)}: {problem}"
            )


def _post(url: str, body: bytes) -> str | None:
    """None when delivered; else what went wrong on the last attempt."""
    problem = "not tried"
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(RETRY_PAUSE)
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "mlcd"},
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                response.read()
            return None
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code} {exc.reason}"
            if exc.code < 500 and exc.code != 429:
                return problem  # the receiver refuses this request: asking again will not help
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            problem = str(reason) or type(exc).__name__
    return f"{problem} (after {ATTEMPTS} attempts)"


def _shown(url: str) -> str:
    # A webhook URL's path is its secret (Slack's are): show only where it points.
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/..."


def warn(message: str) -> None:
    """One warning line on stderr (a notification that could not be sent)."""
    print(f"mlcd: warning: {message}", file=sys.stderr, flush=True)
