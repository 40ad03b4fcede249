"""The local control plane, and what only a real apiserver can prove about the chart: its RBAC is least-privilege
and its pod passes Pod Security `restricted`."""

from __future__ import annotations

import copy
import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from gitops.cluster import LocalControlPlane
from gitops.toolchain import tool_path
from gitops_testing.plugin import mint_token

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "apps" / "pod-details" / "chart"


def render_chart(env: str, namespace: str) -> list[dict]:
    release = yaml.safe_load((REPO / "environments" / env / "pod-details" / "release.yaml").read_text())
    image = release["image"]
    out = subprocess.run(
        [
            str(tool_path("helm")),
            "template",
            "pod-details",
            str(CHART),
            "--namespace",
            namespace,
            "-f",
            str(REPO / "environments" / env / "pod-details" / "values.yaml"),
            "--set-string",
            f"image.repository={image['repository']},image.tag={image['tag']},image.digest={image['digest']}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def of_kind(docs: list[dict], kind: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, got {len(matches)}"
    return matches[0]


@pytest.fixture(scope="module")
def api(kube_cluster: LocalControlPlane) -> client.ApiClient:
    return config.new_client_from_config(str(kube_cluster.kubeconfig))


def create_namespace(api: client.ApiClient, name: str, labels: dict | None = None) -> None:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}
    client.CoreV1Api(api).create_namespace(body)


def test_tokens_from_token_request_authenticate_as_the_service_account(kube_cluster, api, tmp_path):
    create_namespace(api, "token-check")
    client.CoreV1Api(api).create_namespaced_service_account("token-check", {"metadata": {"name": "reader"}})
    token = mint_token(kube_cluster.kubeconfig, "token-check", "reader")
    as_sa = config.new_client_from_config(str(kube_cluster.token_kubeconfig(tmp_path / "sa.kubeconfig", token)))
    review = client.AuthenticationV1Api(as_sa).create_self_subject_review({"apiVersion": "authentication.k8s.io/v1"})
    assert review.status.user_info.username == "system:serviceaccount:token-check:reader"


@pytest.fixture(scope="module")
def chart_rbac(api) -> dict:
    """The chart's ServiceAccount, Role and RoleBinding applied to a namespace, as Argo CD would apply them."""
    namespace = "rbac-check"
    create_namespace(api, namespace)
    create_namespace(api, "rbac-elsewhere")
    docs = render_chart("dev", namespace)
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    sa = of_kind(docs, "ServiceAccount")
    core.create_namespaced_service_account(namespace, sa)
    rbac.create_namespaced_role(namespace, of_kind(docs, "Role"))
    rbac.create_namespaced_role_binding(namespace, of_kind(docs, "RoleBinding"))
    return {"namespace": namespace, "service_account": sa["metadata"]["name"]}


def can(api, chart_rbac, verb: str, resource: str, namespace: str | None, subresource: str = "", group: str = ""):
    ns, sa = chart_rbac["namespace"], chart_rbac["service_account"]
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": f"system:serviceaccount:{ns}:{sa}",
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"],
            "resourceAttributes": {
                "verb": verb,
                "resource": resource,
                "subresource": subresource,
                "group": group,
                **({"namespace": namespace} if namespace else {}),
            },
        },
    }
    return client.AuthorizationV1Api(api).create_subject_access_review(review).status.allowed


@pytest.mark.parametrize("verb", ["get", "list", "watch"])
def test_service_account_may_read_pods_in_its_own_namespace(api, chart_rbac, verb):
    assert can(api, chart_rbac, verb, "pods", chart_rbac["namespace"])


DENIED = [
    ("create", "pods", "own", ""),
    ("delete", "pods", "own", ""),
    ("patch", "pods", "own", ""),
    ("update", "pods", "own", ""),
    ("get", "pods", "own", "log"),
    ("create", "pods", "own", "exec"),
    ("get", "secrets", "own", ""),
    ("list", "secrets", "own", ""),
    ("get", "configmaps", "own", ""),
    ("get", "serviceaccounts", "own", ""),
    ("create", "serviceaccounts", "own", "token"),
    ("get", "pods", "other", ""),
    ("list", "pods", "cluster", ""),
    ("list", "nodes", "cluster", ""),
    ("list", "namespaces", "cluster", ""),
]


