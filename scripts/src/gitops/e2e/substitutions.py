"""What the published config changes so it runs here, each change stated once and printed.

1. The repo URL (``https://github.com/azurelaboratory/gitops-monorepo.git``) becomes the local served.git.
2. Applications whose sources are upstream (charts from Helm repositories and OCI registries, other git repos)
   cannot be fetched here. Each becomes a stand-in: the same Application (name, project, destination, waves, sync
   policy) with one source, ``e2e-standins/<name>/`` of the served repo, holding the pinned CRDs that upstream
   would install (read from ``toolchain/versions.toml``'s ``[crds.*]``, as kubeconform's schemas are) and a
   ConfigMap ``e2e-standin-<name>`` saying what it replaces. What the upstream controllers would do at run time
   (accept Gateways and routes, ready ClusterIssuers, serve the metrics API) is ``gitops.e2e.standins``.
3. AppProject sync windows are dropped, so the run does not depend on the time of day.

Everything else — every Application, ApplicationSet, AppProject, chart and values file — is published as committed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from gitops.git import Snapshot
from gitops.yamlio import load_fast, load_manifests

UPSTREAM_URL = "https://github.com/azurelaboratory/gitops-monorepo.git"
# The repository itself, not a page of it: a link such as `.../gitops-monorepo/blob/main/docs/runbook.md` (a chart's
# runbookUrl, which its schema requires to be https) stays as it is.
URL_RE = re.compile(re.escape(UPSTREAM_URL.removesuffix(".git")) + r"(\.git)?(?![\w./-])")
CONFIG_DIRS = ("clusters/", "environments/", "platform/")
STANDIN_DIR = "e2e-standins"
GATEWAY_CONTROLLER = "gateway.nginx.org/nginx-gateway-controller"  # NGINX Gateway Fabric's controllerName


@dataclass(frozen=True)
class Note:
    what: str
    by: str

    def __str__(self) -> str:
        return f"{self.what}\n      → {self.by}"


def is_config(path: str) -> bool:
    return path.startswith(CONFIG_DIRS) and path.endswith((".yaml", ".yml"))


def _crd_texts(groups: tuple[str, ...]) -> dict[str, str]:
    """The pinned CRDs of these API groups, by CRD name, as `make tools` bundled them."""
    from gitops.schemas import crd_files

    out = {}
    for path in crd_files():
        doc = load_fast(path.read_text())
        if doc["spec"]["group"] in groups:
            out[doc["metadata"]["name"]] = path.read_text()
    return out


def _pin(name: str) -> str:
    from gitops.toolchain import crd_sources

    source = crd_sources()[name]
    return f"{source.module}@{source.version}"


@dataclass(frozen=True)
class Standin:
    kind: str  # which upstream it replaces: cert-manager, nginx-gateway-fabric, argocd-crds, ...
    namespace: str  # where its marker ConfigMap goes (the Application's destination namespace)
    replaces: str
    detail: str
    gateway_class: str = ""


@dataclass
class Substitutions:
    local_url: str
    notes: list[Note] = field(default_factory=list)
    _noted: set[str] = field(default_factory=set)
    _standins: dict[str, Standin] = field(default_factory=dict)  # by Application name
    _crd_cache: dict[str, dict[str, str]] = field(default_factory=dict)

    def note(self, what: str, by: str) -> None:
        if what not in self._noted:
            self._noted.add(what)
            self.notes.append(Note(what, by))

    # -- the transform ---------------------------------------------------------------------------------------------

    def __call__(self, snapshot: Snapshot) -> dict[str, str | None]:
        changes: dict[str, str | None] = {}
        url_files = 0
        for path in snapshot.files():
            if not is_config(path):
                continue
            text = snapshot.read(path) or ""
            new = URL_RE.sub(self.local_url, text)
            url_files += new != text
            docs = _load_all(new)
            if docs is not None and self._rewrite_docs(path, docs):
                new = f"# Published for the e2e by gitops.e2e.substitutions from {path}.\n" + yaml.safe_dump_all(
                    docs, sort_keys=False, width=120
                )
            if new != text:
                changes[path] = new
        for path, text in self._standin_files.items():
            changes[path] = text
        if not self.notes or not self.notes[0].what.startswith("repoURL"):
            self.notes.insert(0, Note(f"repoURL {UPSTREAM_URL} ({url_files} config files)", self.local_url))
        return changes

    def _rewrite_docs(self, path: str, docs: list) -> bool:
        changed = False
        for doc in docs:
            if not isinstance(doc, dict):
                continue
            if doc.get("kind") == "Application" and self._upstream_sources(doc):
                self._stand_in(path, doc)
                changed = True
            elif doc.get("kind") == "AppProject" and (doc.get("spec") or {}).get("syncWindows"):
                windows = doc["spec"].pop("syncWindows")
                self.note(
                    f"AppProject {doc['metadata']['name']} ({path}): {len(windows)} sync window(s)",
                    "dropped: automated syncs must not depend on the time of day the e2e runs",
                )
                changed = True
        return changed

    def _upstream_sources(self, app: dict) -> list[dict]:
        spec = app.get("spec") or {}
        sources = spec.get("sources") or ([spec["source"]] if spec.get("source") else [])
        return [s for s in sources if s.get("repoURL") != self.local_url]

    def _stand_in(self, path: str, app: dict) -> None:
        name = app["metadata"]["name"]
        upstream = self._upstream_sources(app)
        spec = app["spec"]
        spec.pop("sources", None)
        spec["source"] = {"repoURL": self.local_url, "targetRevision": "main", "path": f"{STANDIN_DIR}/{name}"}
        described = ", ".join(_describe(s) for s in upstream)
        kind, detail = self._standin_kind(upstream)
        self.note(f"Application {name} ({path}): {described}", f"{STANDIN_DIR}/{name}/: {detail}")
        values = ((upstream[0].get("helm") or {}).get("valuesObject") or {}) if upstream else {}
        self._standins[name] = Standin(
            kind=kind,
            namespace=(spec.get("destination") or {}).get("namespace") or "argocd",
            replaces=described,
            detail=detail,
            gateway_class=((values.get("nginxGateway") or {}).get("gatewayClassName") or "nginx"),
        )

    def _standin_kind(self, upstream: list[dict]) -> tuple[str, str]:
        charts = {s.get("chart") for s in upstream}
        urls = " ".join(s.get("repoURL", "") for s in upstream)
        paths = " ".join(s.get("path", "") for s in upstream)
        if "cert-manager" in charts:
            return "cert-manager", (
                f"the pinned cert-manager CRDs ({_pin('cert-manager')}); ClusterIssuers are made Ready by the "
                "e2e's stand-in controller (no ACME account, no certificates issued)"
            )
        if "nginx-gateway-fabric" in charts:
            return "nginx-gateway-fabric", (
                f"GatewayClass nginx ({GATEWAY_CONTROLLER}); the e2e's stand-in controller accepts its Gateways "
                "and their HTTPRoutes (no data plane: nothing is served)"
            )
        if "argo-cd" in charts:
            return "argo-cd", "nothing to deploy: Argo CD runs as local processes of the e2e (same version)"
        if "metrics-server" in charts:
            return "metrics-server", (
                "nothing to deploy: the e2e serves the metrics API itself, as AKS's managed metrics-server does "
                "(gitops.e2e.standins)"
            )
        if "argoproj/argo-cd" in urls and "manifests/crds" in paths:
            return "argocd-crds", f"Argo CD's CRDs from the pinned module ({_pin('argo-cd')}), the same files"
        if "gateway-api" in paths or "nginx-gateway-fabric" in urls:
            return "gateway-crds", (
                f"the pinned Gateway API standard CRDs ({_pin('gateway-api')}); NGINX Gateway Fabric's own CRDs "
                "(NginxProxy, policies) are not pinned here and are left out"
            )
        return "unknown", "nothing but the marker ConfigMap: no stand-in is defined for this upstream"

    # -- the stand-in folders --------------------------------------------------------------------------------------

    @property
    def _standin_files(self) -> dict[str, str]:
        files = {}
        for name, standin in sorted(self._standins.items()):
            base = f"{STANDIN_DIR}/{name}"
            files[f"{base}/standin.yaml"] = _marker(name, standin)
            for crd_name, text in self._crds(standin.kind).items():
                files[f"{base}/{crd_name}.yaml"] = text
        return files

    def _crds(self, kind: str) -> dict[str, str]:
        groups = {
            "cert-manager": ("cert-manager.io", "acme.cert-manager.io"),
            "gateway-crds": ("gateway.networking.k8s.io",),
            "argocd-crds": ("argoproj.io",),
        }.get(kind)
        if not groups:
            return {}
        if kind not in self._crd_cache:
            self._crd_cache[kind] = _crd_texts(groups)
        return self._crd_cache[kind]


def _describe(source: dict) -> str:
    what = (
        f"chart {source['chart']} {source.get('targetRevision', '')}"
        if source.get("chart")
        else (f"{source.get('path') or '/'} at {source.get('targetRevision', 'HEAD')}")
    )
    return f"{what} from {source.get('repoURL')}"


def _marker(name: str, standin: Standin) -> str:
    docs = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"e2e-standin-{name}",
                "namespace": standin.namespace,
                "labels": {"app.kubernetes.io/managed-by": "gitops-e2e"},
            },
            "data": {"replaces": standin.replaces, "standIn": standin.detail},
        }
    ]
    if standin.kind == "nginx-gateway-fabric":
        docs.append(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "GatewayClass",
                "metadata": {"name": standin.gateway_class},
                "spec": {"controllerName": GATEWAY_CONTROLLER},
            }
        )
    header = f"# Stand-in for Application {name}, written by gitops.e2e.substitutions: {standin.replaces}.\n"
    return header + yaml.safe_dump_all(docs, sort_keys=False, width=120)


def _load_all(text: str) -> list | None:
    try:
        return [d for d in load_manifests(text) if d is not None]
    except yaml.YAMLError:
        return None
