"""Rendering an environment the way Argo CD would apply it: ApplicationSet → Applications → `helm template`.

Each Application's chart source is rendered with the pinned helm exactly as Argo CD's repo-server runs it
(``reposerver/repository/repository.go`` ``helmTemplate`` and ``util/helm/cmd.go``): in the chart directory,
``helm template . --name-template <releaseName or app name> --namespace <destination namespace> --kube-version
<pinned Kubernetes> --values <valueFiles…> --values <valuesObject, or values> --api-versions <…> --include-crds``.
``helm.parameters`` become ``--set``/``--set-string`` (they win over every values file; valuesObject wins over
``values``, and both over the value files).

Where each source is read from (``--ref`` is the revision being rendered, default: the work tree): every source of
this repository follows ``main`` (the generator, dev's chart, prod's promoted chart copy, every ``$values`` ref) and is
read from ``--ref``, so without ``--ref`` a developer sees their uncommitted change and ``--ref HEAD`` renders what is
committed — ``--ref`` stands in for "what main will be". Nothing older is ever needed: an environment is described
entirely at one revision. A source pinned to another branch, tag or commit is still resolved in the local repository
(`gitops validate` refuses it for this repository's own Applications).

An upstream chart (a source with ``chart``) is rendered from the pinned copy `make tools` fetched
(``gitops.render.upstream``); one that cannot be had here, and upstream sources that are not charts, are named in a
note, never rendered from anything else.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml

from gitops import git
from gitops.errors import GitopsError
from gitops.findings import Finding
from gitops.model import TRACKED_BRANCH, Environment, Repo, same_repo
from gitops.render import capabilities
from gitops.render import upstream as upstream_charts
from gitops.render.appset import Application, expand
from gitops.render.documents import Document, EnvRender, Rendered, split_documents
from gitops.render.helmbatch import HelmBatch
from gitops.render.helmerrors import helm_failure
from gitops.toolchain import ToolMissing, tool_path

# helm runs for a tenth of a second, most of it Go start-up; garbage collection there is pure overhead (about a third
# of the CPU). The memory limit brings the collector back should a render ever grow large.
SHORT_LIVED_GO = {"GOGC": "off", "GOMEMLIMIT": "1GiB"}
# A check run beside the renders (helm lint): given the renderer, its pool and the jobs, it schedules its work and
# returns what adds its findings to one job's (the job, and whether its render failed).
Alongside = Callable[["Renderer", ThreadPoolExecutor, list["HelmJob"]], Callable[["HelmJob", bool], list[Finding]]]


class ResultCache(Protocol):
    """Where results are kept between runs (``gitops.checks.cache.Store``): an entry is a JSON object under a key
    made of everything it was computed from (``key``, which adds the code that computed it)."""

    def key(self, *parts: str | bytes) -> str: ...

    def get(self, kind: str, key: str) -> dict | None: ...

    def put(self, kind: str, key: str, value: dict) -> None: ...


def workers() -> int:
    """Helm renders are separate processes, so threads parallelise them; one per core keeps the machine busy."""
    return max(2, os.cpu_count() or 2)


@dataclass
class ValueFile:
    ref: str  # as written in the Application ($values/…)
    path: str  # repo path
    snapshot: git.Snapshot


@dataclass
class HelmJob:
    """One `helm template` of one Application source, with everything it reads pinned down."""

    env: str
    app: str
    application: Application
    chart: str  # repo path of the chart (an upstream chart: where it is in its Go module)
    revision: str  # as written in the Application
    snapshot: git.Snapshot | None  # where the chart is read (None: an upstream chart, read at chart_dir)
    release_name: str
    namespace: str
    value_files: list[ValueFile]
    extra_values: str | None  # YAML/JSON text of valuesObject (or values)
    params: list[tuple[str, str, bool]]  # (name, value, force string)
    skip_crds: bool = False
    skip_schema_validation: bool = False
    skip_tests: bool = False
    files: tuple[Path, list[Path], Path | None] | None = None  # on disk, once materialized
    chart_dir: Path | None = None  # an upstream chart: its pinned copy in the toolchain cache
    # Where a key of valuesObject is written, when not in a release file (platform Applications: their own file).
    locate: Callable[[list], tuple[str, int | None]] | None = None

    @property
    def where(self) -> str:
        if self.snapshot is None:
            return f"{self.chart} (chart version {self.revision})"
        return f"{self.chart}@{self.revision}" + _label(self.snapshot, self.revision)


class RevisionError(GitopsError):
    pass


class Renderer:
    """Renders Applications of one repository model; reuse it for every environment of one run (shared caches)."""

    def __init__(self, repo: Repo, workdir: Path) -> None:
        try:
            self.helm = tool_path("helm")
            batch = tool_path("helm-batch")
        except ToolMissing as e:
            raise GitopsError(str(e)) from None
        self.repo = repo
        self.workdir = workdir
        self.kube_version = capabilities.kube_version()
        self.api_versions = capabilities.api_versions()
        self._snapshots: dict[str, git.Snapshot] = {}
        self._lock = threading.Lock()
        # A private helm home: no user plugins, repositories or registry logins leak into a render (as in Argo CD).
        home = workdir / "helm-home"
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            **SHORT_LIVED_GO,
        }
        # Every helm command line of a run goes through a few helm-batch processes (see gitops.render.helmbatch).
        self.batch = HelmBatch(batch, self.helm, self.env)
        weakref.finalize(self, self.batch.close)

    # -- where sources are read ----------------------------------------------------------------------------------

    def snapshot_for(self, revision: str) -> git.Snapshot:
        """The snapshot a source's targetRevision reads (see the module docstring)."""
        if revision in ("", "HEAD", TRACKED_BRANCH):
            return self.repo.snapshot
        if revision not in self._snapshots:
            sha = git.resolve(self.repo.root, revision)
            if sha is None:
                what = "commit" if git.SHA_RE.match(revision) else "commit, branch or tag"
                raise RevisionError(f"{revision!r} names no {what} in this repository")
            if sha not in self._snapshots:
                self._snapshots[sha] = git.Commit(self.repo.root, sha)
            self._snapshots[revision] = self._snapshots[sha]
        return self._snapshots[revision]

    # -- planning ------------------------------------------------------------------------------------------------

    def plan(self, application: Application) -> Rendered:
        """Resolve an Application's sources; the result carries a HelmJob to run, or problems and notes."""
        a = application
        origin = f"env {a.env}, from {a.params_file}" if a.env else f"from {a.params_file}"
        header = [
            f"Application {a.manifest['metadata']['namespace']}/{a.name} ({origin})",
            f"destination namespace {a.destination_namespace or '<none>'}",
        ]
        out = Rendered(a.env, a.app, a.name, header)

        def problem(message: str, *, file: str = a.appset_file, line: int | None = None) -> None:
            out.problems.append(
                Finding("render", message, env=a.env, app=a.app, file=file, line=line, kind="Application", name=a.name)
            )

        refs = {f"${s['ref']}": s for s in a.sources if isinstance(s, dict) and s.get("ref")}
        for source in a.sources:
            if not isinstance(source, dict) or (
                source.get("ref") and not source.get("path") and not source.get("chart")
            ):
                continue
            repo_url = str(source.get("repoURL", ""))
            revision = str(source.get("targetRevision", "") or "HEAD")
            if source.get("chart"):
                self._plan_upstream(a, source, refs, problem, out)
                continue
            if not same_repo(repo_url):
                what = f"path {source.get('path', '.')} {revision} from {repo_url}"
                out.notes.append(f"pinned, not rendered: {what} (upstream, not a chart)")
                continue
            path = str(source.get("path", "")).strip("/")
            try:
                snap = self.snapshot_for(revision)
            except RevisionError as e:
                problem(f"source {path}: targetRevision {e}")
                continue
            if not snap.exists(f"{path}/Chart.yaml"):
                if snap.is_dir(path):
                    problem(
                        f"source {path} at {revision} is not a Helm chart (no Chart.yaml); only charts are rendered"
                    )
                else:
                    problem(
                        f"source path {path} does not exist at {revision}{_label(snap, revision)}",
                        file=a.params_file,
                    )
                continue
            if out.job is not None:
                problem("more than one chart source: `gitops render` renders one chart per Application")
                continue
            job = self._helm_job(a, source, path, revision, snap, refs, problem)
            if job is not None:
                _adopt(out, job)
        return out

    def _plan_upstream(self, a: Application, source: dict, refs: dict, problem: Callable, out: Rendered) -> None:
        """A chart from a Helm repository: its pinned copy from the cache, or a note saying why it is not rendered."""
        chart = upstream_charts.resolve(source)
        if chart.note:
            out.notes.append(chart.note)
        elif chart.problem:
            problem(chart.problem, file=a.params_file)
        elif out.job is not None:
            problem("more than one chart source: `gitops render` renders one chart per Application")
        else:
            job = self._helm_job(a, source, chart.label, chart.revision, None, refs, problem)
            if job is not None:
                job.chart_dir = chart.chart_dir
                _adopt(out, job)

    def _helm_job(self, a, source, path, revision, snap, refs, problem) -> HelmJob | None:
        helm = source.get("helm") or {}
        value_files: list[ValueFile] = []
        ok = True
        for raw in helm.get("valueFiles") or []:
            raw = str(raw)
            ref_name = raw.split("/", 1)[0]
            if ref_name in refs:
                ref = refs[ref_name]
                if not same_repo(str(ref.get("repoURL", ""))):
                    problem(f"value file {raw}: its source {ref.get('repoURL')} is not this repository")
                    ok = False
                    continue
                try:
                    vsnap = self.snapshot_for(str(ref.get("targetRevision", "") or "HEAD"))
                except RevisionError as e:
                    problem(f"value file {raw}: targetRevision {e}")
                    ok = False
                    continue
                rel = raw.split("/", 1)[1] if "/" in raw else ""
                vpath = f"{ref.get('path', '').strip('/')}/{rel}".strip("/") if ref.get("path") else rel
            elif raw.startswith("$") or "://" in raw or raw.startswith("/"):
                problem(f"value file {raw}: only `$<ref>/…` and chart-relative paths are supported")
                ok = False
                continue
            elif snap is None:
                problem(f"value file {raw}: a file inside an upstream chart is not supported by `gitops render`")
                ok = False
                continue
            else:
                vsnap, vpath = snap, os.path.normpath(f"{path}/{raw}")
            if any(c in vpath for c in "*?["):
                problem(f"value file {raw}: globs are not supported by `gitops render`")
                ok = False
                continue
            if not vsnap.exists(vpath):
                if helm.get("ignoreMissingValueFiles"):
                    continue
                problem(f"value file {raw} does not exist ({vpath} at {vsnap.label})", file=vpath)
                ok = False
                continue
            value_files.append(ValueFile(raw, vpath, vsnap))
        extra: str | None = None
        if helm.get("valuesObject"):
            extra = json.dumps(helm["valuesObject"], sort_keys=True)  # JSON is YAML: types survive as written
        elif helm.get("values"):
            extra = str(helm["values"])
        params = [
            (str(p.get("name")), str(p.get("value", "")), bool(p.get("forceString")))
            for p in helm.get("parameters") or []
        ]
        if helm.get("fileParameters"):
            problem("helm.fileParameters are not supported by `gitops render`")
            ok = False
        if not ok:
            return None
        return HelmJob(
            env=a.env,
            app=a.app,
            application=a,
            chart=path,
            revision=revision,
            snapshot=snap,
            release_name=str(helm.get("releaseName") or a.name),
            namespace=str(helm.get("namespace") or a.destination_namespace),
            value_files=value_files,
            extra_values=extra,
            params=params,
            skip_crds=bool(helm.get("skipCrds")),
            skip_schema_validation=bool(helm.get("skipSchemaValidation")),
            skip_tests=bool(helm.get("skipTests")),
        )

    # -- running helm --------------------------------------------------------------------------------------------

    def materialize(self, job: HelmJob) -> tuple[Path, list[Path], Path | None]:
        """The chart directory and values files on disk (chart extraction is cached per revision)."""
        with self._lock:  # the render and the lint of a job may ask at once
            if job.files is None:
                job.files = self._materialize(job)
        return job.files

    def _materialize(self, job: HelmJob) -> tuple[Path, list[Path], Path | None]:
        if job.snapshot is None:
            assert job.chart_dir is not None
            chart_dir = job.chart_dir
        else:
            chart_dir = job.snapshot.export([job.chart], self.workdir / "charts") / job.chart
        values: list[Path] = []
        for vf in job.value_files:
            if isinstance(vf.snapshot, git.WorkTree):
                values.append(vf.snapshot.root / vf.path)
            else:
                target = self.workdir / "values" / vf.snapshot.sha / vf.path  # type: ignore[attr-defined]
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(vf.snapshot.read(vf.path) or "")
                values.append(target)
        extra = None
        if job.extra_values is not None:
            fd, name = tempfile.mkstemp(dir=self.workdir, prefix="values-object-", suffix=".yaml")
            with os.fdopen(fd, "w") as f:
                f.write(job.extra_values)
            extra = Path(name)
        return chart_dir, values, extra

    def helm_args(self, job: HelmJob, values: list[Path], extra: Path | None) -> list[str]:
        args = ["--namespace", job.namespace] if job.namespace else []
        args += ["--kube-version", self.kube_version]
        for name, value, force in job.params:
            args += ["--set-string" if force else "--set", f"{name}={_clean_set(value)}"]
        for v in values:
            args += ["--values", str(v)]
        if extra is not None:
            args += ["--values", str(extra)]
        if job.skip_schema_validation:
            args.append("--skip-schema-validation")
        return args

    def template(self, job: HelmJob) -> tuple[list[Document], list[Finding]]:
        output, problems = self._template(job)
        return split_documents(output, job.chart), problems

    def _template(self, job: HelmJob) -> tuple[str, list[Finding]]:
        """helm's output ("" when it failed) and the problems it reported."""
        chart_dir, values, extra = self.materialize(job)
        args = [
            "template",
            ".",
            "--name-template",
            job.release_name,
            *self.helm_args(job, values, extra),
        ]
        for v in self.api_versions:
            args += ["--api-versions", v]
        if not job.skip_crds:
            args.append("--include-crds")
        if job.skip_tests:
            args.append("--skip-tests")
        proc = self.batch.run(args, chart_dir)
        if proc.returncode != 0:
            return "", helm_failure(self.repo, job, proc.stderr, check="render")
        return proc.stdout, []

    def cache_key(self, cache: ResultCache, job: HelmJob, checks: str) -> str:
        """Everything a job's render (and ``checks``, the checks run beside it) depends on, as one digest: the
        chart's files, the values files, the Application and the file that parameterised it, helm and the
        Kubernetes version and capabilities it renders for, and the code that turns helm's output into findings."""
        a = job.application
        parts: list[str | bytes] = [checks, str(self.helm), str(self.batch.batch), self.kube_version]
        parts += self.api_versions
        parts += [json.dumps(a.manifest, sort_keys=True, default=str), a.env, a.app, a.params_file, a.appset_file]
        parts.append(self.repo.read(a.params_file) or "")
        parts += [job.chart, job.revision, job.release_name, job.namespace, job.extra_values or "\0"]
        parts += [json.dumps(job.params), f"{job.skip_crds}{job.skip_schema_validation}{job.skip_tests}"]
        if job.snapshot is None:  # an upstream chart: its pinned copy
            assert job.chart_dir is not None
            for path in sorted(p for p in job.chart_dir.rglob("*") if p.is_file()):
                parts += [str(path.relative_to(job.chart_dir)), path.read_bytes()]
        else:
            prefix = job.chart.rstrip("/") + "/"
            files = job.snapshot.files()  # sorted: the chart's files are one run of them, found by bisection
            i = bisect.bisect_left(files, prefix)
            while i < len(files) and files[i].startswith(prefix):
                parts += [files[i], job.snapshot.read(files[i]) or ""]
                i += 1
        for vf in job.value_files:
            parts += [vf.ref, vf.path, vf.snapshot.read(vf.path) or ""]
        return cache.key(*parts)

    # -- environments --------------------------------------------------------------------------------------------

    def render_envs(
        self,
        envs: list[Environment],
        only_app: str | None = None,
        alongside: Alongside | None = None,
        cache: ResultCache | None = None,
    ) -> list[EnvRender]:
        """Every environment's Applications, all helm runs in one pool (and ``alongside``'s, see ``run``)."""
        results: list[EnvRender] = []
        jobs: list[Rendered] = []
        for env in envs:
            expansion = expand(self.repo, env)
            apps = [a for a in expansion.applications if only_app is None or a.app == only_app]
            rendered = [self.plan(a) for a in sorted(apps, key=lambda a: (a.app, a.name))]
            jobs.extend(r for r in rendered if r.job is not None)
            results.append(EnvRender(env.name, apps, rendered, expansion.problems))
        self.run(jobs, alongside, cache)
        return results

    def run(self, jobs: list[Rendered], alongside: Alongside | None = None, cache: ResultCache | None = None) -> None:
        """Every planned job's `helm template` in one pool. ``alongside`` (a check such as `helm lint`) may schedule
        its own helm runs in the same pool, and adds its findings to each job's once both are done. With a
        ``cache``, a job whose inputs were rendered (and checked) before takes that result instead of running."""
        checks = f"{alongside.__module__}.{alongside.__qualname__}" if alongside else ""
        keys: dict[int, str] = {}
        todo = []
        for r in jobs:
            if r.job is None:
                continue
            if cache is not None:
                key = keys[id(r)] = self.cache_key(cache, r.job, checks)
                entry = cache.get("render", key)
                if entry is not None and _restore(r, entry):
                    continue
            todo.append(r)
        with ThreadPoolExecutor(max_workers=workers()) as pool:
            rendering = [pool.submit(self._template, r.job) for r in todo if r.job is not None]
            extra = alongside(self, pool, [r.job for r in todo if r.job is not None]) if alongside else None
            for r, fut in zip(todo, rendering, strict=True):
                assert r.job is not None
                output, problems = fut.result()
                if extra is not None:
                    problems += extra(r.job, bool(problems))
                documents = split_documents(output, r.job.chart)
                if cache is not None:
                    cache.put("render", keys[id(r)], _entry(output, documents, problems))
                r.documents, r.problems = documents, r.problems + problems
                r.sort()


