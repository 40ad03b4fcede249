"""What a render is made of: each object as helm (or a manifest file) wrote it, grouped per Application or folder."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gitops import yamlio
from gitops.findings import Finding

if TYPE_CHECKING:
    from gitops.render.appset import Application
    from gitops.render.helm import HelmJob

DOC_SPLIT = re.compile(r"^---[ \t]*(?:#.*)?$\n?", re.M)
HELM_SOURCE = re.compile(r"^# Source: (\S+)", re.M)


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
