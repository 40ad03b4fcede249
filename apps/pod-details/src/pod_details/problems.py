"""Errors as RFC 9457 problem details (application/problem+json), for every status the service can return.

An unexpected exception is logged with its traceback and the request id, and answered with a generic 500 that
names only the request id: stack traces and exception text can carry internals and stay in the logs.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from pod_details.instrumentation import REQUEST_ID

MEDIA_TYPE = "application/problem+json"

log = logging.getLogger(__name__)


def document(status: int, detail: str, instance: str | None, request_id: str | None) -> bytes:
    """The problem as JSON; `instance` (the request's path) and `request_id` are left out when unknown."""
    body: dict[str, object] = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status}
    body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    if request_id:
        body["request_id"] = request_id
    return json.dumps(body, separators=(",", ":")).encode()


def problem(status: int, detail: str) -> Response:
    body = document(status, detail, request.path, request.environ.get(REQUEST_ID))
    return Response(body, status=status, content_type=MEDIA_TYPE)


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        response = problem(status, exc.description or HTTPStatus(status).description)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.error(
            "unhandled exception",
            exc_info=exc,
            extra={"fields": {"request_id": request.environ.get(REQUEST_ID), "path": request.path[:256]}},
        )
        return problem(500, "The server failed to handle the request; the request id identifies it in the logs.")
