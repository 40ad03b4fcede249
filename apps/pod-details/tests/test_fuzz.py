"""Fuzz the running service against its own OpenAPI document with schemathesis: no 5xx, nothing off-spec."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from fake_apiserver import FakeApiserver, pod_object
from gunicorn_process import Server, tool


def test_schemathesis_finds_nothing(serve: Callable[..., Server], apiserver: FakeApiserver, tmp_path: Path) -> None:
    # Behind a (fake) apiserver, so /details answers with the full kubernetes-api shape, and two workers as deployed.
    apiserver.pods[("shop", "web-1")] = pod_object("web-1")
    env = {"KUBECONFIG": str(apiserver.kubeconfig(tmp_path)), "POD_NAME": "web-1", "POD_NAMESPACE": "shop"}
    server = serve(env, workers=2)
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
