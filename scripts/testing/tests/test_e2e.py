"""The whole GitOps loop as a test: `gitops-e2e` (`make e2e`) against this repository's HEAD, with the real Argo CD
on local control planes (scripts/testing/src/gitops_testing/e2e/). It takes minutes, not seconds; run it alone with
`.venv/bin/pytest scripts/testing/tests/test_e2e.py -s` to watch the steps and timings as they happen.

It needs what `make e2e` needs: the pinned toolchain (`make tools`) and redis-server. It fails, never skips, when
either is missing — a skipped end-to-end test reads like a passed one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from gitops_testing import e2e

# The repository under test: this one, or another checkout (a branch with a config fix) named by GITOPS_E2E_REPO.
REPO = Path(os.environ.get("GITOPS_E2E_REPO") or Path(__file__).resolve().parents[3])


def _our_children() -> set[int]:
    """PIDs whose parent is this process (from /proc: running `ps` would count itself)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            children.add(int(stat.parent.name))
    return children


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_gitops_loop_runs_end_to_end_and_leaves_nothing_behind():
    before = set(Path(tempfile.gettempdir()).glob("gitops-e2e-*"))
    children = _our_children()
    lines: list[str] = []
    try:
        timings = e2e.run(REPO, say=lambda line: (lines.append(line), print(line)))
    finally:
        leftover = set(Path(tempfile.gettempdir()).glob("gitops-e2e-*")) - before
        for path in leftover:
            shutil.rmtree(path, ignore_errors=True)
    labels = [label for label, _ in timings.rows]
    for step in ("bootstrap", "bump", "chart", "promote", "rollback", "degraded", "notifications", "project"):
        assert any(label.startswith(step) for label in labels), f"step {step} did not run: {labels}"
    counts = dict(timings.counts)
    assert counts["failed sync attempts: bootstrap"] == 0, "a fresh cluster must converge in one pass"
    assert counts["notifications: dev-healthy dispatches for the degraded release"] == 0
    assert not leftover, f"the run left {sorted(map(str, leftover))} behind"
    assert _our_children() <= children, "the run left processes behind"
