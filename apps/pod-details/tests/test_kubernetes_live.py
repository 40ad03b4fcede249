"""The Kubernetes path against a real kube-apiserver, with real RBAC and a real ServiceAccount token.

`kube_admin_kubeconfig` (a Path to a kubeconfig with admin credentials) comes from the repository's `gitops.testing`
pytest plugin, which runs etcd and kube-apiserver for the session.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from gunicorn_process import Server

Serve = Callable[..., Server]

POD = "pod-details-7d9c-x2x4q"


@pytest.fixture
def admin(kube_admin_kubeconfig: Path) -> Iterator[Any]:
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(kube_admin_kubeconfig))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def namespace(admin: Any) -> Iterator[str]:
    from kubernetes import client

    name = f"pod-details-live-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(admin)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        yield name
    finally:
        core.delete_namespace(name)


def create_pod_with_rbac(admin: Any, ns: str) -> None:
    """A ServiceAccount allowed to read pods, and a pod owned by a ReplicaSet, with two containers."""
    from kubernetes import client

    core, rbac, apps = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin), client.AppsV1Api(admin)
    core.create_namespaced_service_account(ns, {"metadata": {"name": "pod-details"}})
    rbac.create_namespaced_role(
        ns,
        {
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": "pod-details-reads-pods"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "pod-details", "namespace": ns}],
        },
    )
    labels = {"app.kubernetes.io/name": "pod-details", "pod-template-hash": "7d9c"}
    # A real owner (replicas 0: nothing creates pods) so a garbage collector, if one runs, keeps the pod.
    rs = apps.create_namespaced_replica_set(
        ns,
        {
            "metadata": {"name": "pod-details-7d9c"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": "registry.example/pod-details:1.0"}]},
                },
            },
        },
    )
    owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": "pod-details-7d9c",
        "uid": rs.metadata.uid,
        "controller": True,
    }
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": POD, "labels": labels, "ownerReferences": [owner]},
            "spec": {
                "serviceAccountName": "pod-details",
                "automountServiceAccountToken": False,
                "containers": [
                    {"name": "app", "image": "registry.example/pod-details:1.0"},
                    {"name": "sidecar", "image": "registry.example/sidecar:2.0"},
                ],
            },
        },
    )


def service_account_kubeconfig(admin_kubeconfig: Path, admin: Any, ns: str, into: Path) -> Path:
    """A kubeconfig for the same cluster that authenticates with a fresh token of the pod's ServiceAccount."""
    from kubernetes import client

    token = (
        client.CoreV1Api(admin)
        .create_namespaced_service_account_token(
            "pod-details", ns, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
        )
        .status.token
    )
    admin_config = yaml.safe_load(admin_kubeconfig.read_text())
    context = next(c for c in admin_config["contexts"] if c["name"] == admin_config["current-context"])["context"]
    cluster = next(c for c in admin_config["clusters"] if c["name"] == context["cluster"])["cluster"]
    if "certificate-authority" in cluster:  # a relative CA path would break once the file moves
        cluster["certificate-authority"] = str((admin_kubeconfig.parent / cluster["certificate-authority"]).resolve())
    path = into / "service-account.kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "live", "cluster": cluster}],
                "users": [{"name": "pod-details", "user": {"token": token}}],
                "contexts": [{"name": "live", "context": {"cluster": "live", "user": "pod-details", "namespace": ns}}],
                "current-context": "live",
            }
        )
    )
    return path


def wait_for(server: Server, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = server.get("/api/v1/details")
        assert response.status_code == 200
        body = response.json()
        if predicate(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last answer: {body}")
        time.sleep(0.2)


def test_details_from_a_real_apiserver_then_stale_when_rbac_is_revoked(
    serve: Serve, admin: Any, namespace: str, kube_admin_kubeconfig: Path, tmp_path: Path
) -> None:
    from kubernetes import client

    create_pod_with_rbac(admin, namespace)
    kubeconfig = service_account_kubeconfig(kube_admin_kubeconfig, admin, namespace, tmp_path)
    server = serve(
        {"KUBECONFIG": str(kubeconfig), "POD_NAME": POD, "POD_NAMESPACE": namespace, "CACHE_TTL_SECONDS": "1"}
    )
    body = wait_for(server, lambda b: b["source"] == "kubernetes-api", 20, "details from the API")
    pod = body["pod"]
    assert body["stale"] is False and body["kubernetes"] == {"mode": "kubeconfig", "reason": None}
    assert (pod["name"], pod["namespace"], pod["service_account"]) == (POD, namespace, "pod-details")
    assert pod["labels"] == {"app.kubernetes.io/name": "pod-details", "pod-template-hash": "7d9c"}
    assert pod["owner"] == {"kind": "ReplicaSet", "name": "pod-details-7d9c"}
    assert [(c["name"], c["image"]) for c in pod["containers"]] == [
        ("app", "registry.example/pod-details:1.0"),
        ("sidecar", "registry.example/sidecar:2.0"),
    ]

    client.RbacAuthorizationV1Api(admin).delete_namespaced_role_binding("pod-details-reads-pods", namespace)
    body = wait_for(server, lambda b: b["stale"], 20, "stale details after the RoleBinding was deleted")
    assert body["source"] == "kubernetes-api" and body["pod"]["owner"]["kind"] == "ReplicaSet"
    assert "403" in body["kubernetes"]["reason"] and "forbidden" in body["kubernetes"]["reason"]
    assert server.get("/api/v1/readyz").status_code == 200
    metrics = server.get("/metrics").text
    assert 'pod_details_kubernetes_api_requests_total{outcome="forbidden"}' in metrics
