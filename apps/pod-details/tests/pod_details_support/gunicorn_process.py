"""Running the service as deployed — gunicorn with the service's config module — for tests that speak HTTP to it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

PROJECT = Path(__file__).resolve().parents[2]
SUPPORT = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
# Variables of the developer's or CI's shell that would change what the service does under test.
_ISOLATED = (
    "KUBECONFIG",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "POD_NAME",
    "POD_NAMESPACE",
    "POD_IP",
    "NODE_NAME",
    "POD_SERVICE_ACCOUNT",
    "PROMETHEUS_MULTIPROC_DIR",
    "prometheus_multiproc_dir",
    "PORT",
    "BIND",
    "WEB_CONCURRENCY",
    "GUNICORN_THREADS",
    "GIT_COMMIT",
)


def tool(name: str, how: str) -> Path:
    """A program from the venv running the tests; fails (never skips) with how to get it."""
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: {how}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    # OTEL_* of the shell would switch tracing on: a test that wants it says so.
    env = {k: v for k, v in os.environ.items() if k not in _ISOLATED and not k.startswith("OTEL_")}
    env.update({"DRAIN_SECONDS": "1", "GRACEFUL_TIMEOUT_SECONDS": "5", "PYTHONUNBUFFERED": "1"})
    env.update(extra or {})
    return env


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def get(self, path: str, **kwargs: object) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return requests.get(self.url + path, **kwargs)  # type: ignore[arg-type]

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM the master (what kubelet does) and wait; kill the whole group if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(5)


def start_gunicorn(
    log_path: Path,
    env: Mapping[str, str] | None = None,
    *,
    workers: int = 1,
    gunicorn: Path | None = None,
    cwd: Path = PROJECT,
    wait: bool = True,
    config: str = "pod_details.gunicorn_conf",
    app: str = "pod_details.wsgi:app",
) -> Server:
    """gunicorn with the service's config module and app, or with `config` / `app` from this package built on them."""
    port = free_port()
    full_env = service_env({"BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers), **(env or {})})
    if config.startswith(f"{__package__}.") or app.startswith(f"{__package__}."):
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SUPPORT.parent), full_env.get("PYTHONPATH")]))
    exe = gunicorn or tool("gunicorn", "run `make setup`")
    cmd = [str(exe), "--config", f"python:{config}", app]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            cmd, cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(process, f"http://127.0.0.1:{port}", log_path)
    if wait:
        _wait_healthy(server)
    return server


def _wait_healthy(server: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"gunicorn exited with {server.process.returncode}:\n{server.logs()}")
        try:
            if server.get("/api/v1/healthz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"gunicorn did not answer /api/v1/healthz within {timeout}s:\n{server.logs()}")
