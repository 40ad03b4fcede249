"""Plain manifests (``platform/``, ``clusters/<name>/``): every YAML document under a folder, as files; data files
(upstream chart values, forms) are skipped and listed, and Applications of upstream sources are named in a note."""

from __future__ import annotations

from typing import Any

import yaml

from gitops import yamlio
from gitops.findings import Finding
from gitops.model import Repo, same_repo
from gitops.render.documents import Document, Rendered, chunks


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
        # A chart is rendered from its pinned copy, or named as not obtainable, by gitops.render.upstream.
        if not s.get("chart") and not same_repo(str(s.get("repoURL", ""))):
            notes.append(
                f"pinned, not rendered: Application {doc.name}: path {s.get('path', '.')} {s.get('targetRevision')}"
                f" from {s.get('repoURL')} (upstream, not a chart)"
            )
    return notes