def _entry(output: str, documents: list[Document], problems: list[Finding]) -> dict:
    """What is kept of a render: the parsed documents when JSON holds them exactly (parsing JSON is many times
    faster than parsing YAML again), else helm's output, parsed again when it is read."""
    entry: dict = {"problems": [p.to_dict() for p in problems]}
    objects = [d.obj for d in documents]
    try:
        exact = json.loads(json.dumps(objects)) == objects  # no dates, no keys that are not strings
    except (TypeError, ValueError):
        exact = False
    if exact:
        entry["documents"] = [{"text": d.text, "source": d.source, "obj": d.obj} for d in documents]
    else:
        entry["output"] = output
    return entry


def _restore(r: Rendered, entry: dict) -> bool:
    """A job's render and findings from a cache entry; False (a miss) when the entry is not one."""
    assert r.job is not None
    try:
        problems = [Finding(**p) for p in entry["problems"]]
        if "documents" in entry:
            documents = [Document(d["text"], d["obj"], d["source"]) for d in entry["documents"]]
        else:
            documents = split_documents(entry["output"], r.job.chart)
    except (KeyError, TypeError, ValueError, yaml.YAMLError):
        return False
    r.documents, r.problems = documents, r.problems + problems
    r.sort()
    return True


def _adopt(out: Rendered, job: HelmJob) -> None:
    out.job = job
    out.header.append(f"chart {job.where}, release {job.release_name}")
    out.header.extend(f"values {v.ref} -> {v.path}{_label(v.snapshot, '')}" for v in job.value_files)
    if job.extra_values:
        out.header.append("values from the Application (helm.valuesObject/values)")


def _label(snap: git.Snapshot, revision: str) -> str:
    return "" if snap.label == revision else f" ({snap.label})"


def _clean_set(value: str) -> str:
    """Argo CD's cleanSetParameters: escape commas unless the value is a helm list ``{a,b}``."""
    if value.startswith("{") and value.endswith("}"):
        return value
    return re.sub(r"(?<!\\),", r"\\,", value)


@contextmanager
def workspace() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gitops-render-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
