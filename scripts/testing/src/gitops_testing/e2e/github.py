"""GitHub's REST API for the one call the loop makes to it: ``POST /repos/{owner}/{repo}/dispatches``.

Argo CD notifications send ``dev-healthy`` there (``clusters/aks-dev/argocd-values.yaml``) and GitHub turns it into
the ``repository_dispatch`` event that starts the promote workflow. GitHub is out of reach here, so the e2e answers
in its place, and answers as GitHub would, checking the request against GitHub's own published description of the
call (``schemas/github-repos-create-dispatch-event.json``, vendored from github/rest-api-description, which GitHub
keeps "up to date with the description used to validate GitHub API requests"):

- the route: POST, ``/repos/{owner}/{repo}/dispatches``, for the one repository it serves (owner and name are not
  case sensitive); anything else is 404 Not Found;
- the request headers GitHub enforces: a ``User-Agent`` (403 without), the token (401 Bad credentials), and an
  ``X-GitHub-Api-Version`` the description is published for (400 otherwise);
- the body: JSON (400 Problems parsing JSON), valid against the published schema (422 with the reasons), and a
  ``client_payload`` under 64 KB.

An accepted dispatch is answered 204 No Content and recorded with its arrival time; refusals are recorded too, so a
run can show what Argo CD sent that GitHub would have refused. The ``Content-Type`` is recorded, not enforced: GitHub
reads the body as JSON whatever it says, and Argo CD's webhook service sends none unless configured to.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

log = logging.getLogger(__name__)

API_VERSION = "2022-11-28"  # the version the vendored schema is published for; GitHub's default when none is sent
SCHEMA = Path(__file__).resolve().parent / "schemas" / "github-repos-create-dispatch-event.json"
ROUTE = re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/dispatches$")
MAX_PAYLOAD = 64 * 1024
DOCS = "https://docs.github.com/rest/repos/repos#create-a-repository-dispatch-event"
GIT_SUFFIX = re.compile(r"\.git$")
NO_USER_AGENT = "Request forbidden by administrative rules. Please make sure your request has a User-Agent header"


def full_name(repo_url: str) -> str:
    """``owner/name`` of a repository URL: the first two path segments without ``.git`` — how GitHub names a
    repository in its API, and what Argo CD's ``repo.FullNameByRepoURL`` (which the dispatch template calls) returns."""
    parts = [p for p in GIT_SUFFIX.sub("", urlparse(repo_url).path).split("/") if p]
    return "/".join(parts[:2])


@cache
def request_validator():
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@dataclass(frozen=True)
class Dispatch:
    """A dispatch GitHub would have accepted: it starts the workflows that listen for ``event_type``."""

    repository: str  # owner/name as requested
    event_type: str
    client_payload: dict
    received: float  # time.time() of its arrival
    headers: dict[str, str]


@dataclass(frozen=True)
class Refusal:
    method: str
    path: str
    status: int
    message: str


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict | None = None


@dataclass
class GitHubAPI:
    """Serves ``repository`` (``owner/name``) to callers presenting one of ``authorizations`` (whole header values:
    what each cluster's notifications service sends with its token filled in)."""

    repository: str
    authorizations: set[str] = field(default_factory=set)
    _dispatches: list[Dispatch] = field(default_factory=list)
    _refusals: list[Refusal] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # -- what GitHub answers ---------------------------------------------------------------------------------------

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        """GitHub's answer to one request; an accepted dispatch is recorded."""
        headers = {k.lower(): v for k, v in headers.items()}
        route = ROUTE.match(urlparse(path).path)
        if method != "POST" or route is None:
            return self._refuse(method, path, 404, "Not Found")
        if not headers.get("user-agent"):
            return self._refuse(method, path, 403, NO_USER_AGENT)
        if headers.get("authorization") not in self.authorizations:
            return self._refuse(method, path, 401, "Bad credentials")
        version = headers.get("x-github-api-version", API_VERSION)
        if version != API_VERSION:
            message = f"API version {version!r} is not supported here: requests are validated as {API_VERSION}"
            return self._refuse(method, path, 400, message)
        repository = f"{route['owner']}/{route['repo']}"
        if repository.lower() != self.repository.lower():
            return self._refuse(method, path, 404, "Not Found")
        try:
            data = json.loads(body or b"null")
        except ValueError:
            return self._refuse(method, path, 400, "Problems parsing JSON")
        errors = sorted(request_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
        problems = [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}" for e in errors]
        if not errors and len(json.dumps(data.get("client_payload") or {})) >= MAX_PAYLOAD:
            problems.append("client_payload: the total size of the JSON payload must be less than 64KB")
        if problems:
            return self._refuse(method, path, 422, "Invalid request.\n\n" + "\n".join(problems))
        dispatch = Dispatch(repository, data["event_type"], data.get("client_payload") or {}, time.time(), headers)
        with self._lock:
            self._dispatches.append(dispatch)
        return Answer(204)

    def _refuse(self, method: str, path: str, status: int, message: str) -> Answer:
        with self._lock:
            self._refusals.append(Refusal(method, path, status, message))
        return Answer(status, {"message": message, "documentation_url": DOCS, "status": str(status)})

    def dispatches(self, event_type: str | None = None) -> list[Dispatch]:
        with self._lock:
            return [d for d in self._dispatches if event_type is None or d.event_type == event_type]

    def refusals(self) -> list[Refusal]:
        with self._lock:
            return list(self._refusals)

    # -- over HTTP -------------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="e2e-standin-github", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        if self._thread is not None and self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._server = None


def _handler(api: GitHubAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args) -> None:
            log.debug("github stand-in: " + format, *args)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            reply = api.answer(self.command, self.path, dict(self.headers.items()), body)
            data = json.dumps(reply.body).encode() if reply.body is not None else b""
            self.send_response(reply.status)
            if data:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    return Handler
