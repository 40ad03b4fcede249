"""`gitops validate --live`: every rendered object through a real kube-apiserver's admission, as a dry run.

Set-up, in order, each step waiting for the previous to take effect:

1. the pinned CRDs (``gitops.toolchain.schemas.crd_files()``), applied and waited for until ``Established``;
2. the platform's Namespaces (``platform/`` and ``clusters/*/``, with the labels the policies select on), its
   ValidatingAdmissionPolicies and their bindings, and the apps' ServiceAccounts (Pod admission looks them up);
3. the policies made *active*: each policy's ``status.observedGeneration`` catches up once its CEL is type-checked
   (warnings there are reported), but the admission plugin compiles policies from informers on a one-second refresh
   loop, so a request right after creating a binding may pass unchecked. A probe policy and binding, created last,
   is polled with an object it must deny; once denied, everything created before it is in force too (informer
   events arrive in order).

Then every rendered object is server-side applied with ``dryRun=All``: defaulting, validation, Pod Security and the
platform's policies run; nothing is stored. Denials are reported with the policy's own message. Pod Security
enforces on Pods only (a Deployment that breaks it is merely warned about, and its ReplicaSet then cannot create
pods), so for each workload that passes, the Pod its template makes is dry-run too, in the workload's namespace.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from gitops.errors import GitopsError
from gitops.findings import Finding
from gitops.render.helm import Document
from gitops.toolchain import schemas

FIELD_MANAGER = "gitops-validate"
PROBE = "gitops-validate-probe"
CRD_DIGEST = "gitops.azurelaboratory.com/manifest-sha256"  # what was applied, so a reused cluster skips it
VAP_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
WORKLOADS = {
    "apps/v1": ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"),
    "batch/v1": ("Job", "CronJob"),
}
TIMEOUT = 60.0


@dataclass
class Target:
    doc: Document
    env: str = ""
    app: str = ""
    namespace: str = ""  # where a namespaced object without metadata.namespace goes (the destination namespace)


@contextmanager
def control_plane(kubeconfig: Path | None) -> Iterator[Path]:
    """The given cluster, or a fresh local control plane for the duration (always stopped)."""
    if kubeconfig is not None:
        yield kubeconfig
        return
    from gitops.cluster import LocalControlPlane

    with tempfile.TemporaryDirectory(prefix="gitops-live-") as tmp, LocalControlPlane(Path(tmp) / "cp") as cp:
        yield cp.kubeconfig


class Cluster:
    def __init__(self, kubeconfig: Path, workdir: Path) -> None:
        from kubernetes import config, dynamic

        self.api = config.new_client_from_config(str(kubeconfig))
        self._dynamic = dynamic
        self.workdir = workdir
        self.dyn = dynamic.DynamicClient(self.api, cache_file=str(workdir / "discovery.json"))

    def refresh(self) -> None:
        """New CRDs: rebuild discovery so their kinds resolve."""
        self.dyn = self._dynamic.DynamicClient(
            self.api, cache_file=str(self.workdir / f"discovery-{time.monotonic_ns()}.json")
        )

    def resource(self, api_version: str, kind: str):
        return self.dyn.resources.get(api_version=api_version, kind=kind)

    def apply(self, obj: dict, namespace: str = "", dry_run: bool = False):
        res = self.resource(obj["apiVersion"], obj["kind"])
        kwargs = {"field_manager": FIELD_MANAGER, "force_conflicts": True}
        if dry_run:
            kwargs["dry_run"] = "All"
        ns = (obj.get("metadata") or {}).get("namespace") or namespace or "default"
        return self.dyn.server_side_apply(res, body=obj, namespace=ns if res.namespaced else None, **kwargs)

    def get(self, api_version: str, kind: str, name: str):
        return self.dyn.get(self.resource(api_version, kind), name=name)


def run(kubeconfig: Path, targets: list[Target], setup: list[Target], workdir: Path) -> list[Finding]:
    """Install CRDs and the platform's policies (from ``setup``), then dry-run every target."""
    from kubernetes.client.exceptions import ApiException

    cluster = Cluster(kubeconfig, workdir)
    findings: list[Finding] = []
    _install_crds(cluster)
    cluster.refresh()

    namespaces = [t for t in setup if t.doc.kind == "Namespace"]
    policies = [t for t in setup if t.doc.kind in VAP_KINDS]
    for t in namespaces + sorted(policies, key=lambda t: VAP_KINDS.index(t.doc.kind)):
        try:
            cluster.apply(t.doc.obj)
        except ApiException as e:
            findings.append(_finding(t, f"could not be applied by the API server: {_api_message(e)}"))
    findings += _ensure_namespaces(cluster, targets, {t.doc.name for t in namespaces})
    for t in targets:  # Pod admission looks up the ServiceAccount: a dry run of a Pod needs it to exist
        if t.doc.kind == "ServiceAccount":
            try:
                cluster.apply(t.doc.obj, t.namespace)
            except ApiException as e:
                findings.append(_finding(t, f"could not be applied by the API server: {_api_message(e)}"))
    findings += _wait_policies(cluster, policies)

    # Resolve every kind once, serially: the discovery cache is not meant for concurrent misses.
    for t in targets:
        with contextlib.suppress(Exception):  # an unknown kind is reported per object below
            cluster.resource(t.doc.api_version, t.doc.kind)

    def dry_run(t: Target) -> Finding | None:
        try:
            cluster.apply(t.doc.obj, t.namespace, dry_run=True)
        except ApiException as e:
            return _finding(t, f"rejected by the API server: {_api_message(e)}")
        except Exception as e:  # ResourceNotFoundError and friends: the kind is not served
            return _finding(t, f"{t.doc.api_version} {t.doc.kind} is not served by the cluster: {e}")
        pod = pod_of(t.doc)
        if pod is not None:
            try:
                cluster.apply(pod, t.namespace, dry_run=True)
            except ApiException as e:
                return _finding(t, f"its pods would be rejected by the API server: {_api_message(e)}")
        return None

    with ThreadPoolExecutor(max_workers=4) as pool:
        findings += [f for f in pool.map(dry_run, targets) if f is not None]
    return findings


