"""Prometheus metrics: per-request counts and latency, Kubernetes API calls, cache lookups, build info.

Under gunicorn every worker is a process with its own counters, so the service uses prometheus_client's
multiprocess mode: each process writes its samples to memory-mapped files in PROMETHEUS_MULTIPROC_DIR (created and
cleaned by the gunicorn config) and a scrape of any worker merges the files of all of them. Without that variable
(unit tests, a single process) the metrics live in a registry owned by the app.

Label values are bounded so a scanner cannot grow the series count: the route is the matched URL rule's template
(every unmatched path is "unmatched"), the method one of the standard ones or "OTHER", the status a number.
"""

from __future__ import annotations

import os

from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from pod_details.version import AppInfo

bp = Blueprint("metrics", __name__)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
KUBE_OUTCOMES = (
    "ok",
    "unauthorized",
    "forbidden",
    "not_found",
    "http_error",
    "timeout",
    "connection_error",
    "tls_error",
    "error",
)
# Sub-millisecond buckets: the service answers from memory, so the interesting tail is between 0.5 and 50 ms.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self, info: AppInfo) -> None:
        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self.registry = CollectorRegistry()
        labels = ("method", "route", "status")
        self.requests = Counter(
            "pod_details_http_requests_total", "HTTP requests served.", labels, registry=self.registry
        )
        self.latency = Histogram(
            "pod_details_http_request_duration_seconds",
            "Time from the start of the request to the response, in seconds.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.kube_calls = Counter(
            "pod_details_kubernetes_api_requests_total",
            "Calls to the Kubernetes API, by outcome.",
            ("outcome",),
            registry=self.registry,
        )
        self.cache_lookups = Counter(
            "pod_details_pod_cache_lookups_total",
            "Lookups of the pod cache: hit (served from memory) or miss (called the API first).",
            ("result",),
            registry=self.registry,
        )
        self.build_info = Gauge(
            "pod_details_build_info",
            "Always 1; the labels say what is running.",
            ("version", "commit", "python_version"),
            registry=self.registry,
            multiprocess_mode="max",
        )
        self.build_info.labels(info.version, info.commit, info.python).set(1)
        # Every outcome exists from the start at 0, so rate() and absent-series alerts work before the first failure.
        for outcome in KUBE_OUTCOMES:
            self.kube_calls.labels(outcome)
        for result in ("hit", "miss"):
            self.cache_lookups.labels(result)
        # The label children, looked up once: in multiprocess mode `labels()` costs a lock and a dict walk.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def record_kube_call(self, outcome: str) -> None:
        self.kube_calls.labels(outcome).inc()

    def record_cache_lookup(self, result: str) -> None:
        self.cache_lookups.labels(result).inc()

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (self.requests.labels(*key), self.latency.labels(*key))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def exposition(self) -> bytes:
        if self.multiprocess_dir:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)
            return generate_latest(registry)
        return generate_latest(self.registry)


def init_app(app: Flask, metrics: Metrics) -> None:
    app.extensions["pod_details.metrics"] = metrics


def metrics_of(app: Flask) -> Metrics:
    return app.extensions["pod_details.metrics"]


@bp.get("/metrics")
def scrape() -> Response:
    return Response(metrics_of(current_app).exposition(), content_type=CONTENT_TYPE_LATEST)
