"""Security headers on every response, and the request body limit.

The API serves JSON to programs, never HTML to browsers, so the strictest policies cost nothing: no content may load,
no page may frame it, nothing is sniffed, no referrer leaks, and nothing is cached — every answer is live state.
The headers are added as WSGI middleware, to the plain header list, so they also reach responses produced outside
Flask's view functions and cost a list extend per request.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge

from pod_details.instrumentation import StartResponse, WsgiApp

HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
)


class SecurityHeaders:
    def __init__(self, app: WsgiApp) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers.extend(HEADERS)
            return start_response(status, headers, exc_info)

        return self._app(environ, start)


def init_app(app: Flask, max_content_length: int) -> None:
    # Flask enforces this when a body is read; no endpoint reads one, so the hook below refuses an oversized body
    # up front from its Content-Length, whatever the path or method (413 before 404/405).
    app.config["MAX_CONTENT_LENGTH"] = max_content_length

    @app.before_request
    def _limit_body() -> None:
        length = request.content_length
        if length is not None and length > max_content_length:
            raise RequestEntityTooLarge(
                f"The request body is {length} bytes; at most {max_content_length} are accepted."
            )

    app.wsgi_app = SecurityHeaders(app.wsgi_app)  # type: ignore[method-assign]
