"""`gitops-e2e` (`make e2e`): the whole GitOps loop on one machine, with the real Argo CD against real control planes.

Everything lives in one temporary directory and every process is our child (with PR_SET_PDEATHSIG), so a run —
passed, failed, interrupted with Ctrl-C or terminated — leaves no process and no directory behind.

Modules: ``gitrepo`` (GitHub stand-in, developer checkout, the repo Argo CD reads), ``substitutions`` (what the
published config changes to run here), ``argocd`` (Argo CD as local processes), ``notifications`` (the notifications
controller's configuration from the cluster's values), ``github`` (GitHub's REST API for the dispatch Argo CD sends),
``workflow`` (the promote workflow's own step, run as GitHub Actions would), ``standins`` (what upstream controllers
would do at run time), ``cluster`` (one cluster: control plane + Argo CD + stand-ins), ``expect`` (`gitops render` as
the expected state), ``checks`` (assertions), ``syncs`` (failed sync attempts), ``scenario`` (the steps).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP (a cancelled CI job, a closed terminal) unwind like Ctrl-C, so teardown runs."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run(
    source: Path,
    say: Callable[[str], None] = print,
    include_work_tree: bool = False,
    timeout: float = 240.0,
    keep: bool = False,
):
    """Run the scenario against ``source`` (a git work tree); returns its Timings. Raises on the first failure.

    ``keep`` leaves the state directory (logs, renders, git repos) for inspection; processes are stopped anyway.
    """
    from gitops_testing.e2e.scenario import Scenario

    state = Path(tempfile.mkdtemp(prefix="gitops-e2e-"))
    scenario = Scenario(state, source, say, include_work_tree, timeout)
    try:
        with _terminate_as_interrupt():
            return scenario.run()
    finally:
        with _terminate_as_interrupt():
            scenario.stop()
        if keep:
            say(f"state kept in {state} (logs: {state}/<cluster>/argocd/logs, {state}/<cluster>/control-plane/logs)")
        else:
            shutil.rmtree(state, ignore_errors=True)
