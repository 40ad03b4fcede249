"""Fixtures that start real processes — gunicorn, a fake apiserver — and always stop them, even when a test fails."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

# The helper modules next to this file are importable whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fake_apiserver
from gunicorn_process import Server, start_gunicorn


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start gunicorn as deployed (same config module) on a free loopback port; every server is stopped after."""
    servers: list[Server] = []

    def start(env: Mapping[str, str] | None = None, **kwargs: object) -> Server:
        server = start_gunicorn(tmp_path / f"gunicorn-{len(servers)}.log", env, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(5)


@pytest.fixture
def apiserver() -> Iterator[fake_apiserver.FakeApiserver]:
    with fake_apiserver.running() as server:
        yield server


@pytest.fixture
def apiserver_tls(tmp_path: Path) -> Iterator[fake_apiserver.FakeApiserver]:
    """The fake apiserver over HTTPS, as a pod reaches the real one (in-cluster credentials need TLS)."""
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    with fake_apiserver.running(tls_dir=tls_dir) as server:
        yield server
