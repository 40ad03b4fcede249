"""Every endpoint and error path through Flask's test client, with the Kubernetes access injected."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pod_details_support.live_cluster import LivePod
from pod_details_support.misbehaving_apiserver import pod_object

from gitops_testing.plugin import ControlPlane
from pod_details import kube
from pod_details.app import create_app
from pod_details.details import details_of
from pod_details.security import HEADERS
from pod_details.settings import Settings

NO_ACCESS = kube.Access("none", None, "no Kubernetes credentials (test)")


class FakeClient:
    """Stands in for kube.PodClient: returns the summarised pod or raises what it is told to."""

    def __init__(self) -> None:
        self.calls = 0
        self.error: kube.FetchError | None = None

    def read_pod(self) -> kube.Pod:
        self.calls += 1
        if self.error:
            raise self.error
        return kube.summarise_pod(pod_object())


def make_app(env: dict[str, str] | None = None, access: kube.Access = NO_ACCESS) -> Flask:
    app = create_app(Settings.from_env(env or {}), access=access)
    app.testing = True
    return app


@pytest.fixture
def client() -> FlaskClient:
    return make_app({"GIT_COMMIT": "deadbeef"}).test_client()


def test_healthz(client: FlaskClient) -> None:
    r = client.get("/api/v1/healthz")
    assert r.status_code == 200 and r.mimetype == "application/json" and r.json == {"status": "ok"}


def test_readyz_turns_503_when_draining() -> None:
    app = make_app()
    c = app.test_client()
    assert c.get("/api/v1/readyz").json == {"status": "ready"}
    app.extensions["pod_details.drain"].set()
    r = c.get("/api/v1/readyz")
    assert r.status_code == 503 and r.json == {"status": "draining"}
    assert c.get("/api/v1/healthz").status_code == 200  # liveness is unaffected


def test_version(client: FlaskClient) -> None:
    r = client.get("/api/v1/version")
    assert r.json["name"] == "pod-details" and r.json["commit"] == "deadbeef"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", r.json["version"]) and r.json["python"].startswith("3.11")


def test_details_local_mode_from_the_host(client: FlaskClient) -> None:
    body = client.get("/api/v1/details").json
    assert body["source"] == "local" and body["stale"] is False and body["fetched_at"]
    assert 0 <= body["age_seconds"] <= body["app"]["uptime_seconds"] + 0.01  # read at start: as old as the process
    assert body["kubernetes"] == {"mode": "none", "reason": "no Kubernetes credentials (test)"}
    assert body["pod"]["name"] and body["pod"]["namespace"] is None
    assert body["app"]["commit"] == "deadbeef" and body["app"]["uptime_seconds"] >= 0


def test_details_downward_api_without_credentials() -> None:
    env = {"POD_NAME": "p", "POD_NAMESPACE": "ns", "NODE_NAME": "n", "POD_IP": "10.0.0.2", "POD_SERVICE_ACCOUNT": "sa"}
    body = make_app(env).test_client().get("/api/v1/details").json
    assert body["source"] == "downward-api"
    assert {k: body["pod"][k] for k in ("name", "namespace", "node", "ip", "service_account")} == {
        "name": "p",
        "namespace": "ns",
        "node": "n",
        "ip": "10.0.0.2",
        "service_account": "sa",
    }


def test_details_from_the_api_then_stale_on_error() -> None:
    fake = FakeClient()
    app = make_app({"POD_NAME": "web-7d9c-abcde"}, kube.Access("kubeconfig", fake, None))  # type: ignore[arg-type]
    c = app.test_client()
    body = c.get("/api/v1/details").json
    assert body["source"] == "kubernetes-api" and body["stale"] is False and body["kubernetes"]["reason"] is None
    assert body["pod"]["labels"]["pod-template-hash"] == "7d9c"
    assert body["pod"]["owner"] == {"kind": "ReplicaSet", "name": "web-7d9c"}
    assert [(x["image"], x["ready"], x["restart_count"]) for x in body["pod"]["containers"]] == [
        ("registry.example/pod-details:1.0", True, 0),
        ("registry.example/sidecar:2.0", False, 3),
    ]
    # Cached: many requests, one call.
    for _ in range(5):
        c.get("/api/v1/details")
    assert fake.calls == 1

    assert body["age_seconds"] < 1

    fake.error = kube.FetchError("forbidden", "GET …/pods/web-7d9c-abcde: 403 pods is forbidden")
    cache = details_of(app).cache
    cache._next_refresh = 0  # expire it, as the TTL would
    cache._snapshot = replace(cache._snapshot, fetched_clock=cache._snapshot.fetched_clock - 45)  # read 45 s ago
    body = c.get("/api/v1/details").json
    assert body["source"] == "kubernetes-api" and body["stale"] is True
    assert 45 <= body["age_seconds"] < 46, "the age counts from the last good read, not the failed attempt"
    assert "403" in body["kubernetes"]["reason"]
    assert body["pod"]["owner"] == {"kind": "ReplicaSet", "name": "web-7d9c"}


def test_details_never_reached_api_serves_downward_view_with_reason() -> None:
    fake = FakeClient()
    fake.error = kube.FetchError("timeout", "GET …: no answer within 2s")
    app = make_app({"POD_NAME": "p", "POD_NAMESPACE": "ns"}, kube.Access("in-cluster", fake, None))  # type: ignore[arg-type]
    body = app.test_client().get("/api/v1/details").json
    assert body["source"] == "downward-api" and body["stale"] is False
    assert body["kubernetes"] == {"mode": "in-cluster", "reason": "GET …: no answer within 2s"}
    assert body["pod"]["name"] == "p"


def test_kube_calls_and_cache_lookups_are_counted() -> None:
    fake = FakeClient()
    app = make_app({"POD_NAME": "p"}, kube.Access("kubeconfig", fake, None))  # type: ignore[arg-type]
    c = app.test_client()
    c.get("/api/v1/details")
    c.get("/api/v1/details")
    fake.error = kube.FetchError("forbidden", "403")
    details_of(app).cache._next_refresh = 0
    c.get("/api/v1/details")
    text = c.get("/metrics").text
    assert 'pod_details_kubernetes_api_requests_total{outcome="ok"} 1.0' in text
    assert 'pod_details_kubernetes_api_requests_total{outcome="forbidden"} 1.0' in text
    assert 'pod_details_pod_cache_lookups_total{result="miss"} 2.0' in text
    assert 'pod_details_pod_cache_lookups_total{result="hit"} 1.0' in text


def test_metrics_label_routes_by_template_and_collapse_unknown_paths(client: FlaskClient) -> None:
    client.get("/api/v1/healthz")
    for i in range(3):
        client.get(f"/random/{i}")
    client.open("/api/v1/healthz", method="BREW")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.content_type.startswith("text/plain")
    text = r.text
    assert 'pod_details_http_requests_total{method="GET",route="/api/v1/healthz",status="200"} 1.0' in text
    assert 'pod_details_http_requests_total{method="GET",route="unmatched",status="404"} 3.0' in text
    assert 'pod_details_http_requests_total{method="OTHER",route="unmatched",status="405"} 1.0' in text
    assert 'pod_details_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/api/v1/healthz"' in text
    assert "pod_details_build_info{" in text and 'commit="deadbeef"' in text


def assert_problem(r: object, status: int) -> dict[str, object]:
    assert r.status_code == status  # type: ignore[attr-defined]
    assert r.content_type == "application/problem+json"  # type: ignore[attr-defined]
    body = json.loads(r.data)  # type: ignore[attr-defined]
    assert body["type"] == "about:blank" and body["status"] == status and body["title"] and body["detail"]
    assert body["request_id"] == r.headers["X-Request-ID"]  # type: ignore[attr-defined]
    return body


def test_404_is_a_problem(client: FlaskClient) -> None:
    body = assert_problem(client.get("/api/v1/nope"), 404)
    assert body["title"] == "Not Found" and body["instance"] == "/api/v1/nope"


def test_405_is_a_problem_with_allow(client: FlaskClient) -> None:
    r = client.post("/api/v1/details")
    assert_problem(r, 405)
    assert r.headers["Allow"] == "GET, HEAD"


def test_options_is_not_answered_automatically(client: FlaskClient) -> None:
    assert_problem(client.options("/api/v1/details"), 405)


def test_413_before_anything_else() -> None:
    c = make_app({"MAX_CONTENT_LENGTH": "16"}).test_client()
    body = assert_problem(c.post("/api/v1/details", data=b"x" * 17), 413)
    assert "17 bytes; at most 16" in body["detail"]
    assert_problem(c.put("/nowhere", data=b"x" * 1000), 413)
    assert_problem(c.post("/api/v1/details", data=b"x" * 16), 405)


def test_500_is_a_generic_problem_and_the_traceback_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app()
    app.testing = False  # let the error handler answer instead of re-raising

    def boom() -> str:
        raise RuntimeError("secret internals")

    app.add_url_rule("/api/v1/boom", view_func=boom)
    with caplog.at_level(logging.ERROR):
        r = app.test_client().get("/api/v1/boom", headers={"X-Request-ID": "req-500"})
    body = assert_problem(r, 500)
    assert "secret internals" not in r.text and body["request_id"] == "req-500"
    record = next(rec for rec in caplog.records if rec.getMessage() == "unhandled exception")
    assert record.fields["request_id"] == "req-500" and record.exc_info  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["/api/v1/healthz", "/api/v1/details", "/metrics", "/api/v1/openapi.json", "/x"])
def test_security_headers_on_every_response(client: FlaskClient, path: str) -> None:
    r = client.get(path)
    for name, value in HEADERS:
        assert r.headers[name] == value
    assert r.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]


def test_request_id_is_echoed_when_valid(client: FlaskClient) -> None:
    assert client.get("/api/v1/healthz", headers={"X-Request-ID": "abc-123_x.y:z"}).headers["X-Request-ID"] == (
        "abc-123_x.y:z"
    )


@pytest.mark.parametrize("bad", ["", "x" * 129, "has space", "new\\nline", "<script>", "-leading-dash", "é"])
def test_request_id_is_replaced_when_invalid(client: FlaskClient, bad: str) -> None:
    rid = client.get("/api/v1/healthz", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
    assert rid != bad and re.fullmatch(r"[0-9a-f]{32}", rid)


def test_request_id_is_generated_when_absent(client: FlaskClient) -> None:
    a = client.get("/api/v1/healthz").headers["X-Request-ID"]
    b = client.get("/api/v1/healthz").headers["X-Request-ID"]
    assert a != b and re.fullmatch(r"[0-9a-f]{32}", a)


@pytest.fixture
def access_level() -> Iterator[Callable[[int], None]]:
    """Set the access logger's level (as LOG_LEVEL does through the logging config); restored afterwards."""
    access = logging.getLogger("pod_details.access")
    before = access.level
    yield access.setLevel
    access.setLevel(before)


