"""The HTTP endpoint: /metrics (Prometheus text format) and /healthz, in a thread of its own.

/healthz answers 200 `ok` only while frames are processed (one within
`metrics.healthy_frame_age` seconds) and the event broker connection is up; else 503 and why.
A daemon whose inspection is paused (the `pause` command) is never healthy: it inspects nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from edge.errors import ConfigError
from edge.observe.metrics_collector import DaemonCollector
from edge.observe.metrics_config import MetricsConfig

log = logging.getLogger(__name__)


def health(daemon, healthy_frame_age: float) -> tuple[bool, str]:
    if daemon.pause.active:
        return False, f"inspection {daemon.pause.describe()}"
    last = daemon.stats.last_frame_at
    if last is None:
        return False, "no frame processed yet"
    age = time.monotonic() - last
    if age > healthy_frame_age:
        return False, f"no frame processed for {age:.0f} s"
    if not daemon.mqtt.ready.is_set():
        return False, f"broker {daemon.mqtt.state}"
    return True, "ok"


class MetricsServer:
    def __init__(self, config: MetricsConfig, daemon) -> None:
        self.config = config
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(DaemonCollector(daemon))
        handler = _handler(self.registry, lambda: health(daemon, config.healthy_frame_age))
        try:
            self._server = ThreadingHTTPServer(config.address, handler)
        except OSError as exc:
            raise ConfigError(f"metrics.listen: cannot listen on {config.listen}: "
                              f"{exc.strerror}") from None
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={
            "poll_interval": 0.5}, name="metrics-http", daemon=True)
        self._thread.start()
        log.info("metrics on http://%s/metrics, health on /healthz", self.config.listen)

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()


def _handler(registry, check):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok, reason = check()
                self._send(200 if ok else 503, (reason + "\n").encode(), "text/plain")
            else:
                self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args) -> None:  # noqa: A002
            log.debug("metrics http: " + format, *args)

    return Handler
