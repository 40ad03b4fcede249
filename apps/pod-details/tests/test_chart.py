"""The app's chart on its own: its values (schema, documentation), the hardening of the pod and of the `helm test`
pod, its RBAC, network policies and routing, tracing, autoscaling on request rate, the dashboard. Rendered with the
pinned Helm, checked with the pinned kubeconform, and dry-run through a real kube-apiserver with the platform's
admission policies and Pod Security. `gitops new-app` copies these tests with the chart, so every app is held to them.
How each environment's overlay renders it is tested with the environments (scripts/tests/config/test_config.py).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pod_details_support import chart

from gitops_testing.plugin import Admission, ControlPlane

# Every test renders the chart with the pinned helm.
pytestmark = pytest.mark.toolchain

PROD_LIKE = (
    "--set", "autoscaling.enabled=true,autoscaling.minReplicas=2,autoscaling.maxReplicas=100",
    "--set", "podDisruptionBudget.enabled=true",
)  # fmt: skip
RPS = ("--set", "autoscaling.metric=requestsPerSecond,autoscaling.targetRequestsPerSecond=50")
EVERYTHING = (
    *PROD_LIKE,
    *RPS,
    "--set", "otel.endpoint=http://otel-collector.monitoring:4318",
    "--set", "serviceMonitor.enabled=true,prometheusRule.enabled=true,grafanaDashboard.enabled=true",
)  # fmt: skip


def pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return chart.one(docs, "Deployment")["spec"]["template"]["spec"]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return pod_spec(docs)["containers"][0]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def defaults() -> dict[str, Any]:
    return yaml.safe_load((chart.CHART / "values.yaml").read_text())


# --- values: schema and documentation ---------------------------------------------------------------------------


def test_values_schema_is_draft_07_and_closed_at_every_level() -> None:
    schema = json.loads((chart.CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    open_objects = []

    def walk(node: dict[str, Any], path: str) -> None:
        if node.get("type") == "object" and "properties" in node and node.get("additionalProperties") is not False:
            open_objects.append(path)
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}/{key}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")

    walk(schema, "")
    assert not open_objects


def test_schema_rejects_an_unknown_key_naming_it(tmp_path: Path) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("autoscaling:\n  maxReplica: 3\n")
    refusal = chart.refused(*PROD_LIKE, "-f", str(typo))
    assert "at '/autoscaling'" in refusal and "'maxReplica' not allowed" in refusal


def test_schema_rejects_a_typo_at_the_top_level(tmp_path: Path) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("hostname:\n  - x.example.com\n")
    assert "additional properties 'hostname' not allowed" in chart.refused("-f", str(typo))


def test_schema_rejects_a_wrong_type_naming_the_key() -> None:
    refusal = chart.refused(*PROD_LIKE, "--set-string", "autoscaling.maxReplicas=many")
    assert "at '/autoscaling/maxReplicas'" in refusal and "want integer" in refusal


def test_schema_rejects_the_latest_tag() -> None:
    assert "at '/image/tag'" in chart.refused("--set-string", "image.tag=latest")


@pytest.mark.parametrize("digest", ["sha256:abc", "md5:" + "a" * 64, "sha256:" + "A" * 64])
def test_schema_rejects_a_malformed_digest(digest: str) -> None:
    assert "at '/image/digest'" in chart.refused("--set-string", f"image.digest={digest}")


def test_schema_bounds_autoscaling_like_the_platform_policy() -> None:
    assert "at '/autoscaling/maxReplicas'" in chart.refused(*PROD_LIKE, "--set", "autoscaling.maxReplicas=101")
    refusal = chart.refused(*PROD_LIKE, "--set", "autoscaling.targetCPUUtilizationPercentage=95")
    assert "at '/autoscaling/targetCPUUtilizationPercentage'" in refusal


def test_the_image_tag_and_a_hostname_are_required() -> None:
    # The chart's defaults leave both empty: an environment must set them (the tag from its release.yaml).
    hostnames = ("--set", f"hostnames={{{chart.HOSTNAME}}}")
    assert "image.tag is required" in chart.refused(*hostnames, required=())
    assert "hostnames must list at least one host" in chart.refused("--set-string", "image.tag=1.0.0", required=())


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


def test_every_value_has_a_helm_docs_comment() -> None:
    missing = undocumented_values((chart.CHART / "values.yaml").read_text())
    assert not missing, "values without a `# --` comment (helm-docs):\n" + "\n".join(missing)


def test_the_helm_docs_check_finds_an_undocumented_value() -> None:
    text = "a:\n  # -- documented\n  b: 1\n  c: 2\n# -- whole map\nd:\n  e: 1\nf:\n  - x\n"
    assert undocumented_values(text) == ["values.yaml:4: c", "values.yaml:8: f"]


# --- the pod ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [(), PROD_LIKE], ids=["defaults", "autoscaled"])
def test_pod_runs_restricted_with_numeric_ids(extra: tuple[str, ...]) -> None:
    docs = chart.render(*extra)
    pod = pod_spec(docs)
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
    assert chart.one(docs, "ServiceAccount")["automountServiceAccountToken"] is False


def test_probes_and_port() -> None:
    c = container(chart.render())
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/api/v1/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/api/v1/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/api/v1/healthz", "port": "http"}
    assert "lifecycle" not in c, "no preStop hook: the server drains by itself"


def test_downward_api_and_settings_reach_the_container() -> None:
    env = {e["name"]: e for e in container(chart.render())["env"]}
    fields = {name: e["valueFrom"]["fieldRef"]["fieldPath"] for name, e in env.items() if "valueFrom" in e}
    assert fields == {
        "POD_NAME": "metadata.name",
        "POD_NAMESPACE": "metadata.namespace",
        "NODE_NAME": "spec.nodeName",
        "POD_IP": "status.podIP",
        "POD_SERVICE_ACCOUNT": "spec.serviceAccountName",
    }
    values = defaults()["service"]
    assert env["DRAIN_SECONDS"]["value"] == str(values["drainSeconds"])
    assert env["GRACEFUL_TIMEOUT_SECONDS"]["value"] == str(values["gracefulTimeoutSeconds"])
    assert env["CACHE_TTL_SECONDS"]["value"] == str(values["cacheTtlSeconds"])
    assert env["WEB_CONCURRENCY"]["value"] == str(values["webConcurrency"])
    assert env["BIND"]["value"] == "0.0.0.0:8080"


def test_termination_grace_period_is_derived_from_the_drain() -> None:
    docs = chart.render("--set", "service.drainSeconds=12,service.gracefulTimeoutSeconds=25")
    margin = defaults()["terminationGraceMarginSeconds"]
    assert pod_spec(docs)["terminationGracePeriodSeconds"] == 12 + 25 + margin
    env = {e["name"]: e.get("value") for e in container(docs)["env"]}
    assert (env["DRAIN_SECONDS"], env["GRACEFUL_TIMEOUT_SECONDS"]) == ("12", "25")


def test_image_is_pinned_by_digest_when_there_is_one() -> None:
    repository, digest = defaults()["image"]["repository"], "sha256:" + "ab" * 32
    assert container(chart.render("--set-string", f"image.digest={digest}"))["image"] == f"{repository}@{digest}"
    assert container(chart.render("--set-string", "image.digest="))["image"] == f"{repository}:0.0.0-test"


def test_topology_spread_over_zones_and_nodes() -> None:
    spread = pod_spec(chart.render())["topologySpreadConstraints"]
    assert [(s["topologyKey"], s["whenUnsatisfiable"]) for s in spread] == [
        ("topology.kubernetes.io/zone", "ScheduleAnyway"),
        ("kubernetes.io/hostname", "ScheduleAnyway"),
    ]


def test_the_app_container_limits_ephemeral_storage_and_pulls_always() -> None:
    # An overlay that sets cpu and memory only (as prod's does) keeps the storage bounds: Helm merges the maps.
    for extra in ((), ("--set", "resources.requests.cpu=250m,resources.limits.memory=512M")):
        spec = pod_spec(chart.render(*extra))
        (container,) = spec["containers"]
        assert container["imagePullPolicy"] == "Always"
        for part in ("requests", "limits"):
            assert {"cpu", "memory", "ephemeral-storage"} <= set(container["resources"][part]), part
        empty_dirs = [v for v in spec["volumes"] if "emptyDir" in v]
        assert empty_dirs and all(v["emptyDir"].get("sizeLimit") for v in empty_dirs)


def test_the_test_pod_meets_the_same_restricted_standard() -> None:
    pod = chart.one(chart.render(), "Pod")
    security = pod["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True and security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["runAsUser"] >= 10000 and security["runAsGroup"] >= 10000
    assert pod["spec"]["automountServiceAccountToken"] is False
    (container,) = pod["spec"]["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["imagePullPolicy"] == "Always" and "@sha256:" in container["image"]
    for part in ("requests", "limits"):
        assert set(container["resources"][part]) == {"cpu", "memory", "ephemeral-storage"}, part


def test_the_test_pod_is_a_helm_test_of_the_services_health() -> None:
    docs = chart.render()
    pod = chart.one(docs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (c,) = pod["spec"]["containers"]
    assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[a-f0-9]{64}", c["image"]), c["image"]
    assert c["args"][-1] == f"http://{chart.RELEASE}:80/api/v1/healthz"
    # Outside the Service (it must not receive traffic), admitted by the service's network policy.
    service_selector = chart.one(docs, "Service")["spec"]["selector"]
    assert not service_selector.items() <= pod["metadata"]["labels"].items()
    allowed = chart.one(docs, "NetworkPolicy", chart.RELEASE)["spec"]["ingress"][0]["from"]
    assert any(
        "podSelector" in p and p["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        for p in allowed
    )


def selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    return policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()


def test_the_test_pod_is_confined_by_a_network_policy_of_its_own() -> None:
    docs = chart.render()
    test_pod = chart.one(docs, "Pod")["metadata"]["labels"]
    server = chart.one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    (own,) = [p for p in policies if selects(p, test_pod)]
    assert not selects(own, server), "the test pod's policy must not also confine the service"
    assert own["spec"]["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in own["spec"]  # nothing gets in
    dns, to_service = own["spec"]["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert to_service == {
        "to": [{"podSelector": {"matchLabels": chart.one(docs, "Deployment")["spec"]["selector"]["matchLabels"]}}],
        "ports": [{"port": "http", "protocol": "TCP"}],
    }


# --- access: RBAC, network policy, routing -----------------------------------------------------------------------


def test_role_reads_pods_and_nothing_else() -> None:
    docs = chart.render()
    assert chart.one(docs, "Role")["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    ]
    binding = chart.one(docs, "RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": chart.RELEASE}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": chart.RELEASE, "namespace": chart.NAMESPACE}]


def test_network_policy_admits_gateway_and_monitoring_and_egresses_to_dns_and_apiserver() -> None:
    docs = chart.render()
    policy = chart.one(docs, "NetworkPolicy", chart.RELEASE)["spec"]
    assert policy["podSelector"]["matchLabels"] == chart.one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
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


def test_network_policy_is_configurable() -> None:
    docs = chart.render(
        "--set", "networkPolicy.ingressNamespaces={edge}",
        "--set", "networkPolicy.apiServer.cidrs={10.1.0.0/28}",
        "--set", "networkPolicy.apiServer.ports={443}",
    )  # fmt: skip
    policy = chart.one(docs, "NetworkPolicy", chart.RELEASE)["spec"]
    assert policy["ingress"][0]["from"][0] == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}}
    }
    assert policy["egress"][1] == {
        "to": [{"ipBlock": {"cidr": "10.1.0.0/28"}}],
        "ports": [{"port": 443, "protocol": "TCP"}],
    }


def test_ingress_is_off_by_default_and_complete_when_on() -> None:
    assert "Ingress" not in kinds(chart.render())
    assert "ingress.className is required" in chart.refused("--set", "ingress.enabled=true")
    ingress = chart.one(chart.render("--set", "ingress.enabled=true,ingress.className=webapprouting"), "Ingress")
    assert ingress["spec"]["ingressClassName"] == "webapprouting"
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-production"
    host = chart.HOSTNAME
    assert ingress["spec"]["tls"] == [{"secretName": f"{chart.RELEASE}-tls", "hosts": [host]}]
    assert [r["host"] for r in ingress["spec"]["rules"]] == [host]


def test_service_monitor_follows_the_cluster_capabilities() -> None:
    assert "ServiceMonitor" not in kinds(chart.render())
    with_crd = chart.render("--api-versions", "monitoring.coreos.com/v1/ServiceMonitor")
    monitor = chart.one(with_crd, "ServiceMonitor")["spec"]
    assert monitor["endpoints"][0]["port"] == "http"
    assert monitor["selector"]["matchLabels"] == chart.one(with_crd, "Service")["spec"]["selector"]
    assert "ServiceMonitor" in kinds(chart.render("--set", "serviceMonitor.enabled=true"))
    off = chart.render(
        "--api-versions", "monitoring.coreos.com/v1/ServiceMonitor", "--set", "serviceMonitor.autoDetect=false"
    )
    assert "ServiceMonitor" not in kinds(off)


# --- tracing, autoscaling, dashboard ----------------------------------------------------------------------------


def env_of(docs: list[dict[str, Any]]) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in pod_spec(docs)["containers"][0]["env"]}


def test_tracing_is_off_unless_an_endpoint_is_set_and_then_gets_the_sdk_variables() -> None:
    assert not [name for name in env_of(chart.render()) if name.startswith("OTEL_")]
    docs = chart.render(
        "--set", "otel.endpoint=http://otel-collector.monitoring:4318", "--set-json", "otel.samplerRatio=0.25"
    )
    env = env_of(docs)
    assert {k: v for k, v in env.items() if k.startswith("OTEL_")} == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.monitoring:4318",
        "OTEL_SERVICE_NAME": "pod-details",
        "OTEL_RESOURCE_ATTRIBUTES": "service.version=0.0.0-test,k8s.namespace.name=$(POD_NAMESPACE),"
        "k8s.pod.name=$(POD_NAME),k8s.node.name=$(NODE_NAME)",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
    }
    # The variables it refers to are defined before it, so the kubelet expands them.
    names = list(env)
    assert max(names.index(n) for n in ("POD_NAME", "POD_NAMESPACE", "NODE_NAME")) < names.index(
        "OTEL_RESOURCE_ATTRIBUTES"
    )
    policy = next(p for p in docs if p["kind"] == "NetworkPolicy" and p["metadata"]["name"] == "pod-details")
    assert policy["spec"]["egress"][-1] == {
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        "ports": [{"port": 4318, "protocol": "TCP"}],
    }


def test_the_schema_refuses_a_bad_sampler_ratio_or_endpoint() -> None:
    for bad in (("--set-json", "otel.samplerRatio=1.5"), ("--set", "otel.endpoint=otel-collector:4318")):
        refusal = chart.refused(*bad)
        assert "/otel/" in refusal, refusal


def test_autoscaling_on_cpu_by_default_or_on_requests_per_second_with_cpu_kept() -> None:
    cpu = {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}
    assert chart.one(chart.render(*PROD_LIKE), "HorizontalPodAutoscaler")["spec"]["metrics"] == [cpu]
    hpa = chart.one(chart.render(*PROD_LIKE, *RPS), "HorizontalPodAutoscaler")["spec"]
    assert hpa["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "pod_details_http_requests_per_second"},
                "target": {"type": "AverageValue", "averageValue": "50"},
            },
        },
        cpu,
    ]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 100)


def test_the_dashboard_ships_in_a_configmap_the_grafana_sidecar_finds() -> None:
    assert "ConfigMap" not in [d["kind"] for d in chart.render()]
    config_map = chart.one(chart.render("--set", "grafanaDashboard.enabled=true"), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    ((name, text),) = config_map["data"].items()
    assert name == "pod-details.json"
    assert json.loads(text) == json.loads((chart.CHART / "dashboards" / "pod-details.json").read_text())


def test_everything_enabled_matches_the_pinned_schemas() -> None:
    result = chart.kubeconform(chart.template(*EVERYTHING))
    assert result.returncode == 0, result.stdout + result.stderr
    for kind in ("HorizontalPodAutoscaler", "PrometheusRule", "ServiceMonitor", "ConfigMap"):
        assert kind in chart.template(*EVERYTHING)


def test_everything_enabled_passes_the_platforms_admission_on_a_real_apiserver(
    own_cluster: ControlPlane, platform_admission: Admission
) -> None:
    """A dry run of every rendered object in prod's namespace: Pod Security `restricted` for both pods, the
    platform's policies (the HPA on requests per second keeps the CPU target they require), the CRDs' schemas."""
    namespace = "apps-prod"
    docs = chart.render(*EVERYTHING, namespace=namespace)
    assert "Pod" in [d["kind"] for d in docs] and "HorizontalPodAutoscaler" in [d["kind"] for d in docs]
    refusals = platform_admission(own_cluster.kubeconfig, docs, namespace, app="pod-details")
    assert not refusals, "\n".join(refusals)

    # The policies are in force: an HPA on requests per second alone, without the CPU target, is refused.
    hpa = chart.one(docs, "HorizontalPodAutoscaler")
    rps_only = {**hpa, "spec": {**hpa["spec"], "metrics": hpa["spec"]["metrics"][:1]}}
    refused = platform_admission(own_cluster.kubeconfig, [rps_only], namespace, app="pod-details")
    assert refused and "apps-hpa-bounds" in refused[0], refused


def test_the_dashboard_passes_grafanas_dashboard_schema(tmp_path: Path, pinned_tool: Callable[[str], Path]) -> None:
    def dashboard_check(path: Path) -> subprocess.CompletedProcess[str]:
        argv = [str(pinned_tool("grafana-dashboard-check")), str(path)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    dashboard = chart.CHART / "dashboards" / "pod-details.json"
    result = dashboard_check(dashboard)
    assert result.returncode == 0 and "valid" in result.stdout, result.stdout + result.stderr
    # The check can fail: a misspelt panel field and a legend without its required placement.
    board = json.loads(dashboard.read_text())
    board["panels"][1]["gridPoss"] = board["panels"][1].pop("gridPos")
    del board["panels"][2]["options"]["legend"]["placement"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(board))
    result = dashboard_check(broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "gridPoss" in result.stdout and "placement" in result.stdout, result.stdout
