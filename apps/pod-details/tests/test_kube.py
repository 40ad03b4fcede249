from __future__ import annotations

from pathlib import Path

import pytest
from pod_details_support.gunicorn_process import free_port
from pod_details_support.live_cluster import CONTAINERS, LABELS, OWNER, LivePod, pod_env
from pod_details_support.misbehaving_apiserver import MisbehavingApiserver, pod_object

from gitops_testing.plugin import ControlPlane
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


def service_account_mount(sa_dir: Path, ca: bytes | None = None) -> None:
    """A token, a CA bundle (certifi's, a real PEM file, unless `ca` is given) and a namespace, as a pod has them."""
    import certifi

    (sa_dir / "token").write_text("t0k3n")
    (sa_dir / "ca.crt").write_bytes(Path(certifi.where()).read_bytes() if ca is None else ca)
    (sa_dir / "namespace").write_text("shop\n")


IN_CLUSTER_ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443", "HOSTNAME": "web-1"}


def test_in_cluster_when_service_host_and_token_exist(tmp_path: Path) -> None:
    service_account_mount(tmp_path)
    access = kube.connect(settings(tmp_path, **IN_CLUSTER_ENV))
    assert access.mode == "in-cluster" and access.reason is None and access.client is not None
    # Without the Downward API the pod is found by its hostname and the service account's namespace.
    assert (access.client.name, access.client.namespace) == ("web-1", "shop")


def test_in_cluster_ipv6_service_host_is_bracketed(tmp_path: Path) -> None:
    service_account_mount(tmp_path)
    access = kube.connect(settings(tmp_path, **{**IN_CLUSTER_ENV, "KUBERNETES_SERVICE_HOST": "fd00:10:96::1"}))
    assert access.client is not None, access.reason
    assert access.client._url == "https://[fd00:10:96::1]:443/api/v1/namespaces/shop/pods/web-1"


@pytest.mark.parametrize(
    ("ca", "env", "expected"),
    [
        (b"-----BEGIN CERTIFICATE-----\n", {}, "/ca.crt: expected the cluster's CA certificates in PEM: SSLError"),
        (None, {"KUBERNETES_SERVICE_PORT": ""}, "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set"),
    ],
)
def test_broken_in_cluster_configuration_is_a_reason_naming_what_is_wrong(
    tmp_path: Path, ca: bytes | None, env: dict[str, str], expected: str
) -> None:
    service_account_mount(tmp_path, ca)
    access = kube.connect(settings(tmp_path, **{**IN_CLUSTER_ENV, **env}))
    assert access.mode == "in-cluster" and access.client is None
    assert (
        access.reason.startswith(f"cannot load in-cluster configuration ({tmp_path}): ") and expected in access.reason
    )


def test_in_cluster_without_token_is_not_in_cluster(tmp_path: Path) -> None:
    access = kube.connect(settings(tmp_path, KUBERNETES_SERVICE_HOST="10.96.0.1"))
    assert access.mode == "none"


def test_kubeconfig_needs_the_pod_name(tmp_path: Path, kube_cluster: ControlPlane) -> None:
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
    tmp_path: Path, kube_cluster: ControlPlane, live_pod: LivePod
) -> None:
    # No Downward API variables: the pod is found by its hostname and the service account mount's namespace.
    env = pod_env(kube_cluster, live_pod, tmp_path)
    del env["POD_NAME"], env["POD_NAMESPACE"]
    pod = in_cluster_client({**env, "HOSTNAME": live_pod.name}).read_pod()
    assert (pod["name"], pod["namespace"], pod["service_account"]) == (live_pod.name, live_pod.namespace, "pod-details")
    assert pod["labels"] == LABELS and pod["owner"] == {"kind": "ReplicaSet", "name": OWNER}
    assert [(c["name"], c["image"]) for c in pod["containers"]] == CONTAINERS


def test_a_token_the_apiserver_rejects_is_unauthorized(
    tmp_path: Path, kube_cluster: ControlPlane, live_pod: LivePod
) -> None:
    client = in_cluster_client(pod_env(kube_cluster, live_pod, tmp_path, token="not-a-token"))
    with pytest.raises(kube.FetchError) as caught:
        client.read_pod()
    assert caught.value.outcome == "unauthorized" and ": 401 Unauthorized" in caught.value.reason


