"""The node's HTTP endpoint (`--http HOST:PORT`), for load balancers, keepalived, Ansible's `uri` and
Prometheus, with Patroni's meanings:

- `GET /health`: 200 while the node runs its role; 503, with the reason, when it has stopped (a
  divergence), refuses to run (another genesis) or is shutting down.
- `GET /primary`: 200 only on the master (the role the core holds now, not the last status round).
- `GET /replica`: 200 only on a follower whose log is at most `lag` events (the query's `?lag=N`, else
  the node's `replica_max_lag`) behind what it knows to be committed.
- `GET /metrics`: Prometheus' text format (seguro.node.metrics).

Every answer is JSON except /metrics. The decisions are pure functions of a `Probe`; the server is a
thread of Python's ThreadingHTTPServer bound once at start.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

JSON = "application/json"


@dataclass(frozen=True)
class Probe:
    """What the endpoints decide on, read from the driver at request time."""

    role: str
    epoch: int
    durable_event: int
    committed_event: int
    error: str = ""
    stopping: bool = False

    @property
    def lag(self) -> int:
        return max(0, self.committed_event - self.durable_event)


Answer = tuple[int, str, bytes]  # status, content type, body


def answer(path: str, probe: Probe, replica_max_lag: int) -> Answer:
    """The answer to GET `path` (with its query) for a node in state `probe` (/metrics is the server's)."""
    url = urlsplit(path)
    body = {**asdict(probe), "lag": probe.lag}
    if url.path == "/health":
        down = probe.stopping or probe.role in ("stopped", "halted")
        reason = "shutting down" if probe.stopping else probe.error or probe.role
        return _json(503 if down else 200, {**body, "reason": reason} if down else body)
    if url.path == "/primary":
        return _json(200 if probe.role == "master" and not probe.stopping else 503, body)
    if url.path == "/replica":
        try:
            bound = int(parse_qs(url.query).get("lag", [replica_max_lag])[0])
        except ValueError:
            return _json(400, {"error": "lag must be a whole number of events"})
        ok = probe.role == "follower" and probe.lag <= bound and not probe.stopping
        return _json(200 if ok else 503, {**body, "max_lag": bound})
    return _json(404, {"error": f"no such endpoint: {url.path} (/health, /primary, /replica, /metrics)"})


def _json(status: int, body: dict[str, object]) -> Answer:
    return status, JSON, json.dumps(body, sort_keys=True).encode()


class HttpEndpoint:
    """The server: `probe` and `metrics` are called on each request, on the server's threads."""

    def __init__(
        self, hostport: tuple[str, int], probe: Callable[[], Probe], metrics: Callable[[], bytes],
        replica_max_lag: int, metrics_type: str,
    ) -> None:  # fmt: skip
        self.replica_max_lag = replica_max_lag  # `seguro reload` may change it
        handler = _handler(probe, metrics, lambda: self.replica_max_lag, metrics_type)
        self._server = ThreadingHTTPServer(hostport, handler)
        self._server.daemon_threads = True
        self.address = "{}:{}".format(*self._server.server_address[:2])
        self._thread = threading.Thread(target=self._server.serve_forever, name="seguro-http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(
    probe: Callable[[], Probe], metrics: Callable[[], bytes], max_lag: Callable[[], int], metrics_type: str
) -> type:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            try:
                if urlsplit(self.path).path == "/metrics":
                    status, kind, body = 200, metrics_type, metrics()
                else:
                    status, kind, body = answer(self.path, probe(), max_lag())
            except Exception as e:  # an endpoint must answer, never hang a load balancer's check
                log.exception("http endpoint failed", extra={"path": self.path[:200]})
                status, kind, body = _json(500, {"error": type(e).__name__})
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args: object) -> None:  # checks every second: not worth a log line
            log.debug("http " + fmt, *args)

    return Handler
