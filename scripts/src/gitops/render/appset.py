"""Expanding an environment's ApplicationSet into Applications, the way Argo CD's ApplicationSet controller does.

Implemented: the git *files* generator (the one this repo uses) with ``goTemplate: true``. As in Argo CD v3.6
(``applicationset/generators/repo_path_utils.go``), each matching file's keys become template parameters, plus
``.path.path`` (the file's directory), ``.path.basename``, ``.path.filename``, ``.path.basenameNormalized``,
``.path.filenameNormalized`` and ``.path.segments``; files are listed like ``git ls-files -- <glob>`` and sorted.
Every string of the template (map keys included, ``helm.valuesObject`` too) is executed as a Go template with the
ApplicationSet's ``goTemplateOptions``; with ``missingkey=error`` an unknown key is an error. The generated
Application gets the ApplicationSet's namespace and, unless the template sets finalizers, Argo CD's resources
finalizer. Other generators, ``templatePatch`` and template functions are refused, not approximated.
"""

from __future__ import annotations

import copy
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from gitops import git, yamlio
from gitops.findings import Finding
from gitops.model import TRACKED_BRANCH, Environment, Repo, same_repo
from gitops.render import gotemplate

RESOURCES_FINALIZER = "resources-finalizer.argocd.argoproj.io"
DEFAULT_NAMESPACE = "argocd"
CHECK = "applicationset"


@dataclass
class Application:
    """An Application as the ApplicationSet controller would create it, with where it came from."""

    name: str
    env: str
    app: str  # the generator file's directory name: the app folder in the environment
    params_file: str  # the file whose keys parameterised it (release.yaml)
    appset_file: str
    manifest: dict

    @property
    def spec(self) -> dict:
        return self.manifest.get("spec") or {}

    @property
    def sources(self) -> list[dict]:
        """``spec.sources``, or ``[spec.source]`` for a single-source Application."""
        if self.spec.get("sources"):
            return list(self.spec["sources"])
        return [self.spec["source"]] if self.spec.get("source") else []

    @property
    def destination_namespace(self) -> str:
        return str((self.spec.get("destination") or {}).get("namespace") or "")


@dataclass
class Expansion:
    env: str
    appset_file: str
    applications: list[Application] = field(default_factory=list)
    problems: list[Finding] = field(default_factory=list)


def sanitize_name(name: str) -> str:
    """Argo CD's ``utils.SanitizeName`` (``basenameNormalized``): a DNS-1123-ish name."""
    name = re.sub(r"[^-a-z0-9.]", "-", name.lower())[:253]
    return name.strip("-.")


def path_params(file_path: str) -> dict[str, Any]:
    directory = posixpath.dirname(file_path)
    basename = posixpath.basename(directory)
    filename = posixpath.basename(file_path)
    return {
        "path": directory,
        "basename": basename,
        "filename": filename,
        "basenameNormalized": sanitize_name(basename),
        "filenameNormalized": sanitize_name(filename),
        "segments": directory.split("/"),
    }


def expand(repo: Repo, env: Environment) -> Expansion:
    """The Applications ``environments/<env>/applicationset.yaml`` generates; problems are collected, not raised."""
    out = Expansion(env.name, env.appset_file)
    path = env.appset_file

    def problem(message: str, *, line: int | None = None, app: str = "", file: str = path) -> None:
        out.problems.append(Finding(CHECK, message, env=env.name, app=app, file=file, line=line))

    text = repo.read(path)
    if text is None:
        problem("missing: every environment has one ApplicationSet generating its Applications")
        return out
    try:
        docs = yamlio.load_all(text, path)
    except yamlio.YamlError as e:
        out.problems.append(Finding("yaml", e.message, env=env.name, file=path, line=e.line))
        return out
    appsets = [d for d in docs if isinstance(d, dict) and d.get("kind") == "ApplicationSet"]
    if len(appsets) != 1 or len(docs) != 1:
        problem(
            f"expected exactly one ApplicationSet document, found {len(docs)} document(s),"
            f" {len(appsets)} ApplicationSet(s)"
        )
        if not appsets:
            return out
    appset = appsets[0]
    spec = appset.get("spec") if isinstance(appset.get("spec"), dict) else {}
    if spec.get("goTemplate") is not True:
        problem(
            "spec.goTemplate must be true (Go templates with missingkey=error, as Argo CD advises)",
            line=yamlio.line_of(appset, "spec", "goTemplate"),
        )
        return out
    options = [str(o) for o in (spec.get("goTemplateOptions") or [])]
    if "missingkey=error" not in options:
        problem(
            "spec.goTemplateOptions must include missingkey=error,"
            " so a typo in a key fails instead of rendering '<no value>'",
            line=yamlio.line_of(appset, "spec", "goTemplateOptions") or yamlio.line_of(appset, "spec"),
        )
    if "templatePatch" in spec:
        problem(
            "spec.templatePatch is not supported by `gitops render`: keep everything in spec.template",
            line=yamlio.line_of(appset, "spec", "templatePatch"),
        )
    template = spec.get("template")
    if not isinstance(template, dict):
        problem("spec.template is missing", line=yamlio.line_of(appset, "spec"))
        return out
    generators = spec.get("generators") or []
    if len(generators) != 1 or not isinstance(generators[0], dict) or set(generators[0]) - {"git", "selector"}:
        problem(
            "expected exactly one generator, a git files generator", line=yamlio.line_of(appset, "spec", "generators")
        )
        return out
    gen = generators[0].get("git") or {}
    gen_line = yamlio.line_of(appset, "spec", "generators", 0, "git")
    if gen.get("directories") or not gen.get("files"):
        problem(
            "the git generator must list `files` (release.yaml of each app); directories are not supported",
            line=gen_line,
        )
        return out
    if not same_repo(str(gen.get("repoURL", ""))):
        problem(
            f"the git generator reads {gen.get('repoURL')!r}, not this repository",
            line=yamlio.line_of(appset, "spec", "generators", 0, "git", "repoURL"),
        )

    snap = _generator_snapshot(repo, str(gen.get("revision") or "HEAD"), problem, gen_line)
    if snap is None:
        return out
    files = _match_files(snap, gen["files"])
    seen_names: dict[str, str] = {}
    sync_policy = spec.get("syncPolicy") or {}
    for file_path in files:
        params_list = _file_params(snap, file_path, env, out)
        for params in params_list:
            params = {**params, "path": path_params(file_path)}
            app = params["path"]["basename"]
            values = gen.get("values") or {}
            try:
                if values:
                    params["values"] = {str(k): gotemplate.render(str(v), params, options) for k, v in values.items()}
                rendered = _render_node(template, params, options, ("spec", "template"))
            except _NodeError as e:
                keys = ", ".join(sorted(k for k in params if k != "path"))
                problem(
                    f"{e.where}: template {e.error.expression} {e.error.message}; parameters come from {file_path}"
                    f" (its keys: {keys or 'none'}) and .path",
                    line=yamlio.line_of(appset, *e.path),
                    app=app,
                )
                continue
            manifest = _application(rendered, appset, sync_policy)
            name = manifest["metadata"].get("name", "")
            if not name:
                problem(
                    "the template generates an Application without a name",
                    line=yamlio.line_of(appset, "spec", "template", "metadata"),
                    app=app,
                )
                continue
            if name in seen_names:
                problem(f"Application {name!r} is generated twice (from {seen_names[name]} and {file_path})", app=app)
                continue
            seen_names[name] = file_path
            out.applications.append(Application(name, env.name, app, file_path, path, manifest))
    return out


