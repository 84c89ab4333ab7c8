"""``mlcd serve``: a model of the registry as an HTTP JSON service that follows production.

The standard library's ThreadingHTTPServer serves POST /predict, GET /health and GET /version
(docs/serving.md says why no web framework). A watcher thread polls the production pointer; when
it names another version, the watcher verifies and unpickles that version off the request path,
scores its input example, and swaps a single reference. A request reads that reference once, so
it finishes with the model it started with, and no request waits for or fails on a swap. A
version that cannot be loaded (tampered, missing) is not swapped in: the service keeps the
model it has and says so on /health.

What a request scored goes to the prediction log (mlcd/monitoring/predlog.py) after its answer
is sent, by appending to a bounded queue; a shadow version scores the same rows on its own
thread (``Shadow``) from another bounded queue. Neither can slow, fail or change an answer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import queue
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from mlcd import registry
from mlcd.app import scoring
from mlcd.app.addresses import is_loopback, url
from mlcd.errors import MlcdError, StorageError, UsageError
from mlcd.monitoring import predlog

MAX_BODY = 64 * 1024 * 1024
# A version that failed to load is tried again after this long, or as soon as it is promoted
# again (versions are immutable, so only a repaired folder makes a retry succeed).
RETRY_AFTER = 30.0
DRAIN_SECONDS = 10.0
SHADOW_QUEUE = 256  # requests waiting for the shadow; more are not shadowed (and counted)
ROUTES = "the service has POST /predict, GET /health, GET /version"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _log(message: str) -> None:
    print(f"mlcd serve: {message}", file=sys.stderr, flush=True)


@dataclasses.dataclass(frozen=True)
class Deployed:
    """A loaded version and how it got there: what a request scores with."""

    loaded: registry.LoadedVersion
    loaded_at: str
    pointer: dict[str, Any] | None  # the production pointer it was loaded for; None if pinned

    @property
    def version(self) -> str:
        return self.loaded.version

    def describe(self) -> dict[str, Any]:
        manifest = self.loaded.manifest
        estimator, _ = registry.estimator_of(manifest)
        schema = self.loaded.schema
        pointer = self.pointer or {}
        return {
            "model": self.loaded.name,
            "version": self.version,
            "created_at": manifest.get("created_at"),
            "run_date": manifest.get("run_date"),
            "estimator": estimator,
            "model_sha256": self.loaded.model_sha256,
            "loaded_at": self.loaded_at,
            "pinned": self.pointer is None,
            "promoted_at": pointer.get("updated_at"),
            "promoted_by": pointer.get("user") or pointer.get("actor"),
            "promotion_reason": pointer.get("reason"),
            "task": schema.task,
            "features": list(schema.features),
            "dtypes": dict(schema.dtypes),
            "classes": scoring.classes(self.loaded),
            "input_example": {"rows": self.loaded.example} if self.loaded.example else None,
        }


class ModelWatcher:
    """Holds the model being served and replaces it when the production pointer changes."""

    def __init__(
        self, publish: str, name: str, *, version: str | None = None, poll_interval: float = 2.0
    ) -> None:
        self.publish = publish
        self.name = name
        self.pinned = version
        self.poll_interval = poll_interval
        self._current: Deployed | None = None
        self._stop = threading.Event()
        self._failed: tuple[tuple[str, str], float] | None = None
        self.last_check_at: str | None = None
        self.last_error: str | None = None
        self.production_version: str | None = None
        self.swaps = 0

    @property
    def current(self) -> Deployed:
        current = self._current
        assert current is not None, "start() loads the first model"
        return current

    def start(self) -> Deployed:
        """Load the first model (production, or the pinned version); errors are fatal here."""
        publish, name = self.publish, self.name
        registry.require_model(publish, name)
        if self.pinned is not None:
            version = registry.resolve_version(publish, name, self.pinned)
            self.pinned = version
            loaded = registry.load_version(publish, name, version)
            pointer = None
        else:
            pointer = registry.production(publish, name)
            version = registry.production_version(publish, name)
            assert pointer is not None
            loaded = registry.load_version(
                publish, name, version, expected_sha256=pointer.get("model_sha256")
            )
            self.production_version = version
        self._warm_up(loaded)
        self._current = Deployed(loaded, _now(), pointer)
        self.last_check_at = _now()
        return self._current

    def _warm_up(self, loaded: registry.LoadedVersion) -> None:
        """Score the version's own input example: a model that cannot is not served."""
        if loaded.example:
            scoring.predict_rows(loaded, {"rows": loaded.example})

    def _problem(self, message: str) -> None:
        if message != self.last_error:
            _log(f"{self.name}: {message}")
        self.last_error = message

    def poll(self) -> bool:
        """Check the pointer once; load and swap in a new production version. True if swapped."""
        self.last_check_at = _now()
        current = self.current
        try:
            pointer = registry.production(self.publish, self.name)
        except StorageError as exc:
            self._problem(f"{exc}; still serving version {current.version}")
            return False
        if pointer is None:
            self._problem(
                f"the production pointer is gone; still serving version {current.version}"
            )
            return False
        version = str(pointer["version"])
        self.production_version = version
        if version == current.version:
            if self.last_error is not None:
                _log(f"{self.name}: production is version {version} again; all is well")
            self.last_error, self._failed = None, None
            return False
        key = (version, str(pointer.get("promotion_id") or pointer.get("updated_at")))
        if self._failed and self._failed[0] == key and time.monotonic() < self._failed[1]:
            return False
        try:
            loaded = registry.load_version(
                self.publish, self.name, version, expected_sha256=pointer.get("model_sha256")
            )
            self._warm_up(loaded)
        except Exception as exc:  # any failure keeps the running model; MlcdErrors say why
            reason = str(exc) if isinstance(exc, MlcdError) else f"{type(exc).__name__}: {exc}"
            self._failed = (key, time.monotonic() + RETRY_AFTER)
            self._problem(
                f"cannot switch to version {version}: {reason}; still serving version "
                f"{current.version}"
            )
            return False
        # The swap: one reference assignment. Requests that already read the old reference
        # finish with the old model; the next ones get the new.
        self._current = Deployed(loaded, _now(), pointer)
        self._failed, self.last_error = None, None
        self.swaps += 1
        who = pointer.get("user") or pointer.get("actor") or "?"
        _log(
            f"{self.name}: now serving version {version} (was {current.version}; "
            f"{pointer.get('action', 'promoted')} by {who}: {pointer.get('reason', '')})"
        )
        return True

    def run(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.poll()
            except Exception:  # the watcher must outlive any surprise; the model stays
                _log(f"{self.name}: unexpected error while checking production:")
                traceback.print_exc()

    def stop(self) -> None:
        self._stop.set()

    def health(self) -> dict[str, Any]:
        current = self.current
        return {
            "status": "degraded" if self.last_error else "ok",
            "model": self.name,
            "version": current.version,
            "production_version": self.production_version,
            "pinned": self.pinned is not None,
            "last_check_at": self.last_check_at,
            "error": self.last_error,
            "swaps": self.swaps,
        }


class Shadow:
    """A second version scoring, off the request path, the rows production answered.

    The handler hands over a request's rows and production's predictions (``submit`` never
    waits: when SHADOW_QUEUE requests are waiting the request is not shadowed, and counted); a
    thread scores them with the shadow version, counts agreement, and records both in the
    prediction log. Its errors are counted and shown on /health, never sent to a client."""

    def __init__(self, loaded: registry.LoadedVersion, log: predlog.PredictionLog | None) -> None:
        self.loaded = loaded
        self.log = log
        self._queue: queue.Queue[tuple[list[Any], list[Any], str, str] | None] = queue.Queue(
            SHADOW_QUEUE
        )
        self._lock = threading.Lock()
        self.requests = 0
        self.rows = 0
        self.agreed = 0
        self.errors = 0
        self.skipped_requests = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="mlcd-shadow", daemon=True)
        self._thread.start()

    @property
    def version(self) -> str:
        return self.loaded.version

    def submit(self, rows: list[Any], predictions: list[Any], version: str, request: str) -> bool:
        try:
            self._queue.put_nowait((rows, predictions, version, request))
            return True
        except queue.Full:
            with self._lock:
                self.skipped_requests += 1
            return False

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._score(*item)
            except Exception:  # the thread must outlive any surprise; counted on /health
                _log("unexpected error in the shadow:")
                traceback.print_exc()

    def _score(self, rows: list[Any], predictions: list[Any], version: str, request: str) -> None:
        try:
            shadow = scoring.predictions_only(self.loaded, rows)
            agrees: list[bool | None] = list(predlog.agreement(predictions, shadow))
            problem = None
        except Exception as exc:  # a shadow that cannot score these rows: counted, not raised
            problem = str(exc) if isinstance(exc, MlcdError) else f"{type(exc).__name__}: {exc}"
            shadow, agrees = [None] * len(rows), [None] * len(rows)
        if self.log is not None:  # logged before it is counted: /health never runs ahead
            result = predlog.ShadowResult(self.version, shadow, agrees)
            self.log.record(
                rows,
                predictions,
                version=version,
                source="serve",
                request_id=request,
                shadow=result,
            )
        with self._lock:
            first = problem is not None and self.errors == 0
            self.requests += 1
            if problem is None:
                self.rows += len(rows)
                self.agreed += sum(1 for a in agrees if a)
            else:
                self.errors += 1
                self.last_error = problem
        if first:
            _log(
                f"shadow version {self.version} failed on a request (counted on /health): {problem}"
            )

    def stop(self, timeout: float = DRAIN_SECONDS) -> None:
        """Score what is queued (up to ``timeout``), then stop."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def health(self) -> dict[str, Any]:
        with self._lock:
            return {
                "version": self.version,
                "requests": self.requests,
                "rows": self.rows,
                "agreed_rows": self.agreed,
                "agreement": round(self.agreed / self.rows, 6) if self.rows else None,
                "errors": self.errors,
                "not_shadowed_requests": self.skipped_requests,
                "last_error": self.last_error,
            }


def load_shadow(publish: str, name: str, text: str) -> registry.LoadedVersion:
    """The ``--shadow`` version, verified, loaded and tried on its input example; one line
    naming the version when it cannot be."""
    try:
        version = registry.resolve_version(publish, name, text)
        loaded = registry.load_version(publish, name, version)
        if loaded.example:
            scoring.predict_rows(loaded, {"rows": loaded.example})
    except MlcdError as exc:
        exc.args = (f"--shadow {text}: {exc}",)
        raise
    return loaded


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections do not hold up the exit
    block_on_close = False  # in-flight requests are drained by serve() instead
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        watcher: ModelWatcher,
        access_log: bool,
        log: predlog.PredictionLog | None = None,
        shadow: Shadow | None = None,
    ):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.watcher = watcher
        self.log = log
        self.shadow = shadow
        self.access_log = access_log
        self._active = 0
        self._active_lock = threading.Lock()
        self.stopping = False  # set at shutdown: answers close their keep-alive connection

    @contextlib.contextmanager
    def tracked(self) -> Iterator[None]:
        with self._active_lock:
            self._active += 1
        try:
            yield
        finally:
            with self._active_lock:
                self._active -= 1

    @property
    def active(self) -> int:
        return self._active

    def health(self) -> dict[str, Any]:
        out = self.watcher.health()
        log = self.log.stats() if self.log is not None else None
        out["prediction_log"] = log
        out["shadow"] = self.shadow.health() if self.shadow is not None else None
        if log is not None and log["error"] and out["status"] == "ok":
            out["status"] = "degraded"
        return out

    def record(self, rows: list[Any], answer: dict[str, Any], version: str, request: str) -> None:
        """After the answer is sent: the shadow's queue, or straight to the log."""
        predictions = answer["predictions"]
        if self.shadow is not None and self.shadow.submit(rows, predictions, version, request):
            return
        if self.log is not None:
            self.log.record(rows, predictions, version=version, source="serve", request_id=request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return  # the client went away
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: a client reuses its connection
    server_version = "mlcd-serve"
    timeout = 60  # an idle keep-alive connection is closed after this many seconds
    # Headers and body leave in two writes; with Nagle's algorithm the second waits for the
    # client's delayed ACK (40 ms on Linux), measured on every request before this was set.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.access_log:
            super().log_message(format, *args)

    def _json(
        self, status: int, obj: Any, headers: dict[str, str] | None = None, close: bool = False
    ) -> None:
        body = json.dumps(obj, allow_nan=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if close or self.server.stopping:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, **extra: Any) -> None:
        self._json(status, {"error": message, **extra})

    def _route(self) -> str:
        return urlsplit(self.path).path.rstrip("/") or "/"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        with self.server.tracked():
            path = self._route()
            watcher = self.server.watcher
            if path == "/health":
                self._json(200, self.server.health())
            elif path == "/version":
                described = watcher.current.describe()
                shadow = self.server.shadow
                if shadow is not None:
                    manifest = shadow.loaded.manifest
                    described["shadow"] = {
                        **shadow.health(),
                        "created_at": manifest.get("created_at"),
                        "estimator": registry.estimator_of(manifest)[0],
                        "model_sha256": shadow.loaded.model_sha256,
                    }
                else:
                    described["shadow"] = None
                self._json(200, described)
            elif path == "/predict":
                self._json(405, {"error": "use POST /predict"}, {"Allow": "POST"})
            else:
                self._error(404, f"no {path}: {ROUTES}")

    def do_POST(self) -> None:  # noqa: N802
        with self.server.tracked():
            path = self._route()
            if path in ("/health", "/version"):
                self._json(405, {"error": f"use GET {path}"}, {"Allow": "GET"})
                return
            if path != "/predict":
                self._error(404, f"no {path}: {ROUTES}")
                return
            # This request's model, read once: a swap during the request does not affect it.
            deployed = self.server.watcher.current
            body = self._body()
            if body is None:
                return
            try:
                payload = json.loads(body)
            except (UnicodeDecodeError, ValueError) as exc:
                self._error(400, f"the body is not valid JSON ({exc}); {scoring.BODY_HELP}")
                return
            try:
                answer = scoring.predict_rows(deployed.loaded, payload)
            except MlcdError as exc:
                self._error(400, str(exc), kind=exc.kind, version=deployed.version)
                return
            except Exception:
                _log("internal error while predicting:")
                traceback.print_exc()
                self._error(500, "internal error while predicting (see the service's log)")
                return
            request = uuid.uuid4().hex
            self._json(200, answer, {"X-Mlcd-Request": request})
            try:
                self.server.record(payload["rows"], answer, deployed.version, request)
            except Exception:  # the answer is sent; logging must never fail a request
                _log("internal error while logging a request:")
                traceback.print_exc()

    def _body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._json(411, {"error": "send the body with a Content-Length"}, close=True)
            return None
        length = self.headers.get("Content-Length")
        if length is None:
            self._json(411, {"error": "send the body with a Content-Length"}, close=True)
            return None
        try:
            size = int(length)
            if size < 0:
                raise ValueError(length)
        except ValueError:
            self._json(400, {"error": f"bad Content-Length {length!r}"}, close=True)
            return None
        if size > MAX_BODY:
            self._json(
                413,
                {"error": f"the body is {size} bytes; the limit is {MAX_BODY}: send fewer rows"},
                close=True,
            )
            return None
        body = self.rfile.read(size)
        if len(body) < size:
            self.close_connection = True
            return None
        return body


def serve(
    publish: str,
    name: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    version: str | None = None,
    poll_interval: float = 2.0,
    access_log: bool = False,
    prediction_log: str | None = None,
    log_sample_rate: str | float = 1.0,
    log_flush_seconds: float = 5.0,
    shadow: str | None = None,
) -> int:
    """Run the service until SIGTERM or SIGINT; then finish the requests in flight and write
    what the prediction log holds. ``prediction_log``: a location, ``off``, or None for the
    model's default location."""
    if poll_interval <= 0:
        raise UsageError(f"--poll-interval must be more than 0 seconds (got {poll_interval:g})")
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be 0-65535 (got {port}); 0 picks a free port")
    rate = predlog.check_sample_rate(log_sample_rate)
    if log_flush_seconds <= 0:
        raise UsageError(f"--log-flush-seconds must be more than 0 (got {log_flush_seconds:g})")
    location = None
    if prediction_log != predlog.OFF:
        registry.require_model(publish, name)
        location = predlog.check_location(prediction_log or predlog.default_location(publish, name))
    watcher = ModelWatcher(publish, name, version=version, poll_interval=poll_interval)
    first = watcher.start()
    shadow_version = load_shadow(publish, name, shadow) if shadow is not None else None
    if shadow_version is not None and shadow_version.version == first.version:
        raise UsageError(
            f"--shadow {shadow}: version {first.version} is the one being served; shadow another"
        )
    log = None
    if location is not None:
        log = predlog.PredictionLog(
            location,
            sample_rate=rate,
            flush_seconds=log_flush_seconds,
            report=lambda line: _log(line.removeprefix("mlcd: ")),
        )
    runner = Shadow(shadow_version, log) if shadow_version is not None else None
    try:
        server = _Server((host, port), watcher, access_log, log, runner)
    except OSError as exc:
        if runner is not None:
            runner.stop()
        if log is not None:
            log.close()
        raise UsageError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port "
            "(0 picks a free one), or stop the process holding it"
        ) from None
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    threads = [threading.Thread(target=server.serve_forever, name="mlcd-http", daemon=True)]
    if watcher.pinned is None:
        threads.append(threading.Thread(target=watcher.run, name="mlcd-watch", daemon=True))
    for thread in threads:
        thread.start()
    bound = server.server_address[1]
    follows = (
        f"pinned to version {watcher.pinned}"
        if watcher.pinned
        else f"following production, checked every {poll_interval:g}s"
    )
    extras = "".join(
        [
            f"; shadow version {runner.version}" if runner is not None else "",
            f"; logging to {log.location}" + (f" (sample {rate:g})" if rate < 1 else "")
            if log is not None
            else "; prediction log off",
        ]
    )
    print(
        f"mlcd serve: model {name} version {first.version} on {url(host, bound)} "
        f"(POST /predict, GET /health, GET /version; {follows}{extras})",
        flush=True,
    )
    if not is_loopback(host):
        _log(
            f"warning: listening on {host}, not loopback: the service has no authentication "
            "or TLS; expose it only behind a proxy that adds them"
        )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        _log("stopping: no new connections; finishing the requests in flight")
        watcher.stop()
        server.stopping = True
        server.shutdown()
        deadline = time.monotonic() + DRAIN_SECONDS
        while server.active and time.monotonic() < deadline:
            time.sleep(0.02)
        server.server_close()
        if runner is not None:
            runner.stop()
        if log is not None:
            log.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _log("stopped")
    return 0
