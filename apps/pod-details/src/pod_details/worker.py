"""gunicorn's threaded worker, with gunicorn's own error answers as problem details like the app's.

gunicorn answers some requests itself, before the app sees them: a request line or header it cannot parse (400), a
request line over `limit_request_line` (414), more header fields than `limit_request_fields` or one longer than
`limit_request_field_size` (431). Its worker's `handle_error` picks the status and `gunicorn.util.write_error`
writes a small HTML page to the client's socket. That function is gunicorn's only way out, so this worker hands
`handle_error` the socket wrapped: the wrapper reads the status gunicorn chose from the status line and sends an
RFC 9457 problem with that status instead, with the security headers and a request id. The status stays
gunicorn's decision, and nothing the client sent is echoed back.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from gunicorn.workers.gthread import ThreadWorker as _GunicornThreadWorker

from pod_details import problems, security
from pod_details.instrumentation import REQUEST_ID_HEADER, request_id_from


class ThreadWorker(_GunicornThreadWorker):
    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        super().handle_error(req, ProblemSocket(client, self._details(), getattr(req, "path", None)), addr, exc)

    def _details(self) -> dict[int, str]:
        cfg = self.cfg
        return {
            400: "The request line or a header field could not be parsed.",
            414: f"The request line is longer than {cfg.limit_request_line} bytes.",
            431: f"The request has more than {cfg.limit_request_fields} header fields, or one longer than "
            f"{cfg.limit_request_field_size} bytes.",
            500: "The server failed to handle the request.",
        }


class ProblemSocket:
    """A client socket on which the one error page gunicorn writes becomes a problem+json response."""

    def __init__(self, sock: Any, details: dict[int, str], path: str | None) -> None:
        self._sock = sock
        self._details = details
        self._path = path

    def sendall(self, data: bytes) -> None:
        status = int(data.split(b" ", 2)[1])  # "HTTP/1.1 431 Request Header Fields Too Large\r\n…"
        detail = self._details.get(status) or HTTPStatus(status).description
        body = problems.document(status, detail, self._path, None)
        headers = [
            ("Content-Type", problems.MEDIA_TYPE),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
            (REQUEST_ID_HEADER, request_id_from(None)),
            *security.HEADERS,
        ]
        head = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers)
        self._sock.sendall(head.encode("latin-1") + b"\r\n" + body)

    def __getattr__(self, name: str) -> Any:  # gettimeout, setblocking, …: the real socket's
        return getattr(self._sock, name)
