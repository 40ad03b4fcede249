"""The app's chart as rendered: hardening of the pod and of the `helm test` pod, tracing, autoscaling on request rate,
the dashboard. Rendered with the pinned Helm, checked with the pinned kubeconform, and dry-run through a real
kube-apiserver with the platform's admission policies and Pod Security. `gitops new-app` copies these tests with the
chart, so every app is held to them.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pod_details_support import chart

from gitops_testing.plugin import Admission, ControlPlane

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
        try:
            chart.template(*bad)
        except AssertionError as refused:
            assert "/otel/" in str(refused), refused
        else:
            raise AssertionError(f"the schema accepted {bad}")


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