def _generator_snapshot(repo: Repo, revision: str, problem, line) -> git.Snapshot | None:
    # The generator follows the tracked branch: that is the snapshot being rendered (work tree or --ref).
    if revision in (TRACKED_BRANCH, "HEAD", ""):
        return repo.snapshot
    try:
        return git.Commit(repo.root, revision)
    except git.GitError:
        problem(f"the git generator's revision {revision!r} names no commit in this repository", line=line)
        return None


def _match_files(snap: git.Snapshot, patterns: list) -> list[str]:
    included: set[str] = set()
    excluded: set[str] = set()
    for p in patterns:
        if not isinstance(p, dict) or not p.get("path"):
            continue
        matches = snap.glob(str(p["path"]))
        (excluded if p.get("exclude") else included).update(matches)
    return sorted(included - excluded)


def _file_params(snap: git.Snapshot, file_path: str, env: Environment, out: Expansion) -> list[dict]:
    """A file's parameters: one mapping, or a list of mappings (one Application each), as Argo CD accepts."""
    text = snap.read(file_path) or ""
    app = posixpath.basename(posixpath.dirname(file_path))
    try:
        data = yamlio.plain(yamlio.load(text, file_path))
    except yamlio.YamlError as e:
        out.problems.append(Finding("yaml", e.message, env=env.name, app=app, file=file_path, line=e.line))
        return []
    if data is None:
        return [{}]
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list) and all(isinstance(d, dict) for d in data):
        return data
    out.problems.append(
        Finding(
            CHECK,
            "a generator file must hold a mapping (or a list of mappings)",
            env=env.name,
            app=app,
            file=file_path,
            line=1,
        )
    )
    return []


class _NodeError(Exception):
    def __init__(self, path: tuple, error: gotemplate.TemplateError) -> None:
        self.path = path
        self.error = error
        self.where = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in path).replace(".[", "[")


def _render_node(node: Any, params: dict, options: list[str], path: tuple) -> Any:
    """Every string, and every map key, executed as a template (Argo CD's deeplyReplace)."""
    try:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                key = gotemplate.render(str(k), params, options)
                out[key] = _render_node(v, params, options, (*path, k))
            return out
        if isinstance(node, list):
            return [_render_node(v, params, options, (*path, i)) for i, v in enumerate(node)]
        if isinstance(node, str):
            return gotemplate.render(str(node), params, options)
    except gotemplate.TemplateError as e:
        raise _NodeError(path, e) from None
    return yamlio.plain(node)


def _application(rendered: dict, appset: dict, sync_policy: dict) -> dict:
    metadata = copy.deepcopy(rendered.get("metadata") or {})
    # The controller creates Applications in the ApplicationSet's own namespace, whatever the template says.
    metadata["namespace"] = str((appset.get("metadata") or {}).get("namespace") or DEFAULT_NAMESPACE)
    if not metadata.get("finalizers") and not sync_policy.get("preserveResourcesOnDeletion"):
        metadata["finalizers"] = [RESOURCES_FINALIZER]
    ordered = {k: metadata[k] for k in ("name", "namespace", "labels", "annotations", "finalizers") if k in metadata}
    ordered.update({k: v for k, v in metadata.items() if k not in ordered})
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": ordered,
        "spec": rendered.get("spec") or {},
    }
