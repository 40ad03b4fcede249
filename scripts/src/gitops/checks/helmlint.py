"""`helm lint --strict` for every app in an environment, several charts per helm process.

helm's start-up (about 50 ms of CPU) is most of what a lint of a small chart costs, and `helm lint` takes any number
of charts — but one set of ``--values`` for all of them. So each app's chart is copied with its environment's values
already coalesced into its ``values.yaml``, exactly as helm coalesces ``--values`` files over chart defaults (maps
merged key by key, later files winning, a null deleting the default), and one process lints a batch of them. An
Application with ``helm.parameters`` (``--set`` syntax) is linted on its own, with the flags themselves.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from gitops import yamlio
from gitops.findings import Finding
from gitops.render.helmerrors import SCHEMA_ERROR, squash

if TYPE_CHECKING:
    from gitops.render.helm import HelmJob, Renderer

LINT_MESSAGE = re.compile(r"^\[(ERROR|WARNING)\] (.*(?:\n[ \t]+.*)*)", re.M)
LOG_MESSAGE = re.compile(r'level=\w+ msg="[^"]*" message="((?:[^"\\]|\\.)*)"')
SECTION = re.compile(r"^==> Linting (.+)$", re.M)
TRAILER = re.compile(r"^\d+ chart\(s\) linted, \d+ chart\(s\) failed\s*$", re.M)
FAILED = re.compile(r"\b[1-9]\d* chart\(s\) failed")
TEMPLATE_LOC = re.compile(r"(?:^|[\s(])[\w.-]+/(templates/[^\s:()]+)(?::(\d+))?", re.M)


def merge_values(base: dict, override: dict) -> dict:
    """helm's ``mergeMaps`` for successive ``--values`` files: maps merge, anything else (null too) replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_values(out[key], value)
        else:
            out[key] = value
    return out


def coalesce(user: dict, defaults: dict) -> dict:
    """helm's ``CoalesceValues``: user values over chart defaults; a user null deletes the default."""
    out = dict(user)
    for key, default in defaults.items():
        if key not in out:
            out[key] = copy.deepcopy(default)
        elif out[key] is None:
            del out[key]
        elif isinstance(out[key], dict) and isinstance(default, dict):
            out[key] = coalesce(out[key], default)
    return out


def batches(jobs: list[HelmJob], per_batch: int) -> tuple[list[list[HelmJob]], list[HelmJob]]:
    """Jobs that can share a process (same namespace and flags, no --set), in batches; and those that cannot."""
    groups: dict[tuple, list[HelmJob]] = {}
    alone = []
    for job in jobs:
        if job.params:
            alone.append(job)
        else:
            groups.setdefault((job.namespace, job.skip_schema_validation), []).append(job)
    out = []
    for group in groups.values():
        out += [group[i : i + per_batch] for i in range(0, len(group), per_batch)]
    return out, alone


def lint_batch(renderer: Renderer, jobs: list[HelmJob]) -> dict[int, str]:
    """Lint ``jobs`` in one helm process; each job's share of the output, by ``id(job)`` ("" when clean)."""
    out = {id(job): "" for job in jobs}
    paths = {}
    for n, job in enumerate(jobs):
        target = renderer.workdir / "lint" / f"{id(jobs)}-{n}" / "chart"
        try:
            _bake(renderer, job, target)
        except yaml.YAMLError:
            out[id(job)] = lint_one(renderer, job)  # values that do not parse: let helm say so, with the real flags
            continue
        paths[str(target)] = job
    if not paths:
        return out
    first = jobs[0]
    args = ["lint", "--strict", "--kube-version", renderer.kube_version]
    if first.namespace:
        args += ["--namespace", first.namespace]
    if first.skip_schema_validation:
        args.append("--skip-schema-validation")
    proc = renderer.batch.run([*args, *paths], renderer.workdir)
    marks = list(SECTION.finditer(proc.stdout))
    for i, m in enumerate(marks):
        job = paths.get(m.group(1).strip())
        if job is not None:
            end = marks[i + 1].start() if i + 1 < len(marks) else len(proc.stdout)
            out[id(job)] = TRAILER.sub("", proc.stdout[m.end() : end])
    if proc.returncode != 0 and not any(LINT_MESSAGE.search(out[id(job)]) for job in paths.values()):
        # Failed without saying which chart: every chart of the batch gets the whole story.
        out.update({id(job): proc.stdout + "\n" + proc.stderr for job in paths.values()})
    return out


