"""Fuzz the running service against its own OpenAPI document with schemathesis: no 5xx, nothing off-spec."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from pod_details_support.gunicorn_process import Server, tool
from pod_details_support.live_cluster import LivePod, pod_env

from gitops_testing.plugin import ControlPlane


def test_schemathesis_finds_nothing(
    serve: Callable[..., Server], kube_cluster: ControlPlane, live_pod: LivePod, tmp_path: Path
) -> None:
    # In a pod's setting behind a real apiserver, so /details answers with the full kubernetes-api shape, and two
    # workers as deployed.
    server = serve(pod_env(kube_cluster, live_pod, tmp_path), workers=2)
    assert server.get("/api/v1/details").json()["source"] == "kubernetes-api"
    schemathesis = tool("schemathesis", "it is in requirements/dev.lock; run `make setup`")
    result = subprocess.run(
        [
            str(schemathesis),
            "run",
            server.url + "/api/v1/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "50",
            "--seed",
            "20260101",  # reproducible: a failure here reproduces with the same command
            "--workers",
            "2",
        ],
        cwd=tmp_path,  # its hypothesis database stays out of the repository
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout
