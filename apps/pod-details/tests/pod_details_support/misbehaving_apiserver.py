"""A stand-in for an apiserver that misbehaves in ways a real kube-apiserver cannot be made to, on demand.

Everything a real apiserver can do is tested against one (see live_cluster.py): reading the pod, 401 for a bad
token, 403 when the RoleBinding is gone, 404 for a missing pod, TLS with the cluster CA, connection refused when it is
stopped. This server covers only what is left:

- answering late, or never (`delay_seconds`): a real apiserver answers a GET in milliseconds and has no switch to
  hold one; the read-timeout bound and requests in flight across SIGTERM need an answer that takes seconds;
- answering 5xx (`fail_status`): a real apiserver returns 5xx only when its storage fails, and then only after its
  own etcd timeouts, which are neither quick nor predictable;
- showing the headers of each request it got (`headers`), such as the trace context a client sends on.

It speaks plain HTTP on loopback to a kubeconfig (`kubeconfig()`), and answers every GET with `pod`, or the failure.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def pod_object(name: str = "web-7d9c-abcde", namespace: str = "shop") -> dict[str, Any]:
    """A Pod as the apiserver returns it, with more fields than the service reports."""
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": "0b1c2d3e-0000-4000-8000-000000000001",
            "labels": {"app.kubernetes.io/name": "pod-details", "pod-template-hash": "7d9c"},
            "annotations": {"secret-ish": "must not leak"},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9c", "uid": "u", "controller": True}
            ],
        },
        "spec": {
            "nodeName": "node-a",
            "serviceAccountName": "pod-details",
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example/pod-details:1.0",
                    "env": [{"name": "PASSWORD", "value": "x"}],
                },
                {"name": "sidecar", "image": "registry.example/sidecar:2.0"},
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": "10.1.2.3",
            "startTime": "2026-01-02T03:04:05Z",
            "containerStatuses": [
                {"name": "app", "ready": True, "restartCount": 0},
                {"name": "sidecar", "ready": False, "restartCount": 3},
            ],
        },
    }


@dataclass
class MisbehavingApiserver:
    url: str
    pod: dict[str, Any] = field(default_factory=pod_object)
    # Set to answer every request with this status and a Status object, instead of the pod.
    fail_status: int | None = None
    # How long each answer takes; float("inf") never answers.
    delay_seconds: float = 0.0
    calls: int = 0
    headers: list[dict[str, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def kubeconfig(self, directory: Path) -> Path:
        """A kubeconfig file pointing at this server with a bearer token (JSON is valid YAML)."""
        path = directory / "misbehaving.kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "misbehaving", "cluster": {"server": self.url}}],
                    "users": [{"name": "misbehaving", "user": {"token": "unchecked"}}],
                    "contexts": [{"name": "misbehaving", "context": {"cluster": "misbehaving", "user": "misbehaving"}}],
                    "current-context": "misbehaving",
                }
            )
        )
        return path


@contextmanager
def running(host: str = "127.0.0.1") -> Iterator[MisbehavingApiserver]:
    """Serve on a free port until the block ends; requests held by `delay_seconds` are let go then."""
    state: MisbehavingApiserver

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            state.calls += 1
            state.headers.append(dict(self.headers.items()))
            if state.delay_seconds:
                state._stop.wait(state.delay_seconds if state.delay_seconds != float("inf") else None)
                if state._stop.is_set():
                    return
            if state.fail_status is not None:
                return self._send(state.fail_status, _status(state.fail_status, "injected failure"))
            return self._send(200, state.pod)

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up (timeout tests)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # clients that gave up are what some tests are about

    server = Server((host, 0), Handler)
    state = MisbehavingApiserver(url=f"http://{host}:{server.server_address[1]}")
    with serving(server, "misbehaving-apiserver"):
        try:
            yield state
        finally:
            state._stop.set()


@contextmanager
def serving(server: ThreadingHTTPServer, name: str) -> Iterator[None]:
    """Serve on a thread of this process for the duration of the block; then stop and close the server."""
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), name=name, daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def _status(code: int, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}
