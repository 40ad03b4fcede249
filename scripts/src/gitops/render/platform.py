"""The platform's Applications of upstream charts (``platform/``, ``clusters/*/``), rendered and checked like apps.

Each Application manifest under those folders whose source is a chart is planned by the same ``Renderer`` that
renders the environments — ``helm template`` of the pinned chart with the Application's releaseName, destination
namespace, value files and valuesObject, as Argo CD's repo-server runs it — so `gitops render` shows what it applies
and `gitops validate` checks it: the chart's ``values.schema.json`` (helm, while rendering) or, for a chart without
one, its default values (``gitops.checks.chartvalues``); ``helm lint --strict``; kubeconform and ``--live`` on its
output.
A problem in the values is reported at its line in the platform file, naming the Application.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from gitops import yamlio
from gitops.findings import Finding
from gitops.model import Repo
from gitops.render.appset import Application
from gitops.render.documents import Document, Rendered
from gitops.render.helm import Alongside, HelmJob, Renderer, ResultCache


def applications(plain: list[Rendered]) -> list[tuple[Document, Application]]:
    """The Application manifests of the plain folders that install a chart, each as the renderer plans one."""
    out = []
    for folder in plain:
        for doc in folder.documents:
            if doc.kind != "Application" or not doc.api_version.startswith("argoproj.io/"):
                continue
            spec = doc.obj.get("spec") or {}
            sources = spec.get("sources") or ([spec["source"]] if spec.get("source") else [])
            if any(isinstance(s, dict) and s.get("chart") for s in sources):
                app = Application(
                    name=doc.name, env="", app="", params_file=doc.source, appset_file=doc.source, manifest=doc.obj
                )
                out.append((doc, app))
    return out


def render_platform(
    renderer: Renderer,
    plain: list[Rendered],
    alongside: Alongside | None = None,
    check: Callable[[HelmJob, list[Finding]], list[Finding]] | None = None,
    cache: ResultCache | None = None,
) -> list[Rendered]:
    """What each chart Application of ``plain`` applies. A check beside the renders (``alongside``: helm lint) and
    one of each rendered job (``check``: its values against the chart) add their findings. With a ``cache``, a render
    (and ``alongside``'s findings) whose inputs are unchanged is taken from it; ``check`` runs every time."""
    planned = []
    for doc, app in applications(plain):
        r = renderer.plan(app)
        if r.job is not None:
            r.job.locate = lambda keys, doc=doc: (doc.source, _line(renderer.repo, doc, "helm", "valuesObject", *keys))
        r.notes = [f"{doc.source} Application/{app.name}: {note}" for note in r.notes]
        # A chart that is not pinned, or not cached as pinned: point at the source's targetRevision.
        if any(p.file == doc.source and p.line is None for p in r.problems):
            revision = _line(renderer.repo, doc, "targetRevision")
            r.problems = [
                dataclasses.replace(p, line=revision) if p.file == doc.source and p.line is None else p
                for p in r.problems
            ]
        planned.append(r)
    renderer.run(planned, alongside, cache)
    for r in planned:
        if check is not None and r.job is not None:
            renderer.materialize(r.job)  # a render taken from the cache has not written the values files
            r.problems = check(r.job, r.problems)
        # Values problems name the platform file and line; say which Application, as for every other finding there.
        r.problems = [p if p.kind else dataclasses.replace(p, kind="Application", name=r.title) for p in r.problems]
    return planned


def _line(repo: Repo, doc: Document, *keys: str | int) -> int | None:
    """The line of ``<chart source>.<keys>`` of the Application in its file (the deepest part of it found)."""
    text = repo.read(doc.source) or ""
    try:
        nodes = yamlio.load_all(text, doc.source)
    except yamlio.YamlError:
        return doc.line
    for node in nodes:
        meta = node.get("metadata") if isinstance(node, dict) else None
        if not isinstance(meta, dict) or node.get("kind") != "Application" or meta.get("name") != doc.name:
            continue
        spec = node.get("spec") or {}
        if spec.get("source"):
            return yamlio.line_of(node, "spec", "source", *keys)
        index = next((i for i, s in enumerate(spec.get("sources") or []) if s.get("chart")), 0)
        return yamlio.line_of(node, "spec", "sources", index, *keys)
    return doc.line


def notes(rendered: list[Rendered]) -> list[str]:
    return [note for r in rendered for note in r.notes]
