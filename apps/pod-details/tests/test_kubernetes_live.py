"""The service as deployed in a pod, against a real kube-apiserver: in-cluster credentials (a ServiceAccount token
from the TokenRequest API, the cluster's CA), the chart's own RBAC, and what happens when either goes away.

`kube_cluster` (a `ControlPlane` running etcd and kube-apiserver for the session) comes from the
repository's pytest plugin `gitops_testing.plugin`; `live_pod` and `own_cluster` from conftest.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from pod_details_support.gunicorn_process import Server
from pod_details_support.live_cluster import CONTAINERS, LABELS, OWNER, LivePod, deployed, pod_env

from gitops_testing.plugin import ControlPlane

Serve = Callable[..., Server]


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


def api_calls(server: Server, outcome: str) -> float:
    found = re.search(
        rf'pod_details_kubernetes_api_requests_total\{{outcome="{outcome}"\}} (\S+)', server.get("/metrics").text
    )
    return float(found.group(1)) if found else 0.0


def test_in_cluster_details_from_a_real_apiserver_with_the_charts_rbac(
    serve: Serve, kube_cluster: ControlPlane, live_pod: LivePod, tmp_path: Path
) -> None:
    server = serve(pod_env(kube_cluster, live_pod, tmp_path), workers=2)
    # The master read the pod before forking, so even the first answer of each worker comes from the API.
    body = server.get("/api/v1/details").json()
    assert body["source"] == "kubernetes-api", body
    assert body["stale"] is False and body["kubernetes"] == {"mode": "in-cluster", "reason": None}
    pod = body["pod"]
    assert (pod["name"], pod["namespace"], pod["service_account"]) == (live_pod.name, live_pod.namespace, "pod-details")
    assert pod["labels"] == LABELS and pod["owner"] == {"kind": "ReplicaSet", "name": OWNER}
    assert [(c["name"], c["image"]) for c in pod["containers"]] == CONTAINERS
    assert api_calls(server, "ok") == 1


def test_stale_while_the_rolebinding_is_gone_then_fresh_again(
    serve: Serve, kube_cluster: ControlPlane, live_pod: LivePod, tmp_path: Path
) -> None:
    server = serve({**pod_env(kube_cluster, live_pod, tmp_path), "CACHE_TTL_SECONDS": "1"})
    wait_for(server, lambda b: b["source"] == "kubernetes-api", 20, "details from the API")

    live_pod.revoke()
    body = wait_for(server, lambda b: b["stale"], 20, "stale details after the RoleBinding was deleted")
    assert body["source"] == "kubernetes-api" and body["pod"]["owner"] == {"kind": "ReplicaSet", "name": OWNER}
    assert "403" in body["kubernetes"]["reason"] and "forbidden" in body["kubernetes"]["reason"]
    assert server.get("/api/v1/readyz").status_code == 200  # readiness does not depend on the apiserver

    live_pod.grant()
    body = wait_for(server, lambda b: not b["stale"], 20, "fresh details after the RoleBinding came back")
    assert body["kubernetes"] == {"mode": "in-cluster", "reason": None}
    assert api_calls(server, "forbidden") >= 1 and api_calls(server, "ok") >= 2


def test_stopped_apiserver_serves_stale_details_within_the_timeout(
    serve: Serve, own_cluster: ControlPlane, tmp_path: Path
) -> None:
    timeout, bound = 1.0, 2.0
    with deployed(own_cluster.kubeconfig) as live_pod:
        env = pod_env(own_cluster, live_pod, tmp_path)
        server = serve({**env, "CACHE_TTL_SECONDS": "1", "KUBE_TIMEOUT_SECONDS": str(timeout)}, workers=2)
        wait_for(server, lambda b: b["source"] == "kubernetes-api" and not b["stale"], 20, "details from the API")
        own_cluster.stop()

    body = wait_for(server, lambda b: b["stale"], 20, "stale details after the apiserver stopped")
    assert body["source"] == "kubernetes-api" and body["pod"]["labels"] == LABELS
    assert "Connection refused" in body["kubernetes"]["reason"], body["kubernetes"]
    assert server.get("/api/v1/readyz").status_code == 200

    def timed(path: str) -> tuple[int, float]:
        begin = time.monotonic()
        response = requests.get(server.url + path, headers={"Connection": "close"}, timeout=10)
        return response.status_code, time.monotonic() - begin

    time.sleep(1.1)  # past the TTL: the burst's first request in each worker tries the stopped apiserver again
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(timed, ["/api/v1/details"] * 18 + ["/api/v1/readyz"] * 2))
    assert all(status == 200 for status, _ in answers), answers
    slowest = max(seconds for _, seconds in answers)
    assert slowest < bound, f"slowest of {len(answers)} concurrent requests took {slowest:.2f}s: {answers}"
    assert wait_for(server, lambda b: b["stale"], 5, "still stale")["kubernetes"]["reason"]
    assert api_calls(server, "connection_error") >= 1
