"""A stand-in for the apiserver's pod endpoint, over plain HTTP on loopback.

It serves exactly what the service asks for — GET /api/v1/namespaces/NS/pods/NAME with a bearer token — and can be
told to fail, answer late, or change the pod, which a real apiserver cannot do on demand. The live tests in
test_kubernetes_live.py cover the real one.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TOKEN = "fake-token"


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
class FakeApiserver:
    url: str
    ca_file: Path | None = None
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # Set to answer every request with this status and a Status object, instead of the pod.
    fail_status: int | None = None
    delay_seconds: float = 0.0
    calls: int = 0
    authorizations: list[str] = field(default_factory=list)

    def kubeconfig(self, directory: Path, token: str = TOKEN) -> Path:
        """A kubeconfig file pointing at this server with a bearer token (JSON is valid YAML)."""
        path = directory / "kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "fake", "user": {"token": token}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                    "current-context": "fake",
                }
            )
        )
        return path

    def in_cluster_env(self, directory: Path, namespace: str = "shop", token: str = TOKEN) -> dict[str, str]:
        """What the kubelet gives a pod: the service host/port variables and a service account mount."""
        assert self.ca_file is not None, "in-cluster access is HTTPS only: start the server with tls_dir"
        sa_dir = directory / "serviceaccount"
        sa_dir.mkdir(exist_ok=True)
        (sa_dir / "token").write_text(token)
        (sa_dir / "namespace").write_text(namespace)
        shutil.copy(self.ca_file, sa_dir / "ca.crt")
        host, port = self.url.removeprefix("https://").rsplit(":", 1)
        return {
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": port,
            "KUBE_SERVICE_ACCOUNT_DIR": str(sa_dir),
        }


def self_signed_certificate(directory: Path, host: str) -> tuple[Path, Path]:
    """A certificate for `host` (its own CA) and its key, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the openssl command is needed for the HTTPS fake apiserver: apt-get install openssl")
    cert, key = directory / "apiserver.crt", directory / "apiserver.key"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={host}",
            "-addext",
            f"subjectAltName=IP:{host}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@contextmanager
def running(host: str = "127.0.0.1", tls_dir: Path | None = None) -> Iterator[FakeApiserver]:
    """Serve on a free port; over HTTPS with a fresh self-signed certificate when `tls_dir` is given."""
    state: FakeApiserver

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            state.calls += 1
            state.authorizations.append(self.headers.get("Authorization", ""))
            if state.delay_seconds:
                time.sleep(state.delay_seconds)
            parts = self.path.split("?")[0].strip("/").split("/")
            if state.fail_status is not None:
                return self._send(state.fail_status, _status(state.fail_status, "injected failure"))
            if len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods":
                pod = state.pods.get((parts[3], parts[5]))
                if pod is not None:
                    return self._send(200, pod)
                return self._send(404, _status(404, f'pods "{parts[5]}" not found'))
            return self._send(404, _status(404, "not found"))

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
            pass  # failed handshakes and clients that gave up are what some tests are about

    server = Server((host, 0), Handler)
    server.daemon_threads = True
    state = FakeApiserver(url=f"http://{host}:{server.server_address[1]}")
    if tls_dir is not None:
        cert, key = self_signed_certificate(tls_dir, host)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        # The handshake runs in the handler's thread, so a slow client cannot stall the accept loop.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        state.url, state.ca_file = f"https://{host}:{server.server_address[1]}", cert
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-apiserver", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _status(code: int, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}
