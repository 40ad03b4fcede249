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
(``gitops.upstream_charts``); one that cannot be had here, and upstream sources that are not charts, are named in a
note, never rendered from anything else.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gitops import capabilities, git, helmlint, upstream_charts, yamlio
from gitops.appset import Application, expand
from gitops.errors import GitopsError
from gitops.findings import Finding
from gitops.repo import TRACKED_BRANCH, Environment, Repo, same_repo
from gitops.toolchain import ToolMissing, tool_path

DOC_SPLIT = re.compile(r"^---[ \t]*(?:#.*)?$\n?", re.M)
HELM_SOURCE = re.compile(r"^# Source: (\S+)", re.M)
SCHEMA_ERROR = helmlint.SCHEMA_ERROR
# helm runs for a tenth of a second, most of it Go start-up; garbage collection there is pure overhead (about a third
# of the CPU). The memory limit brings the collector back should a render ever grow large.
SHORT_LIVED_GO = {"GOGC": "off", "GOMEMLIMIT": "1GiB"}


def workers() -> int:
    """Helm renders are separate processes, so threads parallelise them; one per core keeps the machine busy."""
    return max(2, os.cpu_count() or 2)


@dataclass
class Document:
    """One rendered object, with the YAML text as helm (or the file) wrote it."""

    text: str
    obj: Any
    source: str  # repo path of the template or file it came from
    line: int | None = None  # where the document starts in ``source`` (plain files only)

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", "")) if isinstance(self.obj, dict) else ""

    @property
    def api_version(self) -> str:
        return str(self.obj.get("apiVersion", "")) if isinstance(self.obj, dict) else ""

    @property
    def metadata(self) -> dict:
        meta = self.obj.get("metadata") if isinstance(self.obj, dict) else None
        return meta if isinstance(meta, dict) else {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", "") or "")

    @property
    def never_applied(self) -> bool:
        """A Helm hook Argo CD has no phase for (``test``…): rendered, validated, never synced."""
        annotations = self.metadata.get("annotations") or {}
        if "argocd.argoproj.io/hook" in annotations or "helm.sh/hook" not in annotations:
            return False
        mapped = {"pre-install", "pre-upgrade", "post-install", "post-upgrade", "crd-install"}
        return not any(t.strip() in mapped for t in str(annotations["helm.sh/hook"]).split(","))

    def sort_key(self) -> tuple[str, str, str, str]:
        return (self.kind, self.namespace, self.name, self.source)


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


@dataclass
class Rendered:
    """What one Application (or one plain-manifest folder) renders to."""

    env: str
    app: str
    title: str  # the Application name, or the folder
    header: list[str]  # comment lines naming the Application and its sources
    documents: list[Document] = field(default_factory=list)
    problems: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. upstream charts: pinned, not rendered
    job: HelmJob | None = None

    def sort(self) -> None:
        self.documents.sort(key=Document.sort_key)


@dataclass
class EnvRender:
    env: str
    applications: list[Application]
    rendered: list[Rendered]
    problems: list[Finding]  # from the ApplicationSet; each Rendered has its own

    def all_problems(self) -> list[Finding]:
        return self.problems + [p for r in self.rendered for p in r.problems]


class RevisionError(GitopsError):
    pass


class Renderer:
    """Renders Applications of one repository model; reuse it for every environment of one run (shared caches)."""

    def __init__(self, repo: Repo, workdir: Path) -> None:
        try:
            self.helm = tool_path("helm")
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
        chart_dir, values, extra = self.materialize(job)
        args = [
            str(self.helm),
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
        proc = subprocess.run(args, cwd=chart_dir, env=self.env, capture_output=True, text=True)
        if proc.returncode != 0:
            return [], helm_failure(self.repo, job, proc.stderr, check="render")
        return split_documents(proc.stdout, job.chart), []

    # -- environments --------------------------------------------------------------------------------------------

    def render_envs(self, envs: list[Environment], only_app: str | None = None, lint: bool = False) -> list[EnvRender]:
        """Every environment's Applications, all helm runs in one pool (with ``lint``, `helm lint --strict` too)."""
        results: list[EnvRender] = []
        jobs: list[Rendered] = []
        for env in envs:
            expansion = expand(self.repo, env)
            apps = [a for a in expansion.applications if only_app is None or a.app == only_app]
            rendered = [self.plan(a) for a in sorted(apps, key=lambda a: (a.app, a.name))]
            jobs.extend(r for r in rendered if r.job is not None)
            results.append(EnvRender(env.name, apps, rendered, expansion.problems))
        self.run(jobs, lint)
        return results

    def run(self, jobs: list[Rendered], lint: bool = False) -> None:
        """Every planned job's `helm template` (with ``lint``, `helm lint --strict` too) in one pool."""
        jobs = [r for r in jobs if r.job is not None]
        with ThreadPoolExecutor(max_workers=workers()) as pool:
            rendering = [pool.submit(self.template, r.job) for r in jobs if r.job is not None]
            linting = self._lint(pool, [r.job for r in jobs if r.job is not None]) if lint else []
            lint_output: dict[int, str] = {}
            for fut in linting:
                lint_output.update(fut.result())
            for r, fut in zip(jobs, rendering, strict=True):
                assert r.job is not None
                docs, problems = fut.result()
                if lint:
                    problems += helmlint.lint_failure(r.job, lint_output.get(id(r.job), ""), bool(problems))
                r.documents, r.problems = docs, r.problems + problems
                r.sort()

    def _lint(self, pool: ThreadPoolExecutor, jobs: list[HelmJob]) -> list:
        """`helm lint --strict` of every job: batched, a few processes per environment so every core has one."""
        per_batch = max(1, -(-len(jobs) // (2 * workers())))
        groups, alone = helmlint.batches(jobs, per_batch)
        futures = [pool.submit(helmlint.lint_batch, self, group) for group in groups]
        futures += [pool.submit(lambda j: {id(j): helmlint.lint_one(self, j)}, job) for job in alone]
        return futures


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


def chunks(text: str) -> list[tuple[int, str]]:
    """The documents of a multi-document YAML text, each with the 1-based line it starts on."""
    out, pos, line = [], 0, 1
    for m in DOC_SPLIT.finditer(text):
        out.append((line, text[pos : m.start()]))
        line += text.count("\n", pos, m.end())
        pos = m.end()
    out.append((line, text[pos:]))
    return out


def split_documents(text: str, chart: str) -> list[Document]:
    """helm's output, one Document per object; ``# Source: <chart-name>/templates/x.yaml`` → repo path."""
    docs = []
    for _, chunk in chunks(text):
        body = chunk.strip("\n")
        if not body.strip():
            continue
        obj = yamlio.load_fast(body)
        if obj is None:
            continue
        m = HELM_SOURCE.search(body)
        source = f"{chart}/{m.group(1).split('/', 1)[1]}" if m and "/" in m.group(1) else chart
        docs.append(Document(body + "\n", obj, source))
    return docs


# helm reports schema problems as lines such as "- at '/autoscaling/maxReplicas': maximum: got 500, want 100".
SCHEMA_LINE = re.compile(r"^(\s*)-\s*at\s+'([^']*)':\s*(.+)$", re.M)
ADDITIONAL = re.compile(r"additional properties? ((?:'[^']+'(?:, )?)+) not allowed")
TEMPLATE_LOC = re.compile(r"(?:^|[\s(])[\w.-]+/(templates/[^\s:()]+)(?::(\d+))?", re.M)


def helm_failure(repo: Repo, job: HelmJob, output: str, *, check: str) -> list[Finding]:
    """A failed `helm template` as findings: schema violations pinned to the overlay line that caused them."""
    base = {"env": job.env, "app": job.app}
    if SCHEMA_ERROR in output:
        return schema_findings(repo, job, output)
    m = TEMPLATE_LOC.search(output)
    file = f"{job.chart}/{m.group(1)}" if m else job.chart
    line = int(m.group(2)) if m and m.group(2) else None
    return [Finding(check, f"helm template at {job.where}: {helmlint.squash(output)}", file=file, line=line, **base)]


def schema_findings(repo: Repo, job: HelmJob, output: str) -> list[Finding]:
    findings = []
    seen = set()
    schema = _json_or_none((job.files[0] / "values.schema.json").read_text()) if job.files else None
    matches = SCHEMA_LINE.findall(output)
    for n, (indent, pointer, message) in enumerate(matches):
        # "validation failed" only announces the nested lines that follow it.
        nested = n + 1 < len(matches) and len(matches[n + 1][0]) > len(indent)
        if message.strip() == "validation failed" and nested:
            continue
        key = (pointer, message.strip())
        if key in seen:
            continue
        seen.add(key)
        extra = ADDITIONAL.search(message)
        at = f"{pointer.rstrip('/')}/{extra.group(1).split(',')[0].strip().strip(chr(39))}" if extra else pointer
        file, line = locate_value(repo, job, at)
        findings.append(
            Finding(
                "values-schema",
                f"values {pointer or '/'}: {message.strip()}{_expected(schema, pointer)}"
                f" (schema {job.chart}/values.schema.json)",
                env=job.env,
                app=job.app,
                file=file,
                line=line,
            )
        )
    if not findings:
        findings.append(
            Finding(
                "values-schema",
                helmlint.squash(output),
                env=job.env,
                app=job.app,
                file=f"{job.chart}/values.schema.json",
            )
        )
    return findings


def _expected(schema: Any, pointer: str) -> str:
    """The schema's own description of the value, which says what was expected (helm's messages often do not)."""
    node = schema
    for part in [p for p in pointer.strip("/").split("/") if p]:
        props = node.get("properties") if isinstance(node, dict) else None
        if isinstance(props, dict) and part in props:
            node = props[part]
        elif isinstance(node, dict) and isinstance(node.get("items"), dict) and part.isdigit():
            node = node["items"]
        else:
            return ""
    description = node.get("description") if isinstance(node, dict) and pointer.strip("/") else None
    return f"; expected: {description}" if description else ""


def locate_value(repo: Repo, job: HelmJob, pointer: str) -> tuple[str, int | None]:
    """The file (and line) that set the value at a JSON pointer: the last overlay that has it, else the chart."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.strip("/").split("/") if p]
    keys: list[str | int] = [int(p) if p.isdigit() else p for p in parts]
    # valuesObject wins over the value files: a value it sets came from the release (the generator's file).
    if job.extra_values and keys and _has(_json_or_none(job.extra_values), keys[:1]):
        if job.locate is not None:
            return job.locate(keys)
        ae = repo.app_envs.get((job.env, job.app))
        line = ae.release.line(*[str(k) for k in keys]) if ae and ae.release else None
        return job.application.params_file, line
    for vf in reversed(job.value_files):
        text = vf.snapshot.read(vf.path)
        try:
            data = yamlio.load(text or "", vf.path)
        except yamlio.YamlError:
            continue
        node, found = data, True
        for k in keys:
            in_map = isinstance(node, dict) and k in node
            if in_map or (isinstance(node, list) and isinstance(k, int) and k < len(node)):
                node = node[k]
            else:
                found = False
                break
        if found and keys:
            return vf.path, yamlio.line_of(data, *keys)
        # An unknown key is reported at its parent: find the deepest existing prefix in this overlay.
        for n in range(len(keys) - 1, 0, -1):
            if _has(data, keys[:n]):
                return vf.path, yamlio.line_of(data, *keys[:n])
    return f"{job.chart}/values.yaml", None


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _has(data: Any, keys: list) -> bool:
    node = data
    for k in keys:
        if isinstance(node, dict) and k in node:
            node = node[k]
        else:
            return False
    return True


# -- plain manifests (platform/, clusters/<name>/) ---------------------------------------------------------------


def render_plain(repo: Repo, folder: str) -> Rendered:
    """Every manifest under a folder, as files; data files (upstream chart values) are skipped and listed."""
    out = Rendered("", folder, folder, [f"plain manifests under {folder}/ ({repo.snapshot.label})"])
    files = [
        f for f in repo.snapshot.files() if f.startswith(folder.rstrip("/") + "/") and f.endswith((".yaml", ".yml"))
    ]
    if not files:
        out.problems.append(Finding("render", f"{folder}/ has no YAML files", file=folder))
    for path in files:
        text = repo.read(path) or ""
        parsed: list[tuple[int, str, Any]] = []
        try:
            for start, chunk in chunks(text):
                obj = yamlio.load_fast(chunk)
                if obj is not None:
                    parsed.append((start, chunk, obj))
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = start + mark.line if mark else start
            out.problems.append(Finding("yaml", str(getattr(e, "problem", None) or e), file=path, line=line))
            continue
        if not any(isinstance(o, dict) and "kind" in o and "apiVersion" in o for _, _, o in parsed):
            out.notes.append(f"not a manifest (no apiVersion/kind), skipped: {path}")
            continue
        for start, chunk, obj in parsed:
            if not (isinstance(obj, dict) and obj.get("kind") and obj.get("apiVersion")):
                out.problems.append(
                    Finding(
                        "render", "a document without apiVersion and kind in a manifest file", file=path, line=start
                    )
                )
                continue
            doc = Document(chunk.strip("\n") + "\n", obj, path, start)
            out.documents.append(doc)
            out.notes.extend(_upstream_note(doc))
    out.sort()
    return out


def _upstream_note(doc: Document) -> list[str]:
    if doc.kind != "Application" or not doc.api_version.startswith("argoproj.io/"):
        return []
    spec = doc.obj.get("spec") or {}
    notes = []
    for s in spec.get("sources") or ([spec["source"]] if spec.get("source") else []):
        # A chart is rendered from its pinned copy, or named as not obtainable, by gitops.upstream_charts.
        if not s.get("chart") and not same_repo(str(s.get("repoURL", ""))):
            notes.append(
                f"pinned, not rendered: Application {doc.name}: path {s.get('path', '.')} {s.get('targetRevision')}"
                f" from {s.get('repoURL')} (upstream, not a chart)"
            )
    return notes


# -- output ----------------------------------------------------------------------------------------------------


def format_applications(applications: Iterable[Application]) -> str:
    parts = []
    for a in sorted(applications, key=lambda a: a.name):
        parts.append(f"---\n# Generated by {a.appset_file} from {a.params_file}\n{yamlio.dump(a.manifest)}")
    return "".join(parts)


def format_rendered(r: Rendered) -> str:
    """One Application's manifests: its sources once, then each document under a line naming the Application."""
    parts = ["\n"] + [f"# {line}\n" for line in r.header] + [f"# note: {note}\n" for note in r.notes]
    # The same on every render of the same Application, whatever ref it was read at: diffs show manifests only.
    tag = f"# {r.title}" + (f" · {r.job.chart}@{r.job.revision}" if r.job else "") + "\n"
    for doc in r.documents:
        extra = "# never applied by Argo CD: a Helm hook it has no sync phase for\n" if doc.never_applied else ""
        parts.append(f"---\n{tag}{extra}{doc.text}")
    return "".join(parts)


@contextmanager
def workspace() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gitops-render-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
