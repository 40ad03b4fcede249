"""A real Prometheus proves the metrics answer the on-call questions: it scrapes a real gunicorn pod-details (reading
its pod from the real kube-apiserver), loads the chart's rendered rules, and the traffic the test drives — errors
included — comes out as the recording rules' series, with the labels the dashboard and the alerts use, and as a
pending fast-burn alert. Every PromQL expression of the shipped dashboard is run against it too.

Scrape and evaluation every second, as the Prometheus Operator would scrape the ServiceMonitor: `job` is the
Service's name (the release's full name), `namespace` the release's.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from pod_details_support import chart, prometheus
from pod_details_support.faulty_wsgi import FAULT
from pod_details_support.gunicorn_process import Server
from pod_details_support.live_cluster import LivePod, pod_env

from gitops_testing.plugin import ControlPlane

JOB = chart.RELEASE  # the Service's name, which the chart's rules select on
LABELS = {"namespace": chart.NAMESPACE, "job": JOB}
DASHBOARD = chart.CHART / "dashboards" / "pod-details.json"
# Series a bare Prometheus cannot have: cAdvisor's (the kubelet) and kube-state-metrics'. Their expressions are
# checked to parse and to select by the labels those exporters set; that they return data is up to the cluster.
CLUSTER_METRICS = re.compile(r"\b(container_\w+|kube_pod_\w+)\{")


@pytest.fixture
def scraped(
    serve: Callable[..., Server], kube_cluster: ControlPlane, live_pod: LivePod, tmp_path: Path
) -> Iterator[tuple[Server, prometheus.Prometheus]]:
    env = {**pod_env(kube_cluster, live_pod, tmp_path), "CACHE_TTL_SECONDS": "1"}
    server = serve(env, workers=2, app="pod_details_support.faulty_wsgi:app")
    target = server.url.removeprefix("http://")
    with prometheus.running(tmp_path, [target], {"namespace": chart.NAMESPACE}, JOB, chart.rule_groups()) as prom:
        prom.wait_for(f'up{{job="{JOB}"}} == 1')
        yield server, prom


def drive(server: Server, seconds: float, paths: list[str]) -> None:
    """Requests round-robin over `paths` from four threads for `seconds` (bounded: loopback only, stops by itself)."""
    stop = time.monotonic() + seconds

    def loop() -> None:
        with requests.Session() as session:
            i = 0
            while time.monotonic() < stop:
                session.get(server.url + paths[i % len(paths)], timeout=5)
                i += 1

    threads = [threading.Thread(target=loop) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def labelsets(result: list[dict]) -> list[dict[str, str]]:
    return [{k: v for k, v in r["metric"].items() if k != "__name__"} for r in result]


def test_rules_record_what_the_dashboard_and_alerts_read_and_an_error_burst_pages(
    scraped: tuple[Server, prometheus.Prometheus],
) -> None:
    server, prom = scraped
    # Healthy traffic first, then a burst where half the requests fail.
    drive(server, 3, ["/api/v1/details", "/api/v1/version", "/missing", "/api/v1/healthz"])
    drive(server, 4, ["/api/v1/details", FAULT])

    by_route = prom.wait_for(
        f'namespace_job_route_status:pod_details_http_requests:rate5m{{route="{FAULT}", status="500"}} > 0'
    )
    assert labelsets(by_route) == [{**LABELS, "route": FAULT, "status": "500"}]
    rates = labelsets(prom.query("namespace_job_route_status:pod_details_http_requests:rate5m"))
    routes = {(s["route"], s["status"]) for s in rates}
    assert {("/api/v1/details", "200"), ("/api/v1/version", "200"), ("unmatched", "404")} <= routes
    buckets = labelsets(
        prom.wait_for(
            'namespace_job_route_le:pod_details_http_request_duration_seconds_bucket:rate5m{route="/api/v1/details"}'
        )
    )
    assert {b["le"] for b in buckets} >= {"0.1", "+Inf"} and all(b.keys() == {*LABELS, "route", "le"} for b in buckets)
    outcomes = labelsets(
        prom.wait_for('namespace_job_outcome:pod_details_kubernetes_api_requests:rate5m{outcome="ok"} > 0')
    )
    assert outcomes == [{**LABELS, "outcome": "ok"}]  # the pod was read again from the real apiserver, per TTL
    hits = prom.wait_for("namespace_job:pod_details_pod_cache_hits:ratio_rate5m")
    assert labelsets(hits) == [LABELS] and 0 < float(hits[0]["value"][1]) < 1

    for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d"):
        ratios = prom.wait_for(f"namespace_job:pod_details_slo_errors:ratio_rate{window}")
        assert sorted(s["slo"] for s in labelsets(ratios)) == ["availability", "latency"], window
        assert all(s.keys() == {*LABELS, "slo"} for s in labelsets(ratios)), window
    availability = prom.query('namespace_job:pod_details_slo_errors:ratio_rate5m{slo="availability"}')
    assert 0.2 < float(availability[0]["value"][1]) < 0.8  # the probes and the scrapes are not in the SLI

    alert = wait_for_alert(prom, "AvailabilityErrorBudgetBurn", {"long_window": "1h", "short_window": "5m"})
    assert alert["state"] == "pending"  # `for: 2m` keeps it from firing within the test
    assert alert["labels"] == {
        "alertname": "AvailabilityErrorBudgetBurn",
        **LABELS,
        "slo": "availability",
        "severity": "page",
        "long_window": "1h",
        "short_window": "5m",
    }
    assert alert["annotations"]["runbook_url"].endswith("/docs/runbook.md#availability-error-budget-burn")
    firing_names = {a["labels"]["alertname"] for a in prom.api("alerts")["alerts"]}
    assert "KubernetesApiReadsFailing" not in firing_names  # the reads succeed

    check_dashboard_expressions(prom)


def wait_for_alert(prom: prometheus.Prometheus, name: str, labels: dict[str, str], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        for alert in prom.api("alerts")["alerts"]:
            if alert["labels"]["alertname"] == name and labels.items() <= alert["labels"].items():
                return alert
        if time.monotonic() > deadline:
            raise AssertionError(f"no {name} {labels} within {timeout}s: {prom.api('alerts')}")
        time.sleep(0.5)


def dashboard_expressions() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    found = [(p["title"], t["expr"]) for p in board["panels"] for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":  # label_values(SELECTOR, label) is Grafana's; the selector is PromQL
            selector = re.fullmatch(r"label_values\((.+), \w+\)", variable["query"]["query"]).group(1)
            found.append((f"variable {variable['name']}", selector))
    return found


def check_dashboard_expressions(prom: prometheus.Prometheus) -> None:
    """Each expression, with the dashboard's variables as Grafana would fill them, parses and returns series."""
    values = {"$namespace": chart.NAMESPACE, "$job": JOB, "$__rate_interval": "1m"}
    cluster_only, empty = [], []
    expressions = dashboard_expressions()
    assert len(expressions) >= 15
    for title, expr in expressions:
        for variable, value in values.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"{title}: an unknown variable in {expr}"
        result = prom.query(expr)  # raises with Prometheus' parse error
        if CLUSTER_METRICS.search(expr):
            cluster_only.append(title)
        elif not result:
            empty.append(f"{title}: {expr}")
    assert not empty, "dashboard expressions that return no series:\n" + "\n".join(empty)
    assert sorted(set(cluster_only)) == ["CPU", "Memory"]