@pytest.mark.parametrize(("verb", "resource", "where", "sub"), DENIED)
def test_service_account_may_do_nothing_else(api, chart_rbac, verb, resource, where, sub):
    namespace = {"own": chart_rbac["namespace"], "other": "rbac-elsewhere", "cluster": None}[where]
    assert not can(api, chart_rbac, verb, resource, namespace, sub), f"{verb} {resource}/{sub} in {where} allowed"


def pod_from_deployment(docs: list[dict], namespace: str) -> dict:
    template = of_kind(docs, "Deployment")["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pod-details-check", "namespace": namespace, "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    }


@pytest.fixture(scope="module")
def restricted_namespace(api) -> str:
    name = "pss-restricted"
    create_namespace(
        api,
        name,
        {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"},
    )
    client.CoreV1Api(api).create_namespaced_service_account(name, {"metadata": {"name": "pod-details"}})
    return name


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_chart_pod_is_admitted_under_pod_security_restricted(api, restricted_namespace, env):
    pod = pod_from_deployment(render_chart(env, restricted_namespace), restricted_namespace)
    pod["spec"]["serviceAccountName"] = "pod-details"
    created = client.CoreV1Api(api).create_namespaced_pod(restricted_namespace, pod, dry_run="All")
    assert created.metadata.name == "pod-details-check"


PRIVILEGED_VARIANTS = {
    # privileged implies escalation; the API refuses the contradiction before Pod Security sees it
    "privileged": lambda c, s: c["securityContext"].update(privileged=True, allowPrivilegeEscalation=True),
    "privilege-escalation": lambda c, s: c["securityContext"].update(allowPrivilegeEscalation=True),
    "root-user": lambda c, s: c["securityContext"].update(runAsUser=0, runAsNonRoot=False),
    "capabilities": lambda c, s: c["securityContext"].update(capabilities={"add": ["NET_ADMIN"]}),
    "host-network": lambda c, s: s.update(hostNetwork=True),
    "no-seccomp": lambda c, s: (
        s.get("securityContext", {}).pop("seccompProfile", None),
        c["securityContext"].pop("seccompProfile", None),
    ),
}


@pytest.mark.parametrize("variant", sorted(PRIVILEGED_VARIANTS))
def test_weakened_pod_is_rejected_by_the_apiserver(api, restricted_namespace, variant):
    pod = copy.deepcopy(pod_from_deployment(render_chart("dev", restricted_namespace), restricted_namespace))
    pod["spec"]["serviceAccountName"] = "pod-details"
    container = pod["spec"]["containers"][0]
    container.setdefault("securityContext", {})
    PRIVILEGED_VARIANTS[variant](container, pod["spec"])
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(api).create_namespaced_pod(restricted_namespace, pod, dry_run="All")
    assert err.value.status == 403
    assert 'violates PodSecurity "restricted' in json.loads(err.value.body)["message"]


@pytest.mark.toolchain
def test_control_plane_stops_cleanly_and_leaves_nothing_behind(tmp_path):
    started = time.monotonic()
    cp = LocalControlPlane(tmp_path / "cp")
    cp.start()
    print(f"control plane ready in {time.monotonic() - started:.1f}s")
    pids = [p.pid for p in cp.processes]
    assert len(pids) == 2
    cp.stop()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    assert not (tmp_path / "cp").exists()


def test_missing_binaries_fail_with_the_command_that_builds_them(tmp_path, monkeypatch):
    monkeypatch.setenv("GITOPS_TOOLCHAIN_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(Exception, match="run `make tools`"):
        LocalControlPlane(tmp_path / "cp").start()
