"""The promote workflow's own step, run as GitHub Actions runs it for the ``repository_dispatch`` Argo CD triggers.

The e2e never restates how a dispatch becomes a promotion. It reads ``.github/workflows/promote.yaml`` from the
checkout, takes the one step that runs ``gitops promote``, and runs its ``run:`` with bash the way a hosted runner
does (``bash --noprofile --norc -eo pipefail``), with its ``env:``, ``GITHUB_EVENT_PATH`` holding the event GitHub
delivers for the dispatch, and ``RUNNER_TEMP``. The checkout's ``.venv`` is this process's virtualenv (what the
workflow's setup action builds in CI). A ``${{ }}`` expression in that step would need GitHub to evaluate it, so it
is refused: the step must hand the event to the CLI, where turning it into a promotion is tested.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from gitops.errors import GitopsError

WORKFLOW = ".github/workflows/promote.yaml"
EXPRESSION = "${{"


class WorkflowError(GitopsError):
    pass


@dataclass(frozen=True)
class Step:
    job: str
    name: str
    run: str
    env: dict[str, str]

    def describe(self) -> str:
        return f"{WORKFLOW}, job {self.job}, step {self.name}"


def promote_step(work: Path) -> Step:
    """The step of the promote workflow that runs `gitops promote`."""
    data = yaml.safe_load((work / WORKFLOW).read_text()) or {}
    found = [
        Step(job, step.get("name") or "the one that runs gitops promote", step["run"], step.get("env") or {})
        for job, spec in (data.get("jobs") or {}).items()
        for step in spec.get("steps") or []
        if "gitops promote" in (step.get("run") or "")
    ]
    if len(found) != 1:
        raise WorkflowError(f"{WORKFLOW}: expected one step that runs `gitops promote`, found {len(found)}")
    step = found[0]
    for where, text in [("run", step.run), *((f"env.{k}", str(v)) for k, v in step.env.items())]:
        if EXPRESSION in text:
            raise WorkflowError(
                f"{step.describe()}: {where} holds a GitHub expression ({text.strip()[:80]!r}), which only GitHub "
                'evaluates: give the CLI the event itself (--github-event "$GITHUB_EVENT_PATH")'
            )
    return step


def dispatch_event(event_type: str, client_payload: dict, branch: str = "main") -> dict:
    """What GitHub writes to ``$GITHUB_EVENT_PATH`` for a ``repository_dispatch`` (the parts a workflow reads)."""
    return {"action": event_type, "branch": branch, "client_payload": client_payload}


def run(step: Step, work: Path, event: dict, temp: Path) -> subprocess.CompletedProcess[str]:
    temp.mkdir(parents=True, exist_ok=True)
    event_path = temp / "event.json"
    event_path.write_text(json.dumps(event, indent=2))
    gitops = work / ".venv" / "bin" / "gitops"  # a directory, as .gitignore expects: the checkout stays clean
    if not gitops.exists():
        ours = Path(sys.prefix) / "bin" / "gitops"
        if not ours.exists():
            raise WorkflowError(f"no gitops in {sys.prefix}: run the e2e from the repository's .venv (make setup)")
        gitops.parent.mkdir(parents=True)
        gitops.symlink_to(ours)
    env = {
        **os.environ,
        **{k: str(v) for k, v in step.env.items()},
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "repository_dispatch",
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_WORKSPACE": str(work),
        "RUNNER_TEMP": str(temp),
    }
    argv = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step.run]
    return subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=600)
