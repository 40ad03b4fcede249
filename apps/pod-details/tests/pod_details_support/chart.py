"""The app's chart as the cluster gets it: `helm template` with the pinned Helm, checked with the pinned kubeconform.

A release named after the app in `apps-dev`, with only the values the schema requires set (an image tag and a
hostname); tests add `--set` arguments for what they look at.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from gitops_testing.plugin import kubeconform_schemas, pinned_tool_path

PROJECT = Path(__file__).resolve().parents[2]
CHART = PROJECT / "chart"
RELEASE = "pod-details"
NAMESPACE = "apps-dev"
HOSTNAME = "pod-details.example.com"
REQUIRED = ("--set-string", "image.tag=0.0.0-test", "--set", f"hostnames={{{HOSTNAME}}}")


def template(*extra: str, namespace: str = NAMESPACE, required: tuple[str, ...] = REQUIRED) -> str:
    """The rendered manifests as text; fails the test with Helm's message when the render fails."""
    cmd = [str(pinned_tool_path("helm")), "template", RELEASE, str(CHART), "--namespace", namespace, *required, *extra]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"helm template {CHART} {' '.join(extra)} failed:\n{result.stderr}")
    return result.stdout


def refused(*extra: str, required: tuple[str, ...] = REQUIRED) -> str:
    """Helm's message when the chart refuses these values; fails the test when it renders them."""
    try:
        template(*extra, required=required)
    except AssertionError as refusal:
        return str(refusal)
    raise AssertionError(f"the chart rendered with {' '.join(extra)}: expected a refusal")


def render(*extra: str, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(template(*extra, namespace=namespace)) if doc]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, rendered {len(found)}"
    return found[0]


def rule_groups(*extra: str) -> dict[str, Any]:
    """The PrometheusRule's groups as a Prometheus rule file ({"groups": [...]}), what the operator hands Prometheus."""
    return {"groups": one(render("--set", "prometheusRule.enabled=true", *extra), "PrometheusRule")["spec"]["groups"]}


def kubeconform(manifests: str) -> subprocess.CompletedProcess[str]:
    """kubeconform -strict against the pinned Kubernetes and CRD schemas only (nothing is fetched)."""
    argv = [str(pinned_tool_path("kubeconform")), "-strict", "-summary", *kubeconform_schemas(), "-"]
    return subprocess.run(argv, input=manifests, capture_output=True, text=True, timeout=120)
