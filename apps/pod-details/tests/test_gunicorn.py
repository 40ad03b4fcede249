"""The service as deployed: real gunicorn (the same config module) on a loopback port, spoken to over HTTP."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests
from pod_details_support.gunicorn_process import PROJECT, Server, service_env
from pod_details_support.misbehaving_apiserver import MisbehavingApiserver

Serve = Callable[..., Server]


def access_lines(server: Server) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "pod_details.access"]


def wait_for_access_lines(server: Server, count: int, timeout: float = 10) -> list[dict[str, object]]:
    """Access lines are written in batches, at least once a second: wait until `count` of them are out."""
    deadline = time.monotonic() + timeout
    while len(lines := access_lines(server)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(lines)} access lines after {timeout}s, expected {count}:\n{server.logs()}")
        time.sleep(0.1)
    return lines


def test_endpoints_errors_and_headers(serve: Serve) -> None:
    server = serve({"GIT_COMMIT": "c0ffee", "MAX_CONTENT_LENGTH": "100"})
    assert server.get("/api/v1/healthz").json() == {"status": "ok"}
    assert server.get("/api/v1/readyz").json() == {"status": "ready"}
    assert server.get("/api/v1/version").json()["commit"] == "c0ffee"
    details = server.get("/api/v1/details")
    assert details.headers["Content-Type"] == "application/json"
    assert details.json()["source"] == "local" and details.json()["kubernetes"]["mode"] == "none"
    assert server.get("/api/v1/openapi.json").json()["openapi"] == "3.1.0"
    assert server.get("/metrics").headers["Content-Type"].startswith("text/plain")
    assert details.headers["X-Content-Type-Options"] == "nosniff" and details.headers["X-Frame-Options"] == "DENY"

    for response, status in [
        (server.get("/missing"), 404),
        (requests.delete(server.url + "/api/v1/details", timeout=5), 405),
        (requests.post(server.url + "/api/v1/details", data=b"x" * 101, timeout=5), 413),
    ]:
        assert response.status_code == status
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json()["status"] == status
        assert response.headers["Cache-Control"] == "no-store"
    assert requests.delete(server.url + "/api/v1/details", timeout=5).headers["Allow"] == "GET, HEAD"


def raw_request(server: Server, data: bytes) -> requests.Response:
    """Send bytes no HTTP client would, and parse the answer with the standard library."""
    import http.client
    import socket

    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        response = requests.Response()
        response.status_code = answer.status
        response.headers.update(answer.getheaders())
        response._content = answer.read()
    return response


def test_every_status_at_the_edges_is_a_problem_the_openapi_document_lists(serve: Serve) -> None:
    """gunicorn's own refusals (400, 414, 431) look like the app's (404, 405, 413), and the document names them all."""
    server = serve({"MAX_CONTENT_LENGTH": "100"})
    details = server.url + "/api/v1/details"
    answers = {
        400: raw_request(server, b"GET /api/v1/details HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n"),
        404: server.get("/missing"),
        405: requests.delete(details, timeout=5),
        413: requests.get(details, data=b"x" * 101, timeout=5),
        414: server.get("/api/v1/details?q=" + "a" * 5000),
        431: server.get("/api/v1/details", headers={f"X-Filler-{i}": "1" for i in range(101)}),
    }
    doc = server.get("/api/v1/openapi.json").json()
    listed = set(doc["paths"]["/api/v1/details"]["get"]["responses"])
    components = doc["components"]["responses"]
    for status, response in answers.items():
        assert response.status_code == status, (status, response.status_code, response.text)
        assert response.headers["Content-Type"] == "application/problem+json", (status, response.headers)
        body = response.json()
        assert body["status"] == status and body["type"] == "about:blank", body
        assert "<" not in body["detail"] and "Bad Header" not in response.text  # nothing of the request echoed
        assert response.headers["X-Content-Type-Options"] == "nosniff" and response.headers["X-Request-ID"]
        # 404 and 405 answer paths and methods the document does not list; it describes them as components.
        assert str(status) in listed or status in (404, 405), f"GET /api/v1/details does not list {status}"
    assert {"NotFound", "MethodNotAllowed"} <= set(components)
    assert listed == {"200", "400", "413", "414", "431", "500"}
    assert "/api/v1/details" in answers[413].json()["instance"] and "instance" not in answers[414].json()


def test_request_id_echo_and_one_json_log_line_per_request(serve: Serve) -> None:
    server = serve()
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    r = server.get("/api/v1/details", headers={"X-Request-ID": "test-id-1", "traceparent": traceparent})
    assert r.headers["X-Request-ID"] == "test-id-1"
    generated = server.get("/api/v1/healthz", headers={"X-Request-ID": "bad id with spaces"}).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    lines = {line["request_id"]: line for line in wait_for_access_lines(server, 2)}
    line = lines["test-id-1"]
    assert line["route"] == "/api/v1/details" and line["status"] == 200 and line["method"] == "GET"
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" and isinstance(line["duration_ms"], float)
    assert generated in lines
    # Every line of output is JSON: gunicorn's own messages too, and no access log in gunicorn's format.
    assert all(text.startswith("{") for text in server.logs().splitlines() if text.strip())


def test_metrics_add_up_across_two_workers(serve: Serve) -> None:
    server = serve({"GUNICORN_THREADS": "2"}, workers=2)
    total = 120
    # A new connection per request, so the kernel spreads them across both workers' accept calls.
    for _ in range(total):
        assert requests.get(server.url + "/api/v1/version", headers={"Connection": "close"}, timeout=5).ok
    pids = {line["pid"] for line in wait_for_access_lines(server, total)}
    assert len(pids) == 2, f"requests were all served by one worker: {pids}"
    pattern = re.compile(r'pod_details_http_requests_total\{method="GET",route="/api/v1/version",status="200"\} (\S+)')
    for _ in range(3):  # whichever worker answers the scrape, the sum is the same
        counts = pattern.findall(requests.get(server.url + "/metrics", headers={"Connection": "close"}, timeout=5).text)
        assert [float(c) for c in counts] == [total]
    metrics = server.get("/metrics").text
    assert (
        'pod_details_http_request_duration_seconds_count{method="GET",route="/api/v1/version",status="200"}' in metrics
    )
    assert "pod_details_build_info{" in metrics


def test_bad_setting_stops_gunicorn_with_one_line(serve: Serve) -> None:
    server = serve({"CACHE_TTL_SECONDS": "abc"}, wait=False)
    assert server.process.wait(30) == 2
    assert server.logs().strip() == (
        "pod-details: CACHE_TTL_SECONDS='abc' is invalid: expected a number of seconds between 1 and 86400"
    )


def test_bad_setting_stops_python_m_pod_details_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pod_details"],
        cwd=PROJECT,
        env=service_env({"WEB_CONCURRENCY": "lots"}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "pod-details: WEB_CONCURRENCY='lots' is invalid: expected a whole number between 1 and 64"
    )


def kube_env(apiserver: MisbehavingApiserver, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"KUBECONFIG": str(apiserver.kubeconfig(tmp_path)), "POD_NAME": "web-1", "POD_NAMESPACE": "shop", **extra}


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


# Details from a real apiserver, stale when RBAC or the apiserver goes away: test_kubernetes_live.py. Here, only
# what a real apiserver cannot be made to do: answer late, or never.


def test_an_apiserver_that_never_answers_holds_no_request_beyond_the_timeout(
    serve: Serve, misbehaving: MisbehavingApiserver, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    timeout, bound = 1.0, 2.0
    server = serve(kube_env(misbehaving, tmp_path, CACHE_TTL_SECONDS="1", KUBE_TIMEOUT_SECONDS=str(timeout)), workers=2)
    wait_for(lambda: server.get("/api/v1/details").json()["source"] == "kubernetes-api", 10, "API data")
    misbehaving.delay_seconds = float("inf")
    time.sleep(1.1)  # past the TTL: the next /details in each worker waits on the silent apiserver

    def timed(path: str) -> tuple[int, float]:
        begin = time.monotonic()
        response = requests.get(server.url + path, headers={"Connection": "close"}, timeout=10)
        return response.status_code, time.monotonic() - begin

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(timed, ["/api/v1/details"] * 18 + ["/api/v1/readyz"] * 2))
    assert all(status == 200 for status, _ in answers), answers
    slowest = max(seconds for _, seconds in answers)
    assert slowest < bound, f"slowest of {len(answers)} concurrent requests took {slowest:.2f}s: {answers}"
    wait_for(lambda: server.get("/api/v1/details").json()["stale"], 5, "stale data")
    body = server.get("/api/v1/details").json()
    assert body["source"] == "kubernetes-api" and f"no answer within {timeout:g}s" in body["kubernetes"]["reason"]


def test_sigterm_drains_without_failing_a_request(
    serve: Serve, misbehaving: MisbehavingApiserver, tmp_path: Path
) -> None:
    """SIGTERM under load: readiness turns 503 in every worker, nothing fails, in-flight requests finish, exit 0."""
    drain, api_delay = 1.5, 2.5
    env = kube_env(misbehaving, tmp_path, CACHE_TTL_SECONDS="1", DRAIN_SECONDS=str(drain), KUBE_TIMEOUT_SECONDS="10")
    server = serve({**env, "GUNICORN_THREADS": "4"}, workers=2)
    misbehaving.delay_seconds = api_delay
    wait_for(lambda: server.get("/api/v1/details").json()["source"] == "kubernetes-api", 20, "API data")
    time.sleep(1.2)  # past the TTL: the next /details in each worker refreshes from the slow apiserver

    failures: list[str] = []
    endpoint_removed = threading.Event()
    sigterm_at: list[float] = []
    served_after_sigterm = 0
    lock = threading.Lock()

    def load() -> None:
        # What a client behind a Service does: keep-alive requests until the pod leaves the endpoints.
        nonlocal served_after_sigterm
        with requests.Session() as session:
            while not endpoint_removed.is_set():
                try:
                    r = session.get(server.url + "/api/v1/version", timeout=10)
                    if r.status_code != 200:
                        failures.append(f"load: {r.status_code}")
                    elif sigterm_at:
                        with lock:
                            served_after_sigterm += 1
                except requests.RequestException as exc:
                    failures.append(f"load: {exc!r}")
                time.sleep(0.005)

    slow: list[tuple[float, float, int, str]] = []

    def in_flight() -> None:
        begin = time.monotonic()
        try:
            r = requests.get(server.url + "/api/v1/details", headers={"Connection": "close"}, timeout=20)
            slow.append((begin, time.monotonic(), r.status_code, r.json()["source"]))
        except requests.RequestException as exc:
            failures.append(f"in-flight: {exc!r}")

    readyz: list[tuple[float, int, int]] = []

    def watch_readiness() -> None:
        # The endpoints controller: polls readiness on new connections (so both workers answer) and removes the
        # pod from the endpoints once it sees 503; then keeps polling until the server is gone.
        while server.process.poll() is None:
            try:
                r = requests.get(server.url + "/api/v1/readyz", headers={"Connection": "close"}, timeout=5)
                readyz.append((time.monotonic(), r.status_code, 0))
                if r.status_code == 503:
                    endpoint_removed.set()
            except requests.ConnectionError:
                endpoint_removed.set()  # the listener closed: the drain is over
            time.sleep(0.02)

    loaders = [threading.Thread(target=load) for _ in range(3)]
    flights = [threading.Thread(target=in_flight) for _ in range(4)]
    watcher = threading.Thread(target=watch_readiness)
    for t in loaders + flights:
        t.start()
    time.sleep(0.3)  # the in-flight requests are now waiting on the slow apiserver
    sigterm_at.append(time.monotonic())
    watcher.start()
    exit_code = server.stop(timeout=30)
    exited_at = time.monotonic()
    for t in [*loaders, *flights, watcher]:
        t.join(30)

    assert exit_code == 0, server.logs()
    assert not failures, failures
    assert served_after_sigterm > 0, "the load stopped before the drain began"
    first_503 = next(t for t, status, _ in readyz if status == 503)
    assert sigterm_at[0] <= first_503 < sigterm_at[0] + 1.0 < exited_at
    assert all(status == 503 for t, status, _ in readyz if t > first_503 + 0.1)
    # The flag is shared: every worker answered 503 while draining.
    draining_pids = {
        line["pid"] for line in access_lines(server) if line["route"] == "/api/v1/readyz" and line["status"] == 503
    }
    assert len(draining_pids) == 2, draining_pids
    # At least one request was in flight across SIGTERM and the end of the drain, and it completed.
    assert len(slow) == 4 and all(status == 200 for _, _, status, _ in slow)
    longest = max(slow, key=lambda s: s[1] - s[0])
    assert longest[0] < sigterm_at[0] and longest[1] > sigterm_at[0] + drain
    assert exited_at - sigterm_at[0] >= drain
