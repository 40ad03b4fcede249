"""Per-request instrumentation: request id, trace context, one JSON log line and the request metrics.

It wraps the Flask app as WSGI middleware rather than as before/after-request hooks: the timing then covers all of
Flask's own work, a failure anywhere is still logged and counted, and the per-request cost stays small (no Headers
object rebuilding, no stack walk to find the logging call site).

X-Request-ID is taken from the client (or a proxy) when it looks like an id — at most 128 characters from a safe set,
so it cannot inject into logs or headers — and generated otherwise; either way it is echoed on the response. A W3C
`traceparent` header is validated and its trace and parent ids are logged, tying this line to the caller's trace;
with tracing on (tracing.py), the line carries the trace id and the request's own span id instead.
The route label is the matched URL rule's template, recorded by a hook once Flask has routed the request.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, request

from pod_details.logs import AccessLog
from pod_details.metrics import METHODS, UNMATCHED, Metrics
from pod_details.tracing import TRACE

REQUEST_ID_HEADER = "X-Request-ID"
# WSGI environ keys this module shares with the rest of the app.
REQUEST_ID = "pod_details.request_id"
ROUTE = "pod_details.route"
# Marks the app's own warm-up requests (app.warm_up), which are not client traffic.
WARM_UP = "pod_details.warm_up"

_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+=/-]{0,127}")
# version-traceid-parentid-flags; version ff and all-zero ids are invalid per the W3C Trace Context spec.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_MAX_LOGGED_PATH = 256

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def request_id_from(header: str | None) -> str:
    """The caller's id when it is acceptable, else a new one.

    New ids need to be unique, not unpredictable, so they come from `random` (gunicorn reseeds it in every worker)
    rather than os.urandom, which is a system call per request.
    """
    if header and _REQUEST_ID.fullmatch(header):
        return header
    return f"{random.getrandbits(128):032x}"


def parse_traceparent(header: str | None) -> tuple[str, str] | None:
    """(trace_id, parent_id) of a valid traceparent header, else None."""
    if not header:
        return None
    match = _TRACEPARENT.fullmatch(header.strip())
    if not match:
        return None
    version, trace_id, parent_id, _flags = match.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return trace_id, parent_id


class Instrumentation:
    """WSGI middleware: assigns the request id, then times, counts and logs the request."""

    def __init__(self, app: WsgiApp, metrics: Metrics, access_log: AccessLog) -> None:
        self._app = app
        self._metrics = metrics
        self._access_log = access_log

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        request_id = environ[REQUEST_ID] = request_id_from(environ.get("HTTP_X_REQUEST_ID"))
        status: list[str] = []

        def start(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(code)
            headers.append((REQUEST_ID_HEADER, request_id))
            return start_response(code, headers, exc_info)

        try:
            return self._app(environ, start)
        finally:
            if WARM_UP not in environ:
                # No status means the app raised (only possible when Flask propagates exceptions, as in tests).
                code = int(status[0][:3]) if status else 500
                self._observe(environ, code, time.perf_counter() - started, request_id)

    def _observe(self, environ: dict[str, Any], status: int, elapsed: float, request_id: str) -> None:
        method = environ.get("REQUEST_METHOD", "")
        method = method if method in METHODS else "OTHER"
        route = environ.get(ROUTE, UNMATCHED)
        self._metrics.observe_request(method, route, status, elapsed)
        if not self._access_log.enabled:
            return
        fields = {
            "method": method,
            "route": route,
            "path": environ.get("PATH_INFO", "")[:_MAX_LOGGED_PATH],
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
            "request_id": request_id,
            "remote_addr": environ.get("REMOTE_ADDR"),
        }
        span = environ.get(TRACE)
        if span:  # tracing is on: this request's own span
            fields["trace_id"], fields["span_id"] = span
        else:
            trace = parse_traceparent(environ.get("HTTP_TRACEPARENT"))
            if trace:
                fields["trace_id"], fields["parent_id"] = trace
        self._access_log.write(fields)


def init_app(app: Flask, metrics: Metrics, access_log: AccessLog | None = None) -> None:
    @app.before_request
    def _record_route() -> None:
        rule = request.url_rule
        if rule is not None:
            request.environ[ROUTE] = rule.rule

    access_log = access_log or AccessLog()
    app.extensions["pod_details.access_log"] = access_log
    app.wsgi_app = Instrumentation(app.wsgi_app, metrics, access_log)  # type: ignore[method-assign]


def request_id() -> str | None:
    """The current request's id (inside a request context)."""
    return request.environ.get(REQUEST_ID)