def test_one_json_log_line_per_request_with_route_template_and_trace(
    client: FlaskClient, capsys: pytest.CaptureFixture[str], access_level: Callable[[int], None]
) -> None:
    access_level(logging.INFO)
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    capsys.readouterr()
    client.get("/api/v1/details", headers={"X-Request-ID": "r1", "traceparent": traceparent})
    client.get("/api/v1/details", headers={"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"})
    client.post("/api/v1/details", headers={"X-Request-ID": "r3"})
    client.application.extensions["pod_details.access_log"].flush()  # lines are written in batches
    first, second, third = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["logger"] == "pod_details.access" and first["level"] == "INFO" and first["message"] == "request"
    assert first["method"] == "GET" and first["route"] == "/api/v1/details" and first["status"] == 200
    assert first["request_id"] == "r1" and first["duration_ms"] >= 0
    assert (first["trace_id"], first["parent_id"]) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    assert "trace_id" not in second  # an all-zero trace id is invalid
    assert (third["request_id"], third["status"], third["route"]) == ("r3", 405, "unmatched")


def test_access_lines_follow_the_log_level(
    client: FlaskClient, capsys: pytest.CaptureFixture[str], access_level: Callable[[int], None]
) -> None:
    access_level(logging.WARNING)
    capsys.readouterr()
    client.get("/api/v1/healthz")
    client.application.extensions["pod_details.access_log"].flush()
    assert capsys.readouterr().out == ""


