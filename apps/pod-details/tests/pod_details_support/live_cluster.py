"""The service's Kubernetes side, for real: a namespace on a real kube-apiserver with the chart's own RBAC and a Pod
to read, and the files and variables the kubelet gives a pod to reach the apiserver.

The ServiceAccount, Role and RoleBinding come from `helm template` of the chart, not from a copy in the tests, so a
passing test proves the RBAC the chart ships is enough. Used by the tests and by benchmarks/service_bench.py.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops_testing.plugin import ControlPlane
from pod_details_support import chart

RBAC_TEMPLATES = ("templates/serviceaccount.yaml", "templates/role.yaml", "templates/rolebinding.yaml")

POD = "pod-details-7d9c-x2x4q"
OWNER = "pod-details-7d9c"
LABELS = {"app.kubernetes.io/name": "pod-details", "pod-template-hash": "7d9c"}
CONTAINERS = [("app", "registry.example/pod-details:1.0"), ("sidecar", "registry.example/sidecar:2.0")]


def chart_rbac(namespace: str) -> list[dict[str, Any]]:
    """The chart's ServiceAccount, Role and RoleBinding for a release in `namespace`, rendered by `helm template`."""
    shown = [arg for template in RBAC_TEMPLATES for arg in ("--show-only", template)]
    docs = chart.render("--set", "httpRoute.enabled=false", *shown, namespace=namespace)
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == ["Role", "RoleBinding", "ServiceAccount"], f"{chart.CHART}: expected RBAC objects, rendered {kinds}"
    return docs


@dataclass
class LivePod:
    """A namespace holding the chart's RBAC and a Pod (owned by a ReplicaSet, two containers) to read."""

    admin: Any  # kubernetes.client.ApiClient with admin credentials
    namespace: str
    rbac: list[dict[str, Any]]
    name: str = POD

    @property
    def service_account(self) -> str:
        return next(doc["metadata"]["name"] for doc in self.rbac if doc["kind"] == "ServiceAccount")

    def _binding(self) -> dict[str, Any]:
        return next(doc for doc in self.rbac if doc["kind"] == "RoleBinding")

    def revoke(self, within: float = 30.0) -> None:
        """Delete the chart's RoleBinding, and return once the ServiceAccount may no longer read pods. The apiserver's
        RBAC authorizer works from an informer cache, so a request just after the deletion may still be allowed: wait
        until a SubjectAccessReview (the same authorizer) says no."""
        from kubernetes import client

        name = self._binding()["metadata"]["name"]
        client.RbacAuthorizationV1Api(self.admin).delete_namespaced_role_binding(name, self.namespace)
        review = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=f"system:serviceaccount:{self.namespace}:{self.service_account}",
                resource_attributes=client.V1ResourceAttributes(
                    namespace=self.namespace, verb="get", resource="pods", name=self.name
                ),
            )
        )
        api = client.AuthorizationV1Api(self.admin)
        deadline = time.monotonic() + within
        while api.create_subject_access_review(review).status.allowed:
            assert time.monotonic() < deadline, f"{self.service_account} could still read pods {within:.0f}s after"
            time.sleep(0.1)

    def grant(self) -> None:
        """Create the chart's RoleBinding (again)."""
        from kubernetes import utils

        utils.create_from_dict(self.admin, self._binding(), namespace=self.namespace)

    def token(self, kubeconfig: Path) -> str:
        """A bound token of the pod's ServiceAccount from the TokenRequest API, as the kubelet projects it."""
        from gitops_testing.plugin import mint_token

        return mint_token(kubeconfig, self.namespace, self.service_account)


@contextmanager
def deployed(admin_kubeconfig: Path, prefix: str = "pod-details-live") -> Iterator[LivePod]:
    """A fresh namespace with the chart's RBAC and the Pod; the namespace is deleted afterwards."""
    from kubernetes import client, config

    admin = config.new_client_from_config(config_file=str(admin_kubeconfig))
    core = client.CoreV1Api(admin)
    namespace = f"{prefix}-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    try:
        pod = LivePod(admin, namespace, chart_rbac(namespace))
        _create(pod)
        yield pod
    finally:
        with suppress(Exception):  # a stopped apiserver (some tests stop it) has nothing left to clean
            core.delete_namespace(namespace)
        admin.close()


def _create(pod: LivePod) -> None:
    from kubernetes import client, utils

    for doc in pod.rbac:
        utils.create_from_dict(pod.admin, doc, namespace=pod.namespace)
    # A real owner (replicas 0: nothing creates pods) so a garbage collector, if one runs, keeps the pod.
    rs = client.AppsV1Api(pod.admin).create_namespaced_replica_set(
        pod.namespace,
        {
            "metadata": {"name": OWNER},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": LABELS},
                "template": {
                    "metadata": {"labels": LABELS},
                    "spec": {"containers": [{"name": "app", "image": CONTAINERS[0][1]}]},
                },
            },
        },
    )
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": OWNER, "uid": rs.metadata.uid, "controller": True}
    client.CoreV1Api(pod.admin).create_namespaced_pod(
        pod.namespace,
        {
            "metadata": {"name": pod.name, "labels": LABELS, "ownerReferences": [owner]},
            "spec": {
                "serviceAccountName": pod.service_account,
                "automountServiceAccountToken": False,
                "containers": [{"name": name, "image": image} for name, image in CONTAINERS],
            },
        },
    )


def pod_env(cp: ControlPlane, pod: LivePod, into: Path, token: str | None = None) -> dict[str, str]:
    """`in_cluster_env` for `pod` on the control plane `cp`, with a fresh token."""
    token = pod.token(cp.kubeconfig) if token is None else token
    return in_cluster_env(cp.apiserver_port, cp.pki.ca_cert, token, pod.namespace, into, pod.name)


def in_cluster_env(
    apiserver_port: int, ca_cert: Path, token: str, namespace: str, into: Path, pod: str = POD
) -> dict[str, str]:
    """What the kubelet gives a pod: a service account mount (token, ca.crt, namespace), the service host/port
    variables, and the Downward API's POD_NAME/POD_NAMESPACE. The CA is copied: it outlives a stopped control plane."""
    sa_dir = into / "serviceaccount"
    sa_dir.mkdir(parents=True, exist_ok=True)
    (sa_dir / "token").write_text(token)
    (sa_dir / "ca.crt").write_bytes(ca_cert.read_bytes())
    (sa_dir / "namespace").write_text(namespace)
    return {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(apiserver_port),
        "KUBE_SERVICE_ACCOUNT_DIR": str(sa_dir),
        "POD_NAME": pod,
        "POD_NAMESPACE": namespace,
    }
