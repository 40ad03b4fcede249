"""What the published config changes so it runs here, each change stated once and printed.

1. The repo URL (``https://github.com/azurelaboratory/gitops-monorepo.git``) becomes the local served.git.
2. Applications whose sources are upstream (charts from Helm repositories and OCI registries, other git repos)
   cannot be fetched here. Where the pinned chart is in the toolchain cache (``[charts.*]`` of
   ``toolchain/versions.toml``) and what it deploys can run under kwok, the chart itself is published, at
   ``e2e-upstream/<name>/`` of the served repo, and the Application keeps its own helm settings (release name,
   values): Argo CD renders and applies the real thing. Only the admission webhook configurations are left out of
   it, named in the note: the apiserver would call a webhook server no pod runs here, and refuse every object it
   guards. Every other upstream becomes a stand-in: the same Application (name, project, destination, waves, sync
   policy) with one source, ``e2e-standins/<name>/`` of the served repo, holding the pinned CRDs that upstream
   would install (read from ``[crds.*]``, as kubeconform's schemas are) and a ConfigMap ``e2e-standin-<name>``
   saying what it replaces. What the upstream controllers would do at run time (accept Gateways and routes, ready
   ClusterIssuers, serve the metrics API) is ``e2e.standins``.
3. AppProject sync windows are dropped, so the run does not depend on the time of day.

Everything else — every Application, ApplicationSet, AppProject, chart and values file — is published as committed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from gitops.errors import GitopsError
from gitops.git import Snapshot
from gitops.yamlio import load_fast, load_manifests

UPSTREAM_URL = "https://github.com/azurelaboratory/gitops-monorepo.git"
# The repository itself, not a page of it: a link such as `.../gitops-monorepo/blob/main/docs/runbook.md` (a chart's
# runbookUrl, which its schema requires to be https) stays as it is.
URL_RE = re.compile(re.escape(UPSTREAM_URL.removesuffix(".git")) + r"(\.git)?(?![\w./-])")
CONFIG_DIRS = ("clusters/", "environments/", "platform/")
STANDIN_DIR = "e2e-standins"
UPSTREAM_DIR = "e2e-upstream"
# Upstreams whose real chart replaces the stand-in when it is cached, and what the e2e still does in their place: their
# pods run under kwok, where nothing executes. metrics-server stays a stand-in: AKS manages its own (the clusters leave
# platform/metrics-server out) and the e2e serves the metrics API as AKS does, which a second APIService would fight.
# Argo CD's chart would install a second Argo CD beside the e2e's. NGINX Gateway Fabric's chart is not obtainable.
DEPLOYABLE = {
    "cert-manager": "ClusterIssuers are made Ready by the e2e's stand-in controller (no ACME account, no certificates "
    "issued)",
}
WEBHOOK_KINDS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
KIND_LINE = re.compile(r"^kind:\s*(\S+)", re.M)
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
    from gitops.toolchain.schemas import crd_files

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
    _charts: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)  # by Application: (kind, files)
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
                new = f"# Published for the e2e by e2e.substitutions from {path}.\n" + yaml.safe_dump_all(
                    docs, sort_keys=False, width=120
                )
            if new != text:
                changes[path] = new
        for path, text in self._standin_files.items():
            changes[path] = text
        for _, files in self._charts.values():
            changes.update(files)
        if not self.notes or not self.notes[0].what.startswith("repoURL"):
            self.notes.insert(0, Note(f"repoURL {UPSTREAM_URL} ({url_files} config files)", self.local_url))
        return changes

    def _rewrite_docs(self, path: str, docs: list) -> bool:
        changed = False
        for doc in docs:
            if not isinstance(doc, dict):
                continue
            if doc.get("kind") == "Application" and self._upstream_sources(doc):
                if not self._real_chart(path, doc):
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

    def _real_chart(self, path: str, app: dict) -> bool:
        """Publish the pinned chart for Argo CD to render, if it is cached and deployable here; False otherwise."""
        from gitops.render.upstream import resolve

        upstream = self._upstream_sources(app)
        kind, _ = self._standin_kind(upstream)
        if len(upstream) != 1 or kind not in DEPLOYABLE:
            return False
        source, name = upstream[0], app["metadata"]["name"]
        chart = resolve(source)
        if chart.problem:  # not fetched, or not the pinned chart: never a stand-in in its place unannounced
            raise GitopsError(f"Application {name} ({path}): {chart.problem}")
        if chart.chart_dir is None:
            return False  # not obtainable here: the stand-in, which the notes name
        base = f"{UPSTREAM_DIR}/{name}"
        files, left_out = {}, []
        for file in sorted(p for p in chart.chart_dir.rglob("*") if p.is_file()):
            rel = file.relative_to(chart.chart_dir).as_posix()
            text = file.read_text()
            kinds = KIND_LINE.findall(text) if rel.startswith("templates/") else []
            if any(k in WEBHOOK_KINDS for k in kinds):
                if set(kinds) - set(WEBHOOK_KINDS):
                    raise ValueError(f"{chart.label}/{rel}: admission webhooks and other kinds in one template")
                left_out.append(rel)
                continue
            files[f"{base}/{rel}"] = text
        spec = app["spec"]
        spec.pop("sources", None)
        spec["source"] = {"repoURL": self.local_url, "targetRevision": "main", "path": base}
        if source.get("helm"):
            spec["source"]["helm"] = source["helm"]
        self._charts[name] = (kind, files)
        without = f", without {', '.join(left_out)} (admission webhooks: no server answers here)" if left_out else ""
        self.note(
            f"Application {name} ({path}): {_describe(source)}",
            f"{base}/: the pinned chart ({chart.label}), rendered by Argo CD with the Application's own helm "
            f"settings{without}; its pods run under kwok; {DEPLOYABLE[kind]}",
        )
        return True

    def claimed_crds(self) -> set[str]:
        """The pinned CRDs an Application installs here, stand-in or real chart: the e2e must not install them."""
        kinds = {s.kind for s in self._standins.values()} | {kind for kind, _ in self._charts.values()}
        return {name for kind in kinds for name in self._crds(kind)}

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
                "(e2e.standins)"
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
    header = f"# Stand-in for Application {name}, written by e2e.substitutions: {standin.replaces}.\n"
    return header + yaml.safe_dump_all(docs, sort_keys=False, width=120)


def _load_all(text: str) -> list | None:
    try:
        return [d for d in load_manifests(text) if d is not None]
    except yaml.YAMLError:
        return None
