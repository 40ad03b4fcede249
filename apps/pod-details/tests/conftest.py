"""Fixtures that start real processes and always stop them, even when a test fails: gunicorn, kube-apiserver (the
session's `kube_cluster` from the repository's pytest plugin `gitops_testing.plugin`, or a test's own when it stops
it), and the one stand-in left for what a real apiserver cannot do on demand (misbehaving_apiserver.py)."""

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

from pod_details_support import live_cluster, misbehaving_apiserver
from pod_details_support.gunicorn_process import Server, start_gunicorn

from gitops_testing.plugin import ControlPlane


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
def live_pod(kube_cluster: ControlPlane) -> Iterator[live_cluster.LivePod]:
    """A namespace on the session's real apiserver with the chart's RBAC and a Pod to read."""
    with live_cluster.deployed(kube_cluster.kubeconfig) as pod:
        yield pod


@pytest.fixture
def own_cluster(control_plane: Callable[[], ControlPlane]) -> ControlPlane:
    """A control plane of the test's own, for tests that stop it; stopped (again) and removed afterwards."""
    return control_plane()


@pytest.fixture
def misbehaving() -> Iterator[misbehaving_apiserver.MisbehavingApiserver]:
    with misbehaving_apiserver.running() as server:
        yield server
