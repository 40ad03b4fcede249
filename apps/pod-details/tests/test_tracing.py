"""Tracing, as deployed: real gunicorn exporting over OTLP/HTTP to a receiver in the test, which decodes the protobuf.

Off (the default), a worker that served every endpoint has not imported OpenTelemetry at all. On, a request makes a
SERVER span that continues the caller's W3C trace, the call it makes to a real kube-apiserver is its CLIENT child,
`traceparent` goes on to the apiserver, and the request's log line names the trace and span.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from pod_details_support import otlp_receiver
from pod_details_support.gunicorn_process import Server
from pod_details_support.live_cluster import LivePod, pod_env
from pod_details_support.misbehaving_apiserver import MisbehavingApiserver

from gitops_testing.plugin import ControlPlane
from pod_details.app import WARM_UP_PATHS

Serve = Callable[..., Server]
PROBE = "pod_details_support.modules_probe_conf"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


@pytest.fixture
def receiver() -> Iterator[otlp_receiver.Receiver]:
    with otlp_receiver.running() as server:
        yield server


def tracing_env(receiver: otlp_receiver.Receiver, **extra: str) -> dict[str, str]:
    # The SDK's own variables, as the chart sets them; a short batch delay so the test need not wait 5 s.
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100", **extra}


def worker_modules(server: Server, probe: Path) -> list[str]:
    deadline = time.monotonic() + 10
    while not probe.exists():
        assert time.monotonic() < deadline, f"the worker wrote no module list:\n{server.logs()}"
        time.sleep(0.05)
    return json.loads(probe.read_text())["modules"]


def test_off_by_default_a_worker_never_imports_opentelemetry(serve: Serve, tmp_path: Path) -> None:
    probe = tmp_path / "modules.json"
    server = serve({"MODULES_PROBE_FILE": str(probe), "OTEL_SERVICE_NAME": "named-but-off"}, config=PROBE)
    for path in WARM_UP_PATHS:
        server.get(path, headers={"traceparent": TRACEPARENT})
    modules = worker_modules(server, probe)
    assert "flask" in modules and "pod_details.tracing" in modules  # the probe sees what the worker loaded
    assert [m for m in modules if m.startswith("opentelemetry")] == []


def log_line(server: Server, predicate: Callable[[dict[str, object]], bool], what: str) -> dict[str, object]:
    """The first JSON log line that satisfies `predicate`, waiting for the batched access lines to come out."""
    deadline = time.monotonic() + 10
    while True:
        for text in server.logs().splitlines():
            if text.startswith("{") and predicate(line := json.loads(text)):
                return line
        assert time.monotonic() < deadline, f"no log line {what}:\n{server.logs()}"
        time.sleep(0.1)


def test_a_request_and_its_kubernetes_call_are_one_trace(
    serve: Serve,
    kube_cluster: ControlPlane,
    live_pod: LivePod,
    receiver: otlp_receiver.Receiver,
    tmp_path: Path,
) -> None:
    probe = tmp_path / "modules.json"
    env = {
        **pod_env(kube_cluster, live_pod, tmp_path),
        **tracing_env(receiver, OTEL_SERVICE_NAME="pod-details-traced"),
        "CACHE_TTL_SECONDS": "1",
        "MODULES_PROBE_FILE": str(probe),
    }
    server = serve(env, config=PROBE)
    time.sleep(1.2)  # past the TTL the master's warm-up read: the next /details reads the pod again, in a worker
    response = server.get("/api/v1/details", headers={"traceparent": TRACEPARENT, "X-Request-ID": "traced-1"})
    assert response.status_code == 200 and response.json()["source"] == "kubernetes-api"

    spans = receiver.wait_for(lambda s: any(x.kind == "SERVER" for x in s) and any(x.kind == "CLIENT" for x in s))
    (server_span,) = [s for s in spans if s.kind == "SERVER"]
    (client_span,) = [s for s in spans if s.kind == "CLIENT"]
    # The caller's trace continues: same trace id, and the caller's span is the server span's parent.
    assert (server_span.trace_id, server_span.parent_span_id) == (CALLER_TRACE, CALLER_SPAN)
    assert server_span.name == "GET /api/v1/details"
    assert server_span.attributes["http.route"] == "/api/v1/details"
    assert server_span.resource["service.name"] == "pod-details-traced"
    # The Kubernetes API call is the request's child, to the pod's own URL on the real apiserver.
    assert (client_span.trace_id, client_span.parent_span_id) == (CALLER_TRACE, server_span.span_id)
    url = client_span.attributes.get("url.full") or client_span.attributes.get("http.url")
    assert url.endswith(f"/api/v1/namespaces/{live_pod.namespace}/pods/{live_pod.name}"), client_span.attributes
    assert (
        client_span.attributes.get("http.response.status_code") or client_span.attributes["http.status_code"]
    ) == 200
    # Probes and scrapes make no spans; the master's warm-up requests made none either.
    server.get("/api/v1/healthz")
    server.get("/metrics")
    time.sleep(0.5)
    assert {s.name for s in receiver.spans} == {server_span.name, client_span.name}

    line = log_line(server, lambda line: line.get("request_id") == "traced-1", "for request traced-1")
    assert (line["trace_id"], line["span_id"]) == (CALLER_TRACE, server_span.span_id)
    assert any(m.startswith("opentelemetry.sdk") for m in worker_modules(server, probe))


def test_traceparent_goes_on_to_the_apiserver(
    serve: Serve, misbehaving: MisbehavingApiserver, receiver: otlp_receiver.Receiver, tmp_path: Path
) -> None:
    """A real apiserver does not show what headers it got; the stand-in records them."""
    env = {
        "KUBECONFIG": str(misbehaving.kubeconfig(tmp_path)),
        "POD_NAME": "web-1",
        "POD_NAMESPACE": "shop",
        "CACHE_TTL_SECONDS": "1",
        **tracing_env(receiver),
    }
    server = serve(env)
    time.sleep(1.2)
    assert server.get("/api/v1/details", headers={"traceparent": TRACEPARENT}).json()["stale"] is False
    spans = receiver.wait_for(lambda s: any(x.kind == "CLIENT" for x in s))
    (client_span,) = [s for s in spans if s.kind == "CLIENT"]
    assert misbehaving.headers[-1].get("traceparent") == f"00-{CALLER_TRACE}-{client_span.span_id}-01"
    assert "traceparent" not in misbehaving.headers[0], "the master's warm-up read was not traced"

    # A line the app logs while serving a traced request names the trace and the request's span too.
    misbehaving.fail_status = 500
    time.sleep(1.2)
    assert server.get("/api/v1/details", headers={"traceparent": TRACEPARENT}).json()["stale"] is True
    spans = receiver.wait_for(lambda s: len([x for x in s if x.kind == "SERVER"]) == 2)
    failed_request = [s for s in spans if s.kind == "SERVER"][-1]
    warning = log_line(server, lambda line: line["message"] == "reading the pod failed", "about the failed read")
    assert (warning["trace_id"], warning["span_id"]) == (CALLER_TRACE, failed_request.span_id)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER='zipkin' is invalid: expected otlp or none"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL='grpc' is invalid: expected http/"),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, "expected a ratio between 0 and 1"),
    ],
)
def test_a_bad_otel_variable_stops_the_server_with_one_line(serve: Serve, env: dict[str, str], message: str) -> None:
    server = serve(env, wait=False)
    assert server.process.wait(30) == 2
    assert message in server.logs() and len(server.logs().strip().splitlines()) == 1


def test_spans_are_flushed_when_the_server_stops(serve: Serve, receiver: otlp_receiver.Receiver) -> None:
    # A batch delay longer than the test: only the flush at worker exit can deliver the span.
    server = serve(tracing_env(receiver, OTEL_BSP_SCHEDULE_DELAY="60000"))
    assert requests.get(server.url + "/api/v1/version", timeout=5).ok
    assert receiver.spans == []
    assert server.stop() == 0
    assert [s.name for s in receiver.spans] == ["GET /api/v1/version"]
