"""Reproduce the image's build stage without Docker: a clean Python 3.11 venv, the hash-locked dependencies with
--no-deps, the app from the same build context, then gunicorn from that venv with the same config."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pod_details_support.gunicorn_process import PROJECT, start_gunicorn


def run(*cmd: str | Path, cwd: Path | None = None, timeout: float = 400) -> str:
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(map(str, cmd))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def python311() -> str:
    found = shutil.which("python3.11") or getattr(sys, "_base_executable", None)
    if not found:
        pytest.fail("python3.11 is needed to build a clean venv: install Python 3.11 (e.g. apt-get install python3.11)")
    return found


def build_context(into: Path) -> Path:
    """What .dockerignore lets into the context: the two lock files, pyproject.toml and src/ without build litter."""
    context = into / "context"
    context.mkdir()
    shutil.copy(PROJECT / "pyproject.toml", context)
    shutil.copy(PROJECT / "requirements.lock", context)
    shutil.copy(PROJECT / "build-requirements.lock", context)
    shutil.copytree(PROJECT / "src", context / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return context


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_build_stage_in_a_clean_venv_serves_healthz(tmp_path: Path) -> None:
    context = build_context(tmp_path)
    venv = tmp_path / "venv"
    # A venv without pip of its own: the test's pip installs into it (`pip --python`), which saves bootstrapping
    # pip and setuptools with ensurepip; the result has no pip, like the image's venv once its build stage is done.
    run(python311(), "-m", "venv", "--without-pip", venv)
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", venv / "bin" / "python")
    # As in the Dockerfile, except that pip's cache is allowed here to spare the network on repeated runs, and
    # bytecode is not compiled (the client's thousand model files would double the time of this test).
    for lock in ("requirements.lock", "build-requirements.lock"):
        run(*pip, "install", "--no-compile", "--require-hashes", "--no-deps", "-r", lock, cwd=context)
    run(*pip, "install", "--no-deps", "--no-build-isolation", "--no-index", ".", cwd=context)
    run(*pip, "uninstall", "--yes", "setuptools")
    assert not (venv / "bin" / "pip").exists()

    # Installed, not imported from the source tree: the metadata gives the version, the code lives in the venv.
    where = run(venv / "bin" / "python", "-c", "import pod_details, sys; print(pod_details.__file__)", cwd=tmp_path)
    assert where.startswith(str(venv))

    workdir = tmp_path / "workdir"  # WORKDIR /tmp in the image: nothing of the repository around
    workdir.mkdir()
    env = {"PYTHONDONTWRITEBYTECODE": "1", "HOME": str(workdir), "GIT_COMMIT": "image-test"}
    server = start_gunicorn(tmp_path / "gunicorn.log", env, gunicorn=venv / "bin" / "gunicorn", cwd=workdir)
    try:
        assert server.get("/api/v1/healthz").json() == {"status": "ok"}
        version = server.get("/api/v1/version").json()
        assert version["commit"] == "image-test" and version["version"] != "0+unknown"
    finally:
        assert server.stop() == 0, server.logs()
    assert os.listdir(workdir) == []  # nothing written to the working directory
