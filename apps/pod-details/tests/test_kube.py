from __future__ import annotations

from pathlib import Path

import pytest
from pod_details_support.gunicorn_process import free_port
from pod_details_support.live_cluster import CONTAINERS, LABELS, OWNER, LivePod, pod_env
from pod_details_support.misbehaving_apiserver import MisbehavingApiserver, pod_object

from gitops.cluster import LocalControlPlane
from pod_details import kube
from pod_details.settings import PodIdentity, Settings


def settings(sa_dir: Path, **env: str) -> Settings:
    return Settings.from_env({"KUBE_SERVICE_ACCOUNT_DIR": str(sa_dir), **env})


def test_summary_reports_what_the_spec_asks_and_nothing_secret() -> None:
    pod = kube.summarise_pod(pod_object())
    assert pod == {
        "name": "web-7d9c-abcde",
        "namespace": "shop",
        "uid": "0b1c2d3e-0000-4000-8000-000000000001",
        "node": "node-a",
        "ip": "10.1.2.3",
        "labels": {"app.kubernetes.io/name": "pod-details", "pod-template-hash": "7d9c"},
        "owner": {"kind": "ReplicaSet", "name": "web-7d9c"},
        "service_account": "pod-details",
        "phase": "Running",
        "start_time": "2026-01-02T03:04:05Z",
        "containers": [
            {"name": "app", "image": "registry.example/pod-details:1.0", "ready": True, "restart_count": 0},
            {"name": "sidecar", "image": "registry.example/sidecar:2.0", "ready": False, "restart_count": 3},
        ],
    }
    assert "PASSWORD" not in str(pod) and "must not leak" not in str(pod)


def test_summary_of_a_pending_pod_without_owner_or_statuses() -> None:
    obj = pod_object()
    del obj["metadata"]["ownerReferences"], obj["status"]["containerStatuses"], obj["status"]["podIP"]
    pod = kube.summarise_pod(obj)
    assert pod["owner"] is None and pod["ip"] is None
    assert [c["ready"] for c in pod["containers"]] == [False, False]


def test_summary_rejects_what_is_not_a_pod() -> None:
    with pytest.raises(ValueError, match="kind='Status'"):
        kube.summarise_pod({"kind": "Status", "metadata": {}})


def test_fallback_uses_downward_api_or_the_host() -> None:
    downward = kube.fallback_pod(PodIdentity("p", "ns", "node", "10.0.0.9", "sa"), use_host=False)
    assert (downward["name"], downward["namespace"], downward["node"], downward["ip"]) == (
        "p",
        "ns",
        "node",
        "10.0.0.9",
    )
    assert downward["service_account"] == "sa" and downward["labels"] is None and downward["containers"] is None
    host = kube.fallback_pod(PodIdentity(), use_host=True)
    assert host["name"] and host["node"] == host["name"] and host["namespace"] is None


def test_no_credentials_means_no_client_and_says_why(tmp_path: Path) -> None:
    access = kube.connect(settings(tmp_path))
    assert access.mode == "none" and access.client is None
    assert "no Kubernetes credentials" in access.reason and "KUBECONFIG" in access.reason


def test_in_cluster_when_service_host_and_token_exist(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t0k3n")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "namespace").write_text("shop\n")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443", "HOSTNAME": "web-1"}
    access = kube.connect(settings(tmp_path, **env))
    assert access.mode == "in-cluster" and access.reason is None and access.client is not None
    # Without the Downward API the pod is found by its hostname and the service account's namespace.
    assert (access.client.name, access.client.namespace) == ("web-1", "shop")


def test_in_cluster_without_token_is_not_in_cluster(tmp_path: Path) -> None:
    access = kube.connect(settings(tmp_path, KUBERNETES_SERVICE_HOST="10.96.0.1"))
    assert access.mode == "none"


def test_kubeconfig_needs_the_pod_name(tmp_path: Path, kube_cluster: LocalControlPlane) -> None:
    access = kube.connect(settings(tmp_path, KUBECONFIG=str(kube_cluster.kubeconfig)))
    assert access.mode == "kubeconfig" and access.client is None
    assert access.reason == "POD_NAME and POD_NAMESPACE must be set (Downward API) to read the pod"


def test_broken_kubeconfig_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    access = kube.connect(settings(tmp_path, KUBECONFIG=str(missing), POD_NAME="p", POD_NAMESPACE="ns"))
    assert access.client is None and access.reason.startswith(f"cannot load KUBECONFIG={missing}: ")


def in_cluster_client(env: dict[str, str], timeout: str = "2") -> kube.PodClient:
    access = kube.connect(Settings.from_env({**env, "KUBE_TIMEOUT_SECONDS": timeout}))
    assert access.mode == "in-cluster" and access.client is not None, access.reason
    return access.client


def test_in_cluster_reads_its_pod_from_the_apiserver_with_the_mounted_token(
    tmp_path: Path, kube_cluster: LocalControlPlane, live_pod: LivePod
) -> None:
    # No Downward API variables: the pod is found by its hostname and the service account mount's namespace.
    env = pod_env(kube_cluster, live_pod, tmp_path)
    del env["POD_NAME"], env["POD_NAMESPACE"]
    pod = in_cluster_client({**env, "HOSTNAME": live_pod.name}).read_pod()
    assert (pod["name"], pod["namespace"], pod["service_account"]) == (live_pod.name, live_pod.namespace, "pod-details")
    assert pod["labels"] == LABELS and pod["owner"] == {"kind": "ReplicaSet", "name": OWNER}
    assert [(c["name"], c["image"]) for c in pod["containers"]] == CONTAINERS


