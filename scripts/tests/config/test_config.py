"""The GitOps configuration: the pod-details chart, the environments, the platform and the clusters.

Rendering and linting use the pinned Helm (the engine Argo CD bundles); manifests are checked with kubeconform
against the pinned schemas; the admission policies run in a real kube-apiserver. A missing tool fails with the
command to build it, never a skip.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import subprocess
import sys
import time
from functools import cache
from pathlib import Path

import pytest
import yaml
from kubernetes import config, dynamic
from kubernetes.client.rest import ApiException
from kubernetes.dynamic.exceptions import ConflictError

from gitops.toolchain import tool_path
from gitops.toolchain.schemas import schema_locations

# Renders with the pinned helm and checks with the pinned kubeconform and a real apiserver.
pytestmark = pytest.mark.toolchain

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "apps" / "pod-details" / "chart"
APP = "pod-details"
REPO_URL = "https://github.com/azurelaboratory/gitops-monorepo.git"
DIGEST = "sha256:" + "ab" * 32

ENVS = yaml.safe_load((REPO / "environments" / "promotion.yaml").read_text())["order"]
CLUSTERS = sorted(p.name for p in (REPO / "clusters").iterdir() if p.is_dir())


# --- helpers -----------------------------------------------------------------------------------------------------


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def env_file(env: str) -> dict:
    return load(REPO / "environments" / env / "env.yaml")


def release(env: str) -> dict:
    return load(REPO / "environments" / env / APP / "release.yaml")


def overlay(env: str) -> dict:
    return load(REPO / "environments" / env / APP / "values.yaml") or {}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(tool_path("helm")), *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def image_args(env: str) -> list[str]:
    image = release(env)["image"]
    return [
        "--set-string",
        f"image.repository={image['repository']},image.tag={image['tag']},image.digest={image['digest']}",
    ]


def template_args(env: str, *extra: str) -> list[str]:
    values = str(REPO / "environments" / env / APP / "values.yaml")
    return ["template", APP, str(CHART), "--namespace", f"apps-{env}", "-f", values, *image_args(env), *extra]


@cache
def render(env: str, *extra: str) -> tuple[dict, ...]:
    """The chart on main with ``env``'s overlay and the image from its release.yaml: what dev runs, and what prod
    runs after its next promotion (prod's current copy is checked by `gitops validate`, checks/test_validate.py)."""
    return tuple(d for d in yaml.safe_load_all(helm(*template_args(env, *extra)).stdout) if d)


def render_error(env: str, *extra: str) -> str:
    proc = helm(*template_args(env, *extra), check=False)
    assert proc.returncode != 0, "the render was expected to fail"
    return proc.stderr


def kinds(docs) -> list[str]:
    return sorted(d["kind"] for d in docs)


def one(docs, kind: str, name: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def container(docs) -> dict:
    return one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def kubeconform(paths: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = [str(tool_path("kubeconform")), "-strict", "-summary", *schema_locations(), *paths]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)


def manifests(root: Path) -> list[Path]:
    """Kubernetes manifests under root: everything but the data files (values, releases, env and cluster forms) and
    the charts promoted into environments (templates, checked once rendered: checks/test_validate.py)."""
    data = {"argocd-values.yaml", "cluster.yaml", "env.yaml", "release.yaml", "values.yaml", "promotion.yaml"}
    charts = {p.parent for p in root.rglob("Chart.yaml")}
    return sorted(
        p
        for p in root.rglob("*.yaml")
        if p.name not in data and not any(c in p.parents or c == p.parent for c in charts)
    )


def applications(path: Path) -> list[dict]:
    return [d for d in load_all(path) if d.get("kind") == "Application"]


def sources(app: dict) -> list[dict]:
    spec = app["spec"]
    return spec.get("sources") or [spec["source"]]


# --- chart: lint, schema ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_chart_lints_strict_with_each_environment(env):
    values = str(REPO / "environments" / env / APP / "values.yaml")
    proc = helm("lint", "--strict", str(CHART), "-f", values, *image_args(env), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_schema_rejects_an_unknown_key_naming_it(tmp_path):
    typo = tmp_path / "typo.yaml"
    typo.write_text("autoscaling:\n  maxReplica: 3\n")
    err = render_error("prod", "-f", str(typo))
    assert "at '/autoscaling'" in err
    assert "'maxReplica' not allowed" in err


def test_schema_rejects_a_typo_at_the_top_level(tmp_path):
    typo = tmp_path / "typo.yaml"
    typo.write_text("hostname:\n  - x.azurelaboratory.com\n")
    assert "additional properties 'hostname' not allowed" in render_error("dev", "-f", str(typo))


def test_schema_rejects_a_wrong_type_naming_the_key():
    err = render_error("prod", "--set-string", "autoscaling.maxReplicas=many")
    assert "at '/autoscaling/maxReplicas'" in err
    assert "want integer" in err


def test_schema_rejects_the_latest_tag():
    assert "at '/image/tag'" in render_error("dev", "--set-string", "image.tag=latest")


@pytest.mark.parametrize("digest", ["sha256:abc", "md5:" + "a" * 64, "sha256:" + "A" * 64])
def test_schema_rejects_a_malformed_digest(digest):
    assert "at '/image/digest'" in render_error("dev", "--set-string", f"image.digest={digest}")


def test_schema_bounds_autoscaling_like_the_platform_policy():
    assert "at '/autoscaling/maxReplicas'" in render_error("prod", "--set", "autoscaling.maxReplicas=101")
    err = render_error("prod", "--set", "autoscaling.targetCPUUtilizationPercentage=95")
    assert "at '/autoscaling/targetCPUUtilizationPercentage'" in err


def test_image_tag_is_required():
    proc = helm("template", APP, str(CHART), "-f", str(REPO / "environments/dev" / APP / "values.yaml"), check=False)
    assert proc.returncode != 0
    assert "image.tag is required" in proc.stderr


def undocumented_values(text: str) -> list[str]:
    """Keys of values.yaml that helm-docs would list without a description.

    helm-docs documents a key from the `# --` comment block right above it. A mapping of further keys needs no comment
    of its own; a commented mapping (or list) is documented as a whole, children included.
    """
    lines = text.splitlines()
    missing: list[str] = []
    skip_deeper_than: int | None = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        if skip_deeper_than is not None:
            if indent > skip_deeper_than or (indent == skip_deeper_than and stripped.startswith("- ")):
                continue
            skip_deeper_than = None
        key = re.match(r"([A-Za-z][\w-]*):(.*)$", stripped)
        if not key:
            continue
        following = next((x for x in lines[i + 1 :] if x.strip() and not x.strip().startswith("#")), "")
        nested = not key.group(2).strip() and (
            len(following) - len(following.lstrip()) > indent or following.strip().startswith("- ")
        )
        block = []
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("#"):
            block.append(lines[j].strip())
            j -= 1
        documented = any(c.startswith("# --") for c in block)
        if nested and (documented or following.strip().startswith("- ")):
            skip_deeper_than = indent
        if not documented and not (nested and not following.strip().startswith("- ")):
            missing.append(f"values.yaml:{i + 1}: {key.group(1)}")
    return missing


def test_every_value_has_a_helm_docs_comment():
    missing = undocumented_values((CHART / "values.yaml").read_text())
    assert not missing, "values without a `# --` comment (helm-docs):\n" + "\n".join(missing)


def test_the_helm_docs_check_finds_an_undocumented_value():
    text = "a:\n  # -- documented\n  b: 1\n  c: 2\n# -- whole map\nd:\n  e: 1\nf:\n  - x\n"
    assert undocumented_values(text) == ["values.yaml:4: c", "values.yaml:8: f"]


# --- chart: what it renders -------------------------------------------------------------------------------------


def test_dev_renders_a_fixed_single_replica_without_autoscaler_or_budget():
    docs = render("dev")
    assert "HorizontalPodAutoscaler" not in kinds(docs)
    assert "PodDisruptionBudget" not in kinds(docs)
    assert one(docs, "Deployment")["spec"]["replicas"] == 1
    assert container(docs)["resources"]["requests"] == {"cpu": "50m", "memory": "50M", "ephemeral-storage": "32Mi"}
    assert set(container(docs)["resources"]["limits"]) == {"cpu", "memory", "ephemeral-storage"}


def test_prod_leaves_replicas_to_the_autoscaler():
    docs = render("prod")
    assert "replicas" not in one(docs, "Deployment")["spec"]
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 100)
    assert hpa["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}
    ]
    assert {"scaleUp", "scaleDown"} <= set(hpa["spec"]["behavior"])
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"] == one(docs, "Deployment")["spec"]["selector"]


@pytest.mark.parametrize("env", ENVS)
def test_pod_runs_restricted_with_numeric_ids(env):
    pod = one(render(env), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    c = pod["containers"][0]
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert tmp["emptyDir"]["sizeLimit"]
    assert pod["automountServiceAccountToken"] is True
    assert one(render(env), "ServiceAccount")["automountServiceAccountToken"] is False


@pytest.mark.parametrize("env", ENVS)
def test_probes_and_port(env):
    c = container(render(env))
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/api/v1/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/api/v1/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/api/v1/healthz", "port": "http"}
    assert "lifecycle" not in c, "no preStop hook: the server drains by itself"


def test_downward_api_and_settings_reach_the_container():
    env = {e["name"]: e for e in container(render("dev"))["env"]}
    fields = {name: e["valueFrom"]["fieldRef"]["fieldPath"] for name, e in env.items() if "valueFrom" in e}
    assert fields == {
        "POD_NAME": "metadata.name",
        "POD_NAMESPACE": "metadata.namespace",
        "NODE_NAME": "spec.nodeName",
        "POD_IP": "status.podIP",
        "POD_SERVICE_ACCOUNT": "spec.serviceAccountName",
    }
    values = load(CHART / "values.yaml")["service"]
    assert env["DRAIN_SECONDS"]["value"] == str(values["drainSeconds"])
    assert env["GRACEFUL_TIMEOUT_SECONDS"]["value"] == str(values["gracefulTimeoutSeconds"])
    assert env["CACHE_TTL_SECONDS"]["value"] == str(values["cacheTtlSeconds"])
    assert env["WEB_CONCURRENCY"]["value"] == str(values["webConcurrency"])
    assert env["BIND"]["value"] == "0.0.0.0:8080"


def test_termination_grace_period_is_derived_from_the_drain():
    pod = one(render("prod", "--set", "service.drainSeconds=12,service.gracefulTimeoutSeconds=25"), "Deployment")
    margin = load(CHART / "values.yaml")["terminationGraceMarginSeconds"]
    assert pod["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 12 + 25 + margin
    env = {e["name"]: e.get("value") for e in pod["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (env["DRAIN_SECONDS"], env["GRACEFUL_TIMEOUT_SECONDS"]) == ("12", "25")


def test_image_is_pinned_by_digest_when_there_is_one():
    repo = release("dev")["image"]["repository"]
    assert container(render("dev", "--set-string", f"image.digest={DIGEST}"))["image"] == f"{repo}@{DIGEST}"
    assert (
        container(render("dev", "--set-string", "image.digest="))["image"] == f"{repo}:{release('dev')['image']['tag']}"
    )


@pytest.mark.parametrize("env", ENVS)
def test_topology_spread_over_zones_and_nodes(env):
    spread = one(render(env), "Deployment")["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert [(s["topologyKey"], s["whenUnsatisfiable"]) for s in spread] == [
        ("topology.kubernetes.io/zone", "ScheduleAnyway"),
        ("kubernetes.io/hostname", "ScheduleAnyway"),
    ]


def test_role_reads_pods_and_nothing_else():
    docs = render("dev")
    assert one(docs, "Role")["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    binding = one(docs, "RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": APP}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": APP, "namespace": "apps-dev"}]


def test_network_policy_admits_gateway_and_monitoring_and_egresses_to_dns_and_apiserver():
    docs = render("dev")
    policy = one(docs, "NetworkPolicy", APP)["spec"]
    assert policy["podSelector"]["matchLabels"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["ingress"]
    namespaces = [p["namespaceSelector"]["matchLabels"] for p in ingress["from"] if "namespaceSelector" in p]
    assert namespaces == [{"kubernetes.io/metadata.name": "gateway"}, {"kubernetes.io/metadata.name": "monitoring"}]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    dns, apiserver = policy["egress"]
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert sorted((p["port"], p["protocol"]) for p in dns["ports"]) == [(53, "TCP"), (53, "UDP")]
    assert [t["ipBlock"]["cidr"] for t in apiserver["to"]] == ["0.0.0.0/0"]
    assert [(p["port"], p["protocol"]) for p in apiserver["ports"]] == [(443, "TCP"), (6443, "TCP")]


def test_network_policy_is_configurable():
    docs = render(
        "dev",
        "--set", "networkPolicy.ingressNamespaces={edge}",
        "--set", "networkPolicy.apiServer.cidrs={10.1.0.0/28}",
        "--set", "networkPolicy.apiServer.ports={443}",
    )  # fmt: skip
    policy = one(docs, "NetworkPolicy", APP)["spec"]
    assert policy["ingress"][0]["from"][0] == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}}
    }
    assert policy["egress"][1] == {
        "to": [{"ipBlock": {"cidr": "10.1.0.0/28"}}],
        "ports": [{"port": 443, "protocol": "TCP"}],
    }


def test_test_pod_is_outside_the_service_and_inside_the_network_policy():
    docs = render("dev")
    pod = one(docs, "Pod")
    service_selector = one(docs, "Service")["spec"]["selector"]
    assert not service_selector.items() <= pod["metadata"]["labels"].items()
    allowed = one(docs, "NetworkPolicy", APP)["spec"]["ingress"][0]["from"]
    assert any(
        "podSelector" in p and p["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        for p in allowed
    )


def test_test_pod_is_pinned_restricted_and_checks_health():
    pod = one(render("dev"), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (c,) = pod["spec"]["containers"]
    assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[a-f0-9]{64}", c["image"]), c["image"]
    assert c["args"][-1] == "http://pod-details:80/api/v1/healthz"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert set(c["resources"]["limits"]) == {"cpu", "memory", "ephemeral-storage"}


@pytest.mark.parametrize("env", ENVS)
def test_http_route_attaches_to_the_shared_gateway_with_the_environment_host(env):
    route = one(render(env), "HTTPRoute")["spec"]
    assert route["parentRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge", "namespace": "gateway"}
    ]
    assert route["hostnames"] == [f"{APP}-{env}.{env_file(env)['domain']}"]
    assert route["rules"][0]["backendRefs"] == [{"name": APP, "port": 80}]


def test_routing_without_hostnames_fails_loudly():
    proc = helm("template", APP, str(CHART), "--set-string", "image.tag=1.0.0", check=False)
    assert "hostnames must list at least one host" in proc.stderr


def test_ingress_is_off_by_default_and_complete_when_on():
    assert "Ingress" not in kinds(render("dev"))
    assert "ingress.className is required" in render_error("dev", "--set", "ingress.enabled=true")
    ingress = one(render("dev", "--set", "ingress.enabled=true,ingress.className=webapprouting"), "Ingress")
    assert ingress["spec"]["ingressClassName"] == "webapprouting"
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-production"
    host = f"{APP}-dev.azurelaboratory.com"
    assert ingress["spec"]["tls"] == [{"secretName": f"{APP}-tls", "hosts": [host]}]
    assert [r["host"] for r in ingress["spec"]["rules"]] == [host]


def test_service_monitor_follows_the_cluster_capabilities():
    assert "ServiceMonitor" not in kinds(render("dev"))
    with_crd = render("dev", "--api-versions", "monitoring.coreos.com/v1/ServiceMonitor")
    monitor = one(with_crd, "ServiceMonitor")["spec"]
    assert monitor["endpoints"][0]["port"] == "http"
    assert monitor["selector"]["matchLabels"] == one(with_crd, "Service")["spec"]["selector"]
    assert "ServiceMonitor" in kinds(render("dev", "--set", "serviceMonitor.enabled=true"))
    off = render(
        "dev", "--api-versions", "monitoring.coreos.com/v1/ServiceMonitor", "--set", "serviceMonitor.autoDetect=false"
    )
    assert "ServiceMonitor" not in kinds(off)


@pytest.mark.parametrize("env", ENVS)
def test_rendered_manifests_match_the_pinned_schemas(env):
    out = helm(*template_args(env, "--set", "serviceMonitor.enabled=true,ingress.enabled=true,ingress.className=x"))
    proc = kubeconform(["-"], stdin=out.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_platform_and_cluster_manifests_match_the_pinned_schemas():
    files = [
        str(p) for p in manifests(REPO / "platform") + manifests(REPO / "clusters") + manifests(REPO / "environments")
    ]
    proc = kubeconform(files)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- environments -----------------------------------------------------------------------------------------------


def test_promotion_order_names_every_environment_folder():
    folders = sorted(p.name for p in (REPO / "environments").iterdir() if p.is_dir())
    assert sorted(ENVS) == folders


@pytest.mark.parametrize("env", ENVS)
def test_env_form(env):
    data = env_file(env)
    assert set(data) == {"name", "cluster", "namespace", "domain"}, "how it syncs is said in its ApplicationSet only"
    assert data["name"] == env
    assert data["namespace"] == f"apps-{env}"
    assert data["domain"] == "azurelaboratory.com"
    assert (REPO / "clusters" / data["cluster"]).is_dir()


@pytest.mark.parametrize("env", ENVS)
def test_release_form(env):
    data = release(env)
    assert set(data["image"]) == {"repository", "tag", "digest"}
    assert isinstance(data["image"]["tag"], str) and data["image"]["tag"] not in ("", "latest")
    assert re.fullmatch(r"(sha256:[a-f0-9]{64})?", data["image"]["digest"])
    if env == ENVS[0]:
        assert set(data) == {"image"}, f"{env} runs apps/{APP}/chart on main: its release names the image only"
    else:
        assert set(data) == {"image", "chart"} and set(data["chart"]) == {"commit", "tree"}
        copy = REPO / "environments" / env / APP / "chart"
        tree = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", f"{data['chart']['commit']}:apps/{APP}/chart"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        assert data["chart"]["tree"] == tree, f"{env}'s chart.tree is apps/{APP}/chart at chart.commit"
        assert (copy / "Chart.yaml").is_file(), f"{env} runs its own copy of the chart"


@pytest.mark.parametrize("env", ENVS)
def test_overlay_sets_the_environment_hostname(env):
    assert overlay(env)["hostnames"] == [f"{APP}-{env}.{env_file(env)['domain']}"]


def appset(env: str) -> dict:
    return load(REPO / "environments" / env / "applicationset.yaml")


@pytest.mark.parametrize("env", ENVS)
def test_applicationset_follows_the_agreed_shape(env):
    spec = appset(env)["spec"]
    assert spec["goTemplate"] is True
    assert spec["goTemplateOptions"] == ["missingkey=error"]
    (gen,) = spec["generators"]
    assert gen["git"]["repoURL"] == REPO_URL
    assert gen["git"]["files"] == [{"path": f"environments/{env}/*/release.yaml"}]
    tpl = spec["template"]
    assert tpl["metadata"]["name"] == f"{{{{ .path.basename }}}}-{env}"
    app = tpl["spec"]
    assert app["project"] == "apps"
    assert app["destination"]["namespace"] == env_file(env)["namespace"]
    chart, values = app["sources"]
    assert chart["repoURL"] == values["repoURL"] == REPO_URL
    if env == ENVS[0]:
        assert chart["path"] == "apps/{{ .path.basename }}/chart"
    else:
        assert chart["path"] == f"environments/{env}/{{{{ .path.basename }}}}/chart", "the promoted copy"
    assert chart["targetRevision"] == "main", "every environment is read at main"
    assert chart["helm"]["valueFiles"] == [f"$values/environments/{env}/{{{{ .path.basename }}}}/values.yaml"]
    assert chart["helm"]["valuesObject"]["image"] == {
        "repository": "{{ .image.repository }}",
        "tag": "{{ .image.tag }}",
        "digest": "{{ .image.digest }}",
    }
    # One repository, one revision: Argo CD refuses an Application whose sources read it at two (argo-cd#12159).
    assert values == {"repoURL": REPO_URL, "targetRevision": chart["targetRevision"], "ref": "values"}
    assert "CreateNamespace=false" in app["syncPolicy"]["syncOptions"]


@pytest.mark.parametrize("env", ENVS)
def test_applicationset_templates_use_plain_field_access_only(env):
    text = (REPO / "environments" / env / "applicationset.yaml").read_text()
    expressions = re.findall(r"\{\{.*?\}\}", text)
    assert expressions
    bad = [e for e in expressions if not re.fullmatch(r"\{\{ \.[A-Za-z_]\w*(\.[A-Za-z_]\w*)* \}\}", e)]
    assert not bad, f"only {{{{ .a.b }}}} expressions are rendered like Argo CD: {bad}"


def test_prod_is_protected_from_deletion_and_autoscaler_drift():
    spec = appset("prod")["spec"]
    assert spec["syncPolicy"] == {"applicationsSync": "create-update", "preserveResourcesOnDeletion": True}
    app = spec["template"]["spec"]
    assert {"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]} in app["ignoreDifferences"]
    assert "RespectIgnoreDifferences=true" in app["syncPolicy"]["syncOptions"]


def test_dev_announces_healthy_images():
    annotations = appset("dev")["spec"]["template"]["metadata"]["annotations"]
    assert "notifications.argoproj.io/subscribe.on-dev-healthy.github" in annotations
    notifications = load(REPO / "clusters" / env_file("dev")["cluster"] / "argocd-values.yaml")["notifications"]
    assert "trigger.on-dev-healthy" in notifications["triggers"]
    body = yaml.safe_load(notifications["templates"]["template.dev-healthy"])["webhook"]["github"]
    assert body["method"] == "POST" and body["path"].endswith("/dispatches")
    assert '"event_type": "dev-healthy"' in body["body"]


# --- clusters and platform --------------------------------------------------------------------------------------


def hosted(cluster: str) -> list[str]:
    return [env for env in ENVS if env_file(env)["cluster"] == cluster]


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_cluster_form_agrees_with_the_environments(cluster):
    assert load(REPO / "clusters" / cluster / "cluster.yaml")["environments"] == hosted(cluster)


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_cluster_defines_restricted_app_namespaces(cluster):
    namespaces = {
        d["metadata"]["name"]: d["metadata"]["labels"]
        for d in load_all(REPO / "clusters" / cluster / "namespaces.yaml")
    }
    assert sorted(namespaces) == sorted(env_file(env)["namespace"] for env in hosted(cluster))
    for env in hosted(cluster):
        labels = namespaces[env_file(env)["namespace"]]
        for mode in ("enforce", "audit", "warn"):
            assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert labels["platform.azurelaboratory.com/apps"] == "true"
        assert labels["platform.azurelaboratory.com/environment"] == env


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_gateway_has_a_tls_listener_for_every_hosted_hostname(cluster):
    gateway = load(REPO / "clusters" / cluster / "gateway.yaml")
    assert gateway["metadata"]["annotations"]["cert-manager.io/cluster-issuer"].startswith("letsencrypt-")
    listeners = gateway["spec"]["listeners"]
    http = [x for x in listeners if x["protocol"] == "HTTP"]
    assert [(x["name"], x["port"], x["allowedRoutes"]["namespaces"]["from"]) for x in http] == [("http", 80, "Same")]
    https = {x["hostname"]: x for x in listeners if x["protocol"] == "HTTPS"}
    wanted = {h for env in hosted(cluster) for h in overlay(env)["hostnames"]}
    assert set(https) == wanted
    for listener in https.values():
        assert listener["tls"]["certificateRefs"][0]["name"]
        assert listener["allowedRoutes"]["namespaces"]["selector"]["matchLabels"] == {
            "platform.azurelaboratory.com/apps": "true"
        }


def root(cluster: str) -> list[dict]:
    return load_all(REPO / "clusters" / cluster / "root.yaml")


def project(cluster: str, name: str) -> dict:
    return next(d for d in root(cluster) if d["kind"] == "AppProject" and d["metadata"]["name"] == name)


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_apps_project_is_confined_to_app_namespaces(cluster):
    spec = project(cluster, "apps")["spec"]
    assert spec["sourceRepos"] == [REPO_URL]
    assert [d["namespace"] for d in spec["destinations"]] == ["apps-*"]
    assert spec["clusterResourceWhitelist"] == []
    blacklisted = {(k["group"], k["kind"]) for k in spec["namespaceResourceBlacklist"]}
    assert {("", "ResourceQuota"), ("argoproj.io", "*"), ("gateway.networking.k8s.io", "Gateway")} <= blacklisted


def test_prod_apps_project_freezes_automated_syncs_out_of_hours():
    cluster = env_file("prod")["cluster"]
    windows = project(cluster, "apps")["spec"]["syncWindows"]
    assert windows and all(w["kind"] == "deny" and w["manualSync"] is True for w in windows)
    friday = next(w for w in windows if w["schedule"].endswith("* * 5"))
    assert (friday["schedule"], friday["duration"]) == ("0 16 * * 5", "62h")  # Friday 16:00 to Monday 06:00
    assert "syncWindows" not in project(env_file("dev")["cluster"], "apps")["spec"]


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_root_brings_in_the_hosted_environments_and_the_platform(cluster):
    (envs,) = load_all(REPO / "clusters" / cluster / "environments.yaml")
    assert envs["kind"] == "ApplicationSet"
    (gen,) = envs["spec"]["generators"]
    assert gen["git"]["files"] == [{"path": "environments/*/env.yaml"}]
    assert gen["selector"]["matchLabels"] == {"cluster": cluster}
    assert envs["spec"]["template"]["spec"]["source"]["directory"]["include"] == "applicationset.yaml"
    apps = {a["metadata"]["name"]: a for a in applications(REPO / "clusters" / cluster / "root.yaml")}
    assert apps["platform"]["spec"]["source"]["path"] == "platform"
    assert apps["root"]["spec"]["source"]["path"] == f"clusters/{cluster}"
    # root's waves wait for each child's sync (clusters/argocd-values.yaml), never for root's own.
    assert apps["root"]["metadata"]["annotations"]["platform.azurelaboratory.com/applies-itself"] == "true"
    assert not [
        n
        for n, a in apps.items()
        if n != "root" and "platform.azurelaboratory.com/applies-itself" in (a["metadata"].get("annotations") or {})
    ]


def wave(doc: dict) -> int:
    return int((doc["metadata"].get("annotations") or {}).get("argocd.argoproj.io/sync-wave", "0"))


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_a_fresh_cluster_bootstraps_in_one_pass(cluster):
    """`kubectl apply -f root.yaml` creates everything root.yaml holds at once; root applies the rest of the folder in
    sync waves. The environments (whose apps need their namespace, the Gateway and the platform's CRDs and policies)
    must come last, from root only, or every app fails its first syncs and backs off (`make e2e` counts them)."""
    folder = REPO / "clusters" / cluster
    (root_app,) = [a for a in applications(folder / "root.yaml") if a["metadata"]["name"] == "root"]
    included = set(root_app["spec"]["source"]["directory"]["include"].strip("{}").split(","))
    manifests = {p.name for p in folder.glob("*.yaml")} - {"cluster.yaml", "argocd-values.yaml"}
    assert included == manifests, "root applies every manifest of its folder, and only those"
    assert not [d for d in root(cluster) if d["kind"] == "ApplicationSet"], "kubectl apply would create it at once"
    (envs,) = load_all(folder / "environments.yaml")
    before = [d for f in sorted(manifests - {"environments.yaml"}) for d in load_all(folder / f)]
    latest = max(wave(d) for d in before)
    assert wave(envs) > latest, f"the environments ApplicationSet must come after every other wave of root ({latest})"


def upstream_applications() -> list[tuple[str, dict]]:
    found = []
    for path in sorted((REPO / "platform").rglob("*.yaml")) + [REPO / "clusters" / c / "root.yaml" for c in CLUSTERS]:
        for app in applications(path):
            for source in sources(app):
                if source["repoURL"] != REPO_URL:
                    found.append((f"{path.relative_to(REPO)}:{app['metadata']['name']}", source))
    return found


@pytest.mark.parametrize(("where", "source"), upstream_applications(), ids=lambda v: v if isinstance(v, str) else "")
def test_upstream_sources_are_pinned_and_allowed(where, source):
    assert re.fullmatch(r"v?\d+\.\d+\.\d+", str(source["targetRevision"])), f"{where} is not pinned"
    for cluster in CLUSTERS:
        assert source["repoURL"] in project(cluster, "platform")["spec"]["sourceRepos"], f"{where} in {cluster}"


def test_yaml_passes_yamllint():
    # Paths relative to the repository, as pre-commit passes them: .yamllint's ignore patterns are relative too.
    paths = ["environments", "platform", "clusters"]
    paths += [str((CHART / name).relative_to(REPO)) for name in ("values.yaml", "Chart.yaml")]
    proc = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-c", ".yamllint", *paths],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_values_schema_is_draft_07_and_closed_at_every_level():
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    open_objects = []

    def walk(node: dict, path: str) -> None:
        if node.get("type") == "object" and "properties" in node and node.get("additionalProperties") is not False:
            open_objects.append(path)
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}/{key}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")

    walk(schema, "")
    assert not open_objects


# --- admission policies in a real apiserver ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def dyn(kube_cluster) -> dynamic.DynamicClient:
    return dynamic.DynamicClient(config.new_client_from_config(str(kube_cluster.kubeconfig)))


def create(dyn: dynamic.DynamicClient, doc: dict, namespace: str | None = None, dry_run: bool = False):
    resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
    kwargs = {"dry_run": "All"} if dry_run else {}
    return resource.create(body=doc, namespace=namespace or doc["metadata"].get("namespace"), **kwargs)


def ensure(dyn: dynamic.DynamicClient, doc: dict, namespace: str | None = None) -> None:
    """Create `doc` unless it exists: the control plane is the session's, and `gitops validate --live` applies the
    same policies and namespaces to it."""
    with contextlib.suppress(ConflictError):
        create(dyn, doc, namespace)


def denial(dyn, doc: dict, namespace: str, within: float = 30.0) -> str:
    """The apiserver's refusal of `doc`. Each policy is loaded by the apiserver on its own schedule, so a policy
    created a moment ago may not be enforced yet: retry until it is, or fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            create(dyn, doc, namespace, dry_run=True)
        except ApiException as err:
            return json.loads(err.body)["message"]
        if time.monotonic() > deadline:
            pytest.fail(f"{doc['kind']} {doc['metadata'].get('name')} was admitted in {namespace} for {within:.0f}s")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def policies(dyn) -> dict[str, str]:
    """platform/policies/ and every cluster's app namespaces, applied; returns {env: namespace}."""
    for path in sorted((REPO / "platform" / "policies").glob("*.yaml")):
        for doc in load_all(path):
            ensure(dyn, doc)
    for cluster in CLUSTERS:
        for doc in load_all(REPO / "clusters" / cluster / "namespaces.yaml"):
            ensure(dyn, doc)
            # Pod admission looks the ServiceAccount up; no controller-manager runs to create `default`.
            sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}
            ensure(dyn, sa, doc["metadata"]["name"])
    namespaces = {env: env_file(env)["namespace"] for env in ENVS}
    # Policies take effect asynchronously: wait until a known violation is refused.
    hpa = copy.deepcopy(one(render("prod"), "HorizontalPodAutoscaler"))
    hpa["spec"]["maxReplicas"] = 1000
    deadline = time.monotonic() + 30
    while True:
        try:
            create(dyn, hpa, namespaces["prod"], dry_run=True)
        except ApiException:
            break
        assert time.monotonic() < deadline, "admission policies did not take effect within 30 s"
        time.sleep(0.5)
    return namespaces


@pytest.mark.parametrize("env", ENVS)
def test_policies_admit_the_chart_as_rendered(dyn, policies, env):
    for doc in render(env):
        if doc["kind"] in ("HTTPRoute",):  # no Gateway API CRDs in this apiserver
            continue
        # Server-side apply, as Argo CD syncs and `gitops validate --live` checks: the ServiceAccount may exist.
        resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        dyn.server_side_apply(resource, body=doc, namespace=policies[env], field_manager="test", dry_run="All")


def mutated_deployment(change) -> dict:
    deployment = copy.deepcopy(one(render("prod"), "Deployment"))
    spec = deployment["spec"]["template"]["spec"]
    change(spec["containers"][0], spec)
    return deployment


WORKLOAD_VIOLATIONS = {
    "no-limits": (lambda c, s: c["resources"].pop("limits"), "apps-container-resources", "resources.limits"),
    "no-cpu-request": (lambda c, s: c["resources"]["requests"].pop("cpu"), "apps-container-resources", "cpu"),
    "no-readiness": (lambda c, s: c.pop("readinessProbe"), "apps-container-probes", "readinessProbe"),
    "no-liveness": (lambda c, s: c.pop("livenessProbe"), "apps-container-probes", "livenessProbe"),
    "latest": (lambda c, s: c.update(image="docker.io/x/y:latest"), "apps-image-pinning", "(docker.io/x/y:latest)"),
    "no-tag": (lambda c, s: c.update(image="registry:5000/x/y"), "apps-image-pinning", "(registry:5000/x/y)"),
    "privileged": (
        lambda c, s: c["securityContext"].update(privileged=True, allowPrivilegeEscalation=True),
        "apps-workload-isolation",
        "must not be privileged",
    ),
    "host-network": (lambda c, s: s.update(hostNetwork=True), "apps-workload-isolation", "hostNetwork"),
    "host-pid": (lambda c, s: s.update(hostPID=True), "apps-workload-isolation", "hostPID"),
}


@pytest.mark.parametrize("violation", sorted(WORKLOAD_VIOLATIONS))
@pytest.mark.parametrize("env", ENVS)
def test_policies_refuse_unsafe_workloads_with_a_clear_message(dyn, policies, env, violation):
    change, policy, detail = WORKLOAD_VIOLATIONS[violation]
    message = denial(dyn, mutated_deployment(change), policies[env])
    assert f"ValidatingAdmissionPolicy '{policy}'" in message
    assert "Deployment pod-details" in message and detail in message


def test_digest_pinned_images_are_admitted(dyn, policies):
    create(
        dyn, mutated_deployment(lambda c, s: c.update(image=f"docker.io/x/y@{DIGEST}")), policies["prod"], dry_run=True
    )


def test_privileged_bare_pods_are_refused_even_without_pod_security(dyn, policies):
    """Pod Security refuses first in app namespaces; the policy still holds where its label was loosened."""
    loosened = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "apps-loosened", "labels": {"platform.azurelaboratory.com/apps": "true"}},
    }
    create(dyn, loosened)
    create(dyn, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}, "apps-loosened")
    pod = copy.deepcopy(one(render("dev"), "Pod"))
    create(dyn, pod, "apps-loosened", dry_run=True)
    pod["spec"]["containers"][0]["securityContext"].update(privileged=True, allowPrivilegeEscalation=True)
    message = denial(dyn, pod, "apps-loosened")
    assert "ValidatingAdmissionPolicy 'apps-pod-isolation'" in message
    assert "Pod pod-details-test-connection: container(s) curl must not be privileged" in message
    pod["spec"]["containers"][0]["securityContext"].pop("privileged")
    pod["spec"]["hostIPC"] = True
    assert "hostIPC must be unset or false" in denial(dyn, pod, "apps-loosened")


def mutated_hpa(**spec) -> dict:
    hpa = copy.deepcopy(one(render("prod"), "HorizontalPodAutoscaler"))
    hpa["spec"].update(spec)
    return hpa


def cpu_target(value: int) -> list[dict]:
    return [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": value}},
        }
    ]


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize(
    ("spec", "detail"),
    [
        ({"maxReplicas": 101}, "spec.maxReplicas is 101, the platform allows at most 100"),
        ({"metrics": cpu_target(95)}, "averageUtilization between 50 and 90, got Utilization 95%"),
        ({"metrics": cpu_target(40)}, "averageUtilization between 50 and 90, got Utilization 40%"),
    ],
)
def test_hpa_bounds_hold_everywhere(dyn, policies, env, spec, detail):
    message = denial(dyn, mutated_hpa(**spec), policies[env])
    assert "apps-hpa-bounds" in message and detail in message


def test_prod_needs_two_replicas_and_dev_does_not(dyn, policies):
    message = denial(dyn, mutated_hpa(minReplicas=1), policies["prod"])
    assert "apps-hpa-min-replicas-prod" in message and "spec.minReplicas is 1, prod requires at least 2" in message
    create(dyn, mutated_hpa(minReplicas=1), policies["dev"], dry_run=True)