def test_without_the_rolebinding_reading_is_forbidden(
    tmp_path: Path, kube_cluster: ControlPlane, live_pod: LivePod
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


def test_missing_pod_is_not_found(tmp_path: Path, kube_cluster: ControlPlane, live_pod: LivePod) -> None:
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


def test_nothing_listening_is_a_connection_error(tmp_path: Path, kube_cluster: ControlPlane, live_pod: LivePod) -> None:
    # The real credentials, a port where no apiserver listens. (A stopped apiserver: test_kubernetes_live.py.)
    env = pod_env(kube_cluster, live_pod, tmp_path)
    with pytest.raises(kube.FetchError) as caught:
        in_cluster_client({**env, "KUBERNETES_SERVICE_PORT": str(free_port())}).read_pod()
    assert caught.value.outcome == "connection_error" and "NewConnectionError" in caught.value.reason


def test_in_cluster_refuses_an_apiserver_its_ca_does_not_sign(
    tmp_path: Path, kube_cluster: ControlPlane, live_pod: LivePod, unrelated_ca: Path
) -> None:
    env = pod_env(kube_cluster, live_pod, tmp_path)
    (Path(env["KUBE_SERVICE_ACCOUNT_DIR"]) / "ca.crt").write_bytes(unrelated_ca.read_bytes())
    with pytest.raises(kube.FetchError) as caught:
        in_cluster_client(env).read_pod()
    assert caught.value.outcome == "tls_error" and "CERTIFICATE_VERIFY_FAILED" in caught.value.reason


def test_in_cluster_reads_the_token_again_for_every_call(
    tmp_path: Path, kube_cluster: ControlPlane, live_pod: LivePod
) -> None:
    """The kubelet rotates the projected token by replacing the file; the next call must send the new one."""
    env = pod_env(kube_cluster, live_pod, tmp_path)
    token = Path(env["KUBE_SERVICE_ACCOUNT_DIR"]) / "token"
    client = in_cluster_client(env)
    assert client.read_pod()["name"] == live_pod.name
    token.write_text("revoked-and-rotated-away")
    with pytest.raises(kube.FetchError) as caught:
        client.read_pod()
    assert caught.value.outcome == "unauthorized"
    token.write_text(live_pod.token(kube_cluster.kubeconfig))
    assert client.read_pod()["name"] == live_pod.name
    token.unlink()
    with pytest.raises(kube.FetchError) as caught:
        client.read_pod()
    missing = f"no credentials: FileNotFoundError: [Errno 2] No such file or directory: '{token}'"
    assert caught.value.outcome == "error" and missing in caught.value.reason


def test_kubeconfig_reads_its_pod_through_the_kubernetes_client(
    tmp_path: Path, kube_cluster: ControlPlane, live_pod: LivePod
) -> None:
    """Outside a pod the `kubernetes` client loads the kubeconfig and builds the TLS pool: the parts of its API this
    service relies on (`load_kube_config` into a `Configuration`, `RESTClientObject(...).pool_manager`,
    `auth_settings()`) are all on this path, so a client release that changes them fails here, by name."""
    kubeconfig = kube_cluster.token_kubeconfig(tmp_path / "token.kubeconfig", live_pod.token(kube_cluster.kubeconfig))
    env = {"KUBECONFIG": str(kubeconfig), "POD_NAME": live_pod.name, "POD_NAMESPACE": live_pod.namespace}
    access = kube.connect(settings(tmp_path, **env))
    assert access.mode == "kubeconfig" and access.client is not None, access.reason
    pod = access.client.read_pod()
    assert (pod["name"], pod["namespace"], pod["service_account"]) == (live_pod.name, live_pod.namespace, "pod-details")
    live_pod.revoke()
    with pytest.raises(kube.FetchError) as caught:
        access.client.read_pod()
    assert caught.value.outcome == "forbidden"


def test_in_cluster_loads_nothing_of_the_kubernetes_package(
    tmp_path: Path, kube_cluster: ControlPlane, live_pod: LivePod
) -> None:
    """In a fresh interpreter, reading the pod in-cluster imports no module of the `kubernetes` package (its
    `__init__` would load the whole client)."""
    import json
    import os
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from pod_details import kube\n"
        "from pod_details.settings import Settings\n"
        "access = kube.connect(Settings.from_env())\n"
        "pod = access.client.read_pod()\n"
        "print(json.dumps({'pod': pod['name'], 'modules': sorted(sys.modules)}))\n"
    )
    # Nothing of the shell's environment (a KUBECONFIG would change the mode) but where Python finds the package.
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.pathsep.join(sys.path),
        **pod_env(kube_cluster, live_pod, tmp_path),
    }
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    loaded = json.loads(run.stdout)
    assert loaded["pod"] == live_pod.name
    assert "urllib3" in loaded["modules"]
    assert [m for m in loaded["modules"] if m.split(".")[0] in ("kubernetes", "pydantic", "yaml", "requests")] == []