def test_a_token_the_apiserver_rejects_is_unauthorized(
    tmp_path: Path, kube_cluster: LocalControlPlane, live_pod: LivePod
) -> None:
    client = in_cluster_client(pod_env(kube_cluster, live_pod, tmp_path, token="not-a-token"))
    with pytest.raises(kube.FetchError) as caught:
        client.read_pod()
    assert caught.value.outcome == "unauthorized" and ": 401 Unauthorized" in caught.value.reason


def test_without_the_rolebinding_reading_is_forbidden(
    tmp_path: Path, kube_cluster: LocalControlPlane, live_pod: LivePod
) -> None:
    client = in_cluster_client(pod_env(kube_cluster, live_pod, tmp_path))
    live_pod.revoke()
    with pytest.raises(kube.FetchError) as caught:
        client.read_pod()
    account = f"system:serviceaccount:{live_pod.namespace}:pod-details"
    assert caught.value.outcome == "forbidden"
    assert f': 403 pods "{live_pod.name}" is forbidden: User "{account}" cannot get resource "pods"' in (
        caught.value.reason
    )


def test_missing_pod_is_not_found(tmp_path: Path, kube_cluster: LocalControlPlane, live_pod: LivePod) -> None:
    env = pod_env(kube_cluster, live_pod, tmp_path)
    with pytest.raises(kube.FetchError) as caught:
        in_cluster_client({**env, "POD_NAME": "gone"}).read_pod()
    assert caught.value.outcome == "not_found" and ': 404 pods "gone" not found' in caught.value.reason


def test_server_error_has_an_outcome_and_the_apiserver_message(
    tmp_path: Path, misbehaving: MisbehavingApiserver
) -> None:
    misbehaving.fail_status = 500
    env = {"KUBECONFIG": str(misbehaving.kubeconfig(tmp_path)), "POD_NAME": "web-1", "POD_NAMESPACE": "shop"}
    access = kube.connect(settings(tmp_path, **env))
    assert access.client is not None, access.reason
    with pytest.raises(kube.FetchError) as caught:
        access.client.read_pod()
    assert caught.value.outcome == "http_error" and ": 500 injected failure" in caught.value.reason
    assert misbehaving.calls == 1  # no retries: the cache retries after its TTL


def test_an_apiserver_that_never_answers_times_out_within_the_bound(
    tmp_path: Path, misbehaving: MisbehavingApiserver
) -> None:
    import time

    misbehaving.delay_seconds = float("inf")
    env = {"KUBECONFIG": str(misbehaving.kubeconfig(tmp_path)), "POD_NAME": "web-1", "POD_NAMESPACE": "shop"}
    access = kube.connect(settings(tmp_path, KUBE_TIMEOUT_SECONDS="0.3", **env))
    assert access.client is not None, access.reason
    begin = time.monotonic()
    with pytest.raises(kube.FetchError) as caught:
        access.client.read_pod()
    assert time.monotonic() - begin < 1.5
    assert caught.value.outcome == "timeout" and "no answer within 0.3s" in caught.value.reason


def test_nothing_listening_is_a_connection_error(
    tmp_path: Path, kube_cluster: LocalControlPlane, live_pod: LivePod
) -> None:
    # The real credentials, a port where no apiserver listens. (A stopped apiserver: test_kubernetes_live.py.)
    env = pod_env(kube_cluster, live_pod, tmp_path)
    with pytest.raises(kube.FetchError) as caught:
        in_cluster_client({**env, "KUBERNETES_SERVICE_PORT": str(free_port())}).read_pod()
    assert caught.value.outcome == "connection_error" and "NewConnectionError" in caught.value.reason


def test_in_cluster_refuses_an_apiserver_its_ca_does_not_sign(
    tmp_path: Path, kube_cluster: LocalControlPlane, live_pod: LivePod
) -> None:
    from gitops.cluster import pki

    env = pod_env(kube_cluster, live_pod, tmp_path)
    other = pki.generate(tmp_path / "other-pki")
    (Path(env["KUBE_SERVICE_ACCOUNT_DIR"]) / "ca.crt").write_bytes(other.ca_cert.read_bytes())
    with pytest.raises(kube.FetchError) as caught:
        in_cluster_client(env).read_pod()
    assert caught.value.outcome == "tls_error" and "CERTIFICATE_VERIFY_FAILED" in caught.value.reason


def test_the_client_loads_without_the_whole_kubernetes_package() -> None:
    """In a fresh interpreter, the in-cluster client imports three modules of the package, not its helpers."""
    import subprocess
    import sys

    code = (
        "import sys; from pod_details import kube; kube._kubernetes_modules(); "
        "print(sorted(m for m in sys.modules if m.startswith(('kubernetes', 'pydantic', 'yaml', 'requests'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for heavy in (
        "'kubernetes.dynamic",
        "'kubernetes.watch",
        "'pydantic",
        "'requests",
        "'kubernetes.config.kube_config",
    ):
        assert heavy not in loaded, loaded
    assert "'kubernetes.client.rest'" in loaded and "'kubernetes'" not in loaded