def _bake(renderer: Renderer, job: HelmJob, target: Path) -> None:
    """The job's chart at ``target`` with its values coalesced into ``values.yaml``; raises yaml.YAMLError."""
    chart_dir, values, extra = renderer.materialize(job)
    user: dict = {}
    for path in [*values, *([extra] if extra else [])]:
        loaded = yamlio.load_fast(path.read_text())
        if isinstance(loaded, dict):
            user = merge_values(user, loaded)
    source_defaults = chart_dir / "values.yaml"
    defaults = yamlio.load_fast(source_defaults.read_text()) if source_defaults.exists() else {}
    shutil.copytree(chart_dir, target, symlinks=True, copy_function=_link_or_copy)
    (target / "values.yaml").unlink(missing_ok=True)  # a hard link: never write through it into the source
    merged = coalesce(user, defaults if isinstance(defaults, dict) else {})
    (target / "values.yaml").write_text(json.dumps(merged, default=str))  # JSON is YAML, and keeps types as they are


def _link_or_copy(src: str, dst: str) -> None:
    """Hard links where the file system allows (a batch copies a hundred charts); a copy elsewhere."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def lint_one(renderer: Renderer, job: HelmJob) -> str:
    """`helm lint --strict` of one chart with its flags as the Application passes them; "" when clean."""
    chart_dir, values, extra = renderer.materialize(job)
    proc = renderer.batch.run(["lint", ".", "--strict", *renderer.helm_args(job, values, extra)], chart_dir)
    return "" if proc.returncode == 0 else proc.stdout + "\n" + proc.stderr


def lint_failure(job: HelmJob, output: str, template_failed: bool) -> list[Finding]:
    """Problems in helm lint's output that `helm template` does not already report (schema, template errors)."""
    findings = []
    for level, text in LINT_MESSAGE.findall(output):
        where, _, message = text.partition(": ")
        if SCHEMA_ERROR in text or (where == "values.yaml" and message.lstrip().startswith("- at")):
            continue  # reported once, as values-schema, from the render
        if template_failed and where.startswith("templates"):
            continue  # the same failure the render reported
        file = f"{job.chart}/{where}" if where and " " not in where else job.chart
        m = TEMPLATE_LOC.search(text)
        line = int(m.group(2)) if m and m.group(2) else None
        if m:
            file = f"{job.chart}/{m.group(1)}"
        findings.append(
            Finding(
                "helm-lint",
                f"{level.lower()}: {squash(message or text)}",
                env=job.env,
                app=job.app,
                file=file,
                line=line,
            )
        )
    if not findings and not template_failed and FAILED.search(output):
        logged = [m.encode().decode("unicode_escape") for m in LOG_MESSAGE.findall(output)]
        findings.append(
            Finding("helm-lint", squash("; ".join(logged) or output), env=job.env, app=job.app, file=job.chart)
        )
    return findings


def alongside(
    renderer: Renderer, pool: ThreadPoolExecutor, jobs: list[HelmJob]
) -> Callable[[HelmJob, bool], list[Finding]]:
    """`helm lint --strict` of every job, batched (a few processes per environment, so every core has one), in the
    renderer's pool beside the renders; returns what gives each job's lint findings once it is done."""
    from gitops.render.helm import workers

    per_batch = max(1, -(-len(jobs) // (2 * workers())))
    groups, alone = batches(jobs, per_batch)
    futures = [pool.submit(lint_batch, renderer, group) for group in groups]
    futures += [pool.submit(lambda j: {id(j): lint_one(renderer, j)}, job) for job in alone]
    output: dict[int, str] = {}
    collected = False

    def findings(job: HelmJob, template_failed: bool) -> list[Finding]:
        nonlocal collected
        if not collected:
            for fut in futures:
                output.update(fut.result())
            collected = True
        return lint_failure(job, output.get(id(job), ""), template_failed)

    return findings
