"""One of the repo's clusters (``clusters/<name>/``), here: a local control plane with fake nodes, its own Argo CD,
and the stand-ins for what AKS and the upstream charts would run.

Each cluster of the config gets its own, as in production (aks-dev runs dev, aks-prod runs prod, each Argo CD
bootstrapped from its own ``root.yaml``), so nothing in ``clusters/`` has to be merged or renamed to fit one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gitops.cluster import LocalControlPlane
from gitops.cluster.nodes import create_fake_nodes
from gitops_testing.e2e.argocd import NAMESPACE, LocalArgoCD, Settings
from gitops_testing.e2e.kube import Kube, wait_for
from gitops_testing.e2e.notifications import Notifications
from gitops_testing.e2e.standins import MetricsAPI, StatusController
from gitops_testing.e2e.syncs import SyncAttempts

APP = "argoproj.io/v1alpha1"


@dataclass
class LocalCluster:
    name: str
    state: Path
    settings: Settings
    notifications: Notifications | None = None
    unpullable_images: tuple[str, ...] = ()  # images its registry lacks: their pods never become ready
    cp: LocalControlPlane = field(init=False)
    argocd: LocalArgoCD = field(init=False)
    kube: Kube = field(init=False)
    status: StatusController | None = None
    metrics: MetricsAPI | None = None
    syncs: SyncAttempts = field(default_factory=SyncAttempts)  # every sync operation seen, for its failed attempts
    settled: dict[str, float] = field(default_factory=dict)  # when each Application was first seen Synced/Healthy

    def __post_init__(self) -> None:
        self.cp = LocalControlPlane(
            self.state / "control-plane", workloads=True, unpullable_images=self.unpullable_images
        )
        self.argocd = LocalArgoCD(
            self.name, self.state / "argocd", self.cp.kubeconfig, self.settings, self.notifications
        )

    # -- lifecycle (processes are spawned from the main thread: PR_SET_PDEATHSIG follows the spawning thread) ---------

    def start_control_plane(self) -> None:
        self.cp.start()
        create_fake_nodes(self.cp.kubeconfig)
        self.kube = Kube(self.cp.kubeconfig, self.state / "kube" / "main")

    def install_argocd(self, manifests: Path, extra_crds: list[dict]) -> None:
        """Argo CD's CRDs and settings, pinned CRDs no Application installs here, the metrics API stand-in."""
        self.argocd.install(self.kube, manifests)
        if extra_crds:
            self.kube.apply_crds(extra_crds)
        self.metrics = MetricsAPI(
            Kube(self.cp.kubeconfig, self.state / "kube" / "metrics"),
            self.state / "metrics",
            self.cp.pki.ca_cert,
            self.cp.pki.ca_key,
        )
        self.metrics.start()
        for doc in self.metrics.manifests():
            self.kube.apply(doc)
        # Argo CD's controllers discover every API at start-up; an unavailable aggregated API there is "stale".
        wait_for("APIService v1beta1.metrics.k8s.io to be Available", self._metrics_available, 60, interval=0.3)
        self.status = StatusController(Kube(self.cp.kubeconfig, self.state / "kube" / "status"))
        self.status.start()

    def _metrics_available(self) -> bool:
        api = self.kube.get("apiregistration.k8s.io/v1", "APIService", "v1beta1.metrics.k8s.io") or {}
        return any(
            c["type"] == "Available" and c["status"] == "True"
            for c in (api.get("status") or {}).get("conditions") or []
        )

    def stop(self) -> None:
        """Stand-ins, Argo CD, then the control plane; each step runs even if the one before failed."""
        try:
            for part in (self.status, self.metrics):
                if part is not None:
                    part.stop()
        finally:
            try:
                self.argocd.stop()
            finally:
                self.cp.stop(remove=False)  # the whole state dir goes at the end of the run

    def check_alive(self) -> None:
        self.argocd.check_alive()
        self.cp._check_alive()

    # -- Argo CD through the Kubernetes API ------------------------------------------------------------------------

    def bootstrap(self, root_yaml: str) -> list[str]:
        """`kubectl apply -f clusters/<name>/root.yaml`, as the config's first-install steps say; what was applied."""
        applied = []
        for doc in yaml.safe_load_all(root_yaml):
            if doc:
                self.kube.apply(doc, NAMESPACE)
                applied.append(f"{doc['kind']}/{doc['metadata']['name']}")
        return applied

    def applications(self) -> dict[str, dict]:
        apps = {a["metadata"]["name"]: a for a in self.kube.list(APP, "Application", NAMESPACE)}
        self.syncs.observe(apps)
        now = time.monotonic()
        for name, app in apps.items():
            if _synced_and_healthy(app):
                self.settled.setdefault(name, now)
        return apps

    def application(self, name: str) -> dict | None:
        return self.kube.get(APP, "Application", name, NAMESPACE)

    def request_operation(self, name: str, operation: dict) -> bool:
        """Start an operation as Argo CD's API does for `argocd app sync` (util/argo SetAppOperation): not while
        another one is in progress, and only onto the version just read. An automated sync or a self-heal can start
        in between; a blind patch would merge into its operation, which the controller then runs as it read it and
        clears when done. False when it has to be tried again."""
        from kubernetes.dynamic.exceptions import ConflictError

        app = self.application(name)
        if app is None or app.get("operation"):
            return False
        patch = {
            "metadata": {"resourceVersion": app["metadata"]["resourceVersion"]},  # the apiserver's precondition
            "operation": operation,
            "status": {"operationState": None},
        }
        try:
            self.kube.merge_patch(APP, "Application", name, patch, NAMESPACE)
        except ConflictError:
            return False
        return True

    def refresh(self, applications: Iterable[str] | None = None) -> None:
        """What GitHub's push webhook makes Argo CD do: re-read git for every ApplicationSet and Application (or only
        the ``applications`` named)."""
        from kubernetes.dynamic.exceptions import NotFoundError

        targets = [("Application", n) for n in (self.applications() if applications is None else applications)]
        if applications is None:
            targets += [
                ("ApplicationSet", a["metadata"]["name"]) for a in self.kube.list(APP, "ApplicationSet", NAMESPACE)
            ]
        for kind, name in targets:
            key = (
                "argocd.argoproj.io/refresh" if kind == "Application" else "argocd.argoproj.io/application-set-refresh"
            )
            value = "normal" if kind == "Application" else "true"
            with contextlib.suppress(NotFoundError):  # deleted meanwhile (an ApplicationSet pruned it)
                self.kube.merge_patch(APP, kind, name, {"metadata": {"annotations": {key: value}}}, NAMESPACE)


def _synced_and_healthy(app: dict) -> bool:
    status = app.get("status") or {}
    sync = (status.get("sync") or {}).get("status")
    health = (status.get("health") or {}).get("status")
    return sync == "Synced" and health == "Healthy"
