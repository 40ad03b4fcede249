"""The chart's SLO rules: valid for Prometheus, doing what the runbook says, checked with the pinned promtool.

`promtool check rules` parses every expression; `promtool test rules` (tests/rules/slo.test.yaml) feeds series and
asserts the recording rules' values and which alerts fire, with which labels and annotations, at which time.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from pod_details_support import chart

from gitops_testing.plugin import pinned_tool_path
from pod_details.metrics import LATENCY_BUCKETS

# The rules are rendered with the pinned helm and checked with the pinned promtool.
pytestmark = pytest.mark.toolchain

RULE_TESTS = Path(__file__).resolve().parent / "rules" / "slo.test.yaml"
RUNBOOK = chart.PROJECT.parents[1] / "docs" / "runbook.md"


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(pinned_tool_path("promtool")), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_rules_pass_promtool_check_and_unit_tests(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(chart.rule_groups(), sort_keys=False))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    check = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    test = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert test.returncode == 0, test.stdout + test.stderr
    assert "SUCCESS" in test.stdout


def test_every_alert_links_to_a_runbook_section_that_exists() -> None:
    headings = re.findall(r"^#{2,3} (.+)$", RUNBOOK.read_text(), re.MULTILINE)
    # GitHub's anchors: lower case, punctuation dropped, spaces to hyphens.
    anchors = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
    alerts = [r for g in chart.rule_groups()["groups"] for r in g["rules"] if "alert" in r]
    assert {a["alert"] for a in alerts} == {
        "AvailabilityErrorBudgetBurn",
        "LatencyErrorBudgetBurn",
        "KubernetesApiReadsFailing",
    }
    for alert in alerts:
        url = alert["annotations"]["runbook_url"]
        assert url.startswith("https://github.com/azurelaboratory/gitops-monorepo/blob/main/docs/runbook.md#"), url
        assert url.split("#", 1)[1] in anchors, f"{alert['alert']}: {url} names no section of {RUNBOOK}"


def test_objectives_come_from_values_and_the_schema_refuses_bad_ones() -> None:
    groups = chart.rule_groups(
        "--set-json", "prometheusRule.slo.availability.objectivePercent=99.5",
        "--set-string", "prometheusRule.slo.latency.thresholdSeconds=0.25",
    )  # fmt: skip
    text = json.dumps(groups)
    assert "(14.4 * (1 - 99.5 / 100))" in text and 'le=\\"0.25\\"' in text
    for bad in (
        "prometheusRule.slo.availability.objectivePercent=100",
        "prometheusRule.slo.latency.thresholdSeconds=0.3",
    ):
        try:
            chart.template("--set-string" if "threshold" in bad else "--set-json", bad)
        except AssertionError as refused:
            assert "prometheusRule" in str(refused)
        else:
            raise AssertionError(f"the schema accepted {bad}")


def test_the_latency_threshold_must_be_a_bucket_the_service_exports() -> None:
    schema = json.loads((chart.CHART / "values.schema.json").read_text())
    threshold = schema["properties"]["prometheusRule"]["properties"]["slo"]["properties"]["latency"]["properties"]
    # Prometheus writes `le` as a float: 1 -> "1.0", 0.1 -> "0.1".
    assert threshold["thresholdSeconds"]["enum"] == [repr(float(b)) for b in LATENCY_BUCKETS]


def test_the_rule_renders_only_when_asked_or_the_cluster_serves_the_crd() -> None:
    assert "PrometheusRule" not in [d["kind"] for d in chart.render()]
    detected = chart.render("--api-versions", "monitoring.coreos.com/v1/PrometheusRule")
    rule = chart.one(detected, "PrometheusRule")
    assert rule["metadata"]["labels"]["app.kubernetes.io/name"] == "pod-details"
    off = chart.render(
        "--api-versions", "monitoring.coreos.com/v1/PrometheusRule", "--set", "prometheusRule.autoDetect=false"
    )
    assert "PrometheusRule" not in [d["kind"] for d in off]


def test_the_rendered_rule_matches_the_prometheus_operator_crd() -> None:
    result = chart.kubeconform(chart.template("--set", "prometheusRule.enabled=true,serviceMonitor.enabled=true"))
    assert result.returncode == 0, result.stdout + result.stderr  # a kind without a schema is an error too