def pod_of(doc: Document) -> dict | None:
    """The Pod a workload's template makes (a CronJob's through its Job template), or None for other kinds."""
    if doc.kind not in WORKLOADS.get(doc.api_version, ()):
        return None
    spec = doc.obj.get("spec") or {}
    if doc.kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template") or {}
    meta = template.get("metadata") or {}
    metadata = {"name": f"{doc.name}-template"[:253], "labels": meta.get("labels") or {}}
    if meta.get("annotations"):
        metadata["annotations"] = meta["annotations"]
    if doc.namespace:
        metadata["namespace"] = doc.namespace
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template.get("spec") or {}}


def _api_message(e: Exception) -> str:
    """The apiserver's own sentence (e.g. a policy's message), not the client's wrapper around it."""
    message = getattr(e, "reason", "") or str(e)
    body = getattr(e, "body", None)
    if body:
        try:
            message = json.loads(body).get("message") or message
        except (ValueError, AttributeError):
            message = str(body)
    return message


def _finding(t: Target, message: str) -> Finding:
    return Finding(
        "live",
        message,
        env=t.env,
        app=t.app,
        file=t.doc.source,
        line=t.doc.line,
        kind=t.doc.kind,
        name=t.doc.name,
    )


def _install_crds(cluster: Cluster) -> None:
    """Create the pinned CRDs (a CRD already there with the same content is left alone: a reused cluster pays once)."""
    from kubernetes.client.exceptions import ApiException

    try:
        files = schemas.crd_files()
    except schemas.SchemasMissing as e:
        raise GitopsError(str(e)) from None
    crds = [d for f in files for d in yaml.load_all(f.read_text(), Loader=yaml.CSafeLoader) if d]
    res = cluster.resource("apiextensions.k8s.io/v1", "CustomResourceDefinition")

    def install(crd: dict) -> None:
        digest = hashlib.sha256(json.dumps(crd, sort_keys=True).encode()).hexdigest()
        body = copy.deepcopy(crd)
        body["metadata"].setdefault("annotations", {})[CRD_DIGEST] = digest
        name = crd["metadata"]["name"]
        try:
            live = cluster.dyn.get(res, name=name).to_dict()
        except ApiException as e:
            if e.status != 404:
                raise GitopsError(f"reading CRD {name} failed: {e.reason}") from None
            live = None
        try:
            if live is None:
                # A plain create: server-side apply of a CRD this size costs the API server several times more.
                cluster.dyn.create(res, body=body)
            elif (live["metadata"].get("annotations") or {}).get(CRD_DIGEST) != digest:
                cluster.apply(body)
        except ApiException as e:
            raise GitopsError(f"installing CRD {name} failed: {e.reason}: {e.body}") from None

    for crd in crds:  # one at a time: each new CRD makes the API server rebuild its OpenAPI, concurrency only thrashes
        install(crd)
    deadline = time.monotonic() + TIMEOUT
    pending = {c["metadata"]["name"] for c in crds}
    while pending:
        for name in sorted(pending):
            crd = cluster.dyn.get(res, name=name).to_dict()
            conditions = (crd.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                pending.discard(name)
        if pending and time.monotonic() > deadline:
            raise GitopsError(f"CRDs not Established after {TIMEOUT:.0f}s: {', '.join(sorted(pending))}")
        if pending:
            time.sleep(0.2)


def _ensure_namespaces(cluster: Cluster, targets: list[Target], declared: set[str]) -> list[Finding]:
    """Namespaces the targets need. An app's destination must be declared by the platform (its Applications never
    create namespaces); others (e.g. `argocd`) belong to upstream installs and are created plainly."""
    from kubernetes.client.exceptions import ApiException

    findings, needed = [], {}
    for t in targets:
        ns = t.doc.namespace or t.namespace
        if ns and ns not in declared and t.doc.kind != "Namespace":
            needed.setdefault(ns, t)
    for ns, t in sorted(needed.items()):
        if t.app and t.env:
            findings.append(
                Finding(
                    "live",
                    f"namespace {ns!r} is not declared by platform/ or clusters/*/namespaces.yaml, and the"
                    " Applications do not create namespaces (CreateNamespace=false)",
                    env=t.env,
                    app=t.app,
                    kind="Namespace",
                    name=ns,
                )
            )
        try:
            cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        except ApiException as e:
            findings.append(_finding(t, f"namespace {ns} could not be created by the API server: {_api_message(e)}"))
    for ns in sorted(set(needed) | declared):
        # kube-controller-manager gives every namespace a `default` ServiceAccount, and Pod admission needs it;
        # a bare API server has no controller-manager, so stand in for it.
        with contextlib.suppress(ApiException):  # a namespace that could not be created is reported above
            cluster.apply(
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}}
            )
    return findings


