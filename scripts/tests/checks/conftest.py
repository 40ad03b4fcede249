"""Every test of the checks starts with an empty result cache of its own (``gitops.checks.cache``): a test exercises
the tools, never results an earlier run (or the developer's own runs) left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops.checks.cache import ENV_VAR


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "validate-cache"
    monkeypatch.setenv(ENV_VAR, str(path))  # the CLI in a subprocess inherits it too
    return path