def test_no_endpoint_exposes_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-value-that-must-not-appear"
    monkeypatch.setenv("API_PASSWORD", secret)
    fake = FakeClient()
    app = make_app({"API_PASSWORD": secret, "POD_NAME": "p"}, kube.Access("kubeconfig", fake, None))  # type: ignore[arg-type]
    c = app.test_client()
    for path in ["/api/v1/healthz", "/api/v1/readyz", "/api/v1/details", "/api/v1/version", "/metrics"]:
        assert secret not in c.get(path).text
    assert secret not in c.get("/api/v1/openapi.json").text


def test_json_log_formatter_writes_one_object_per_line() -> None:
    from pod_details.logs import JsonFormatter

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    record.fields = {"status": 200, "message": "cannot override"}  # type: ignore[attr-defined]
    line = JsonFormatter().format(record)
    doc = json.loads(line)
    assert "\n" not in line and doc["message"] == "hello world" and doc["status"] == 200 and doc["level"] == "INFO"


def test_the_factory_builds_independent_apps() -> None:
    a, b = make_app(), make_app()
    a.test_client().get("/api/v1/healthz")
    assert 'route="/api/v1/healthz"' not in b.test_client().get("/metrics").text


def test_factory_connects_with_the_settings(tmp_path: Path, kube_cluster: ControlPlane, live_pod: LivePod) -> None:
    # Outside a pod: a kubeconfig for the real apiserver holding a token of the chart's ServiceAccount.
    kubeconfig = kube_cluster.token_kubeconfig(tmp_path / "kubeconfig", live_pod.token(kube_cluster.kubeconfig))
    env = {"KUBECONFIG": str(kubeconfig), "POD_NAME": live_pod.name, "POD_NAMESPACE": live_pod.namespace}
    app = create_app(Settings.from_env(env))
    body = app.test_client().get("/api/v1/details").json
    assert body["source"] == "kubernetes-api" and body["kubernetes"]["mode"] == "kubeconfig"