def _wait_policies(cluster: Cluster, policies: list[Target]) -> list[Finding]:
    """Type-checked (warnings reported) where a controller-manager type-checks, and in force; see the docstring."""
    findings = []
    # Type checking is kube-controller-manager's job; a bare API server (the local control plane) never does it.
    # The controller-manager's root-CA publisher gives it away; without it, waiting for status would be in vain.
    deadline = time.monotonic() + TIMEOUT
    checking = _has_controller_manager(cluster)
    for t in policies:
        if t.doc.kind != "ValidatingAdmissionPolicy" or not checking:
            continue
        while True:
            obj = cluster.get("admissionregistration.k8s.io/v1", t.doc.kind, t.doc.name).to_dict()
            status = obj.get("status") or {}
            if status.get("observedGeneration", 0) >= obj["metadata"].get("generation", 1):
                break
            if time.monotonic() > deadline:
                checking = False
                break
            time.sleep(0.1)
        for w in (status.get("typeChecking") or {}).get("expressionWarnings") or []:
            findings.append(
                Finding(
                    "live",
                    f"type check of {w.get('fieldRef')}: {w.get('warning')}",
                    file=t.doc.source,
                    line=t.doc.line,
                    kind=t.doc.kind,
                    name=t.doc.name,
                )
            )
    _probe(cluster)
    return findings


def _has_controller_manager(cluster: Cluster) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        cluster.dyn.get(cluster.resource("v1", "ConfigMap"), name="kube-root-ca.crt", namespace="kube-system")
    except ApiException:
        return False
    return True


def _probe(cluster: Cluster) -> None:
    from kubernetes.client.exceptions import ApiException

    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": PROBE},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}
                ]
            },
            "validations": [{"expression": f"object.metadata.name != '{PROBE}'", "message": "probe"}],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": PROBE},
        "spec": {"policyName": PROBE, "validationActions": ["Deny"]},
    }
    cluster.apply(policy)
    cluster.apply(binding)
    probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": PROBE, "namespace": "default"}}
    res = cluster.resource("v1", "ConfigMap")
    deadline = time.monotonic() + TIMEOUT
    try:
        while True:
            try:
                cluster.dyn.create(res, body=probe, namespace="default", dry_run="All")
            except ApiException as e:
                if e.status in (400, 403, 422) and PROBE in str(e.body):
                    return
                raise
            if time.monotonic() > deadline:
                raise GitopsError(
                    f"admission policies not in force after {TIMEOUT:.0f}s (the probe policy never denied)"
                )
            time.sleep(0.1)
    finally:
        # The probe has done its job once it denies; a reused cluster is left as it was found.
        for kind in reversed(VAP_KINDS):
            with contextlib.suppress(ApiException):  # already gone
                cluster.dyn.delete(cluster.resource("admissionregistration.k8s.io/v1", kind), name=PROBE)
