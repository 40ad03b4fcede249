#!/usr/bin/env python3
"""Benchmark pod-details as deployed, against a bare Flask baseline measured in the same run.

Runs gunicorn with the service's own config (one gthread worker, the default) in in-cluster mode against a real
kube-apiserver (a `gitops.cluster.LocalControlPlane` the benchmark starts, and stops at the end even on error, holding
the chart's RBAC and a Pod, with a TokenRequest token in a service account directory as a pod has), and a hello-world
Flask app under the same gunicorn worker settings. `wrk` loads
each over loopback; the server is pinned to CPU 0 and wrk to CPU 1, so "one worker core" means what it says.

Prints one JSON object per line, one per figure:
- req/s and p50/p99 latency at peak for /api/v1/details and /api/v1/healthz, and for the baseline;
- the ratio of each to the baseline (the figure that counts: machine speed cancels out). The runs are interleaved
  and the best of each kind counts, so a burst of background load does not land on one side only;
- server CPU time per request for each (utime + stime of master and workers over the run), and the same ratio on
  that basis: on a shared machine it is steadier than req/s, because it does not count time the server waited
  for a core;
- p99 of /api/v1/details paced at ~80% of its peak (wrk paced with a Lua delay(): plain wrk has no rate option);
- total PSS of the gunicorn master and workers after the run (/proc/PID/smaps_rollup);
- the Kubernetes API calls made during the whole run (from the service's /metrics, and the pod GETs the apiserver's
  own /metrics counted) next to the requests served;
- the same service with tracing on (OTEL_EXPORTER_OTLP_ENDPOINT set, every trace sampled, every span exported to an
  OTLP/HTTP sink in this process): its peak /api/v1/details and PSS, and the ratios to the service with tracing off
  (the default, which must not move: compare `details_vs_baseline` and `pss_mb` with a run before the change);
- memory as a pod runs it (`memory_*`): fresh servers — the service in kubernetes-api mode (in-cluster, against the
  control plane), the service in local mode (no Kubernetes credentials) and the baseline — each served `--requests`
  (200k) requests of a mix of every endpoint, each with one worker. For each, before and after the load: the total
  PSS of master and worker (/proc/PID/smaps_rollup, read for all servers at the same moment), and their resident
  memory counting each page once (/proc/PID/pagemap; root only): what their PSS would be if no other process on the
  machine mapped the same files, as in a pod. PSS on a busy machine is lower, because other Python processes share
  libpython's and OpenSSL's pages; the resident figure does not depend on them. With `--compare REV`, the service's
  code at git revision REV is measured in kubernetes-api mode too, in the same run.

Needs `wrk` (apt-get install wrk) and the control plane's binaries (`make tools`); installs nothing.
Usage: .venv/bin/python benchmarks/service_bench.py [--check] [--requests N] [--compare REV]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "apps" / "pod-details"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(APP / "tests"))

from pod_details_support import live_cluster  # noqa: E402 - the tests' real-cluster helpers: the chart's RBAC, the Pod, a pod's credentials

from gitops.cluster import LocalControlPlane  # noqa: E402

BASELINE_APP = """
from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello():
    return {"hello": "world"}
"""

# The baseline gets gunicorn's defaults plus the service's worker model; no access log, no hooks.
BASELINE_ARGS = ["--worker-class", "gthread", "--workers", "1", "--threads", "8", "bare_app:app"]

TARGETS = {
    "details_vs_baseline": (">=", 0.6),
    "details_rps": (">=", 2000.0),
    "details_p99_ms_at_80pct": ("<", 10.0),
    "pss_mb": ("<=", 50.0),
    "memory_kubernetes_api_pss_mb": ("<=", 45.0),
}

# The memory phase's request mix: every endpoint, half of the requests for the details, as probes, scrapes and
# clients would send them.
MIXED_PATHS = (
    "/api/v1/details",
    "/api/v1/healthz",
    "/api/v1/details",
    "/api/v1/readyz",
    "/api/v1/details",
    "/api/v1/version",
    "/api/v1/details",
    "/metrics",
    "/api/v1/details",
    "/api/v1/openapi.json",
)


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_us_per_request: float = 0.0


def emit(figure: str, value: float, unit: str, **extra: object) -> None:
    line: dict[str, object] = {"benchmark": "pod-details", "figure": figure, "value": round(value, 3), "unit": unit}
    if figure in TARGETS:
        op, bound = TARGETS[figure]
        line["target"] = f"{op} {bound:g}"
        line["met"] = {">=": value >= bound, "<": value < bound, "<=": value <= bound}[op]
    line.update(extra)
    print(json.dumps(line), flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def on_cpu(cpu: int) -> Callable[[], None]:
    """A preexec_fn pinning the child (and everything it forks) to one CPU."""

    def pin() -> None:
        os.sched_setaffinity(0, {cpu % (os.cpu_count() or 1)})

    return pin


MODE_VARIABLES = ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "POD_NAME", "POD_NAMESPACE")


@contextmanager
def gunicorn(args: list[str], env: Mapping[str, str], cwd: Path, log: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    # The shell's Kubernetes and tracing variables (a KUBECONFIG from `make cluster-up`, say) would change the mode
    # of the server measured: each server gets only those `env` gives it.
    inherited = {k: v for k, v in os.environ.items() if k not in MODE_VARIABLES and not k.startswith("OTEL_")}
    full_env = {**inherited, **env, "BIND": f"127.0.0.1:{port}"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), *args, "--bind", f"127.0.0.1:{port}"],
            cwd=cwd,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=on_cpu(0),
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"gunicorn exited with {process.returncode}; see {log}:\n{log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(url + "/", timeout=1)
                break
            except OSError as exc:
                if getattr(exc, "code", None):  # an HTTP error is an answer: it is up
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"gunicorn did not start within 60s; see {log}")
            time.sleep(0.1)
        yield url, process.pid
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(url: str, seconds: float, connections: int, script: Path | None = None) -> WrkResult:
    cmd = [shutil.which("wrk") or "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True, preexec_fn=on_cpu(1)).stdout
    return _wrk_result(out)


# wrk has no request-count option: response() counts, and at the count stops the thread and leaves a marker file.
COUNTED_LUA = """
local paths = {%(paths)s}
local sent, done = 0, 0
request = function()
  sent = sent %% #paths + 1
  return wrk.format("GET", paths[sent])
end
response = function(status, headers, body)
  done = done + 1
  if done == %(count)d then
    io.open("%(marker)s", "w"):close()
    wrk.thread:stop()
  end
end
"""


def wrk_count(url: str, count: int, paths: Sequence[str], connections: int, tmp: Path) -> tuple[WrkResult, float]:
    """Send `count` requests, taking `paths` in turn; wrk's figures and the seconds the requests took.

    wrk's main thread sleeps out its duration whatever its threads do, so once the marker appears it is interrupted:
    on SIGINT it prints its report of what was done."""
    marker = tmp / "wrk-count-done"
    marker.unlink(missing_ok=True)
    script = tmp / "counted.lua"
    quoted = ", ".join(json.dumps(path) for path in paths)
    script.write_text(COUNTED_LUA % {"paths": quoted, "count": count, "marker": marker})
    cmd = [shutil.which("wrk") or "wrk", "-t1", f"-c{connections}", "-d86400s", "--latency", "-s", str(script), url]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, preexec_fn=on_cpu(1))
    begin = time.monotonic()
    try:
        while not marker.exists():
            if process.poll() is not None:
                raise SystemExit(f"wrk exited with {process.returncode} before {count} requests to {url}")
            time.sleep(0.05)
        seconds = time.monotonic() - begin
        process.send_signal(signal.SIGINT)
        out = process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return _wrk_result(out), seconds


def _wrk_result(out: str) -> WrkResult:
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.MULTILINE))  # wrk pads "1.14s "
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return WrkResult(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(latency["50"]),
        p99_ms=_ms(latency["99"]),
        requests=int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        errors=errors + (int(non2xx.group(1)) if non2xx else 0),
    )


def cpu_ticks(pid: int) -> int:
    """utime + stime of a gunicorn master and its workers, in clock ticks."""
    total = 0
    for p in process_tree(pid):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


def measured(url: str, pid: int, seconds: float, connections: int) -> WrkResult:
    before = cpu_ticks(pid)
    result = wrk(url, seconds, connections)
    ticks = cpu_ticks(pid) - before
    result.cpu_us_per_request = ticks / os.sysconf("SC_CLK_TCK") * 1e6 / max(result.requests, 1)
    return result


def peaks(targets: dict[str, tuple[str, int]], seconds: float, connections: int, rounds: int) -> dict[str, WrkResult]:
    """Each target's best run: one warm-up each, then `rounds` rounds that take the targets in turn.

    Background load only ever makes a run slower, so the best run is the least disturbed one.
    """
    for url, _ in targets.values():
        wrk(url, 2, connections)
    runs: dict[str, list[WrkResult]] = {name: [] for name in targets}
    for _ in range(rounds):
        for name, (url, pid) in targets.items():
            runs[name].append(measured(url, pid, seconds, connections))
    return {
        name: WrkResult(
            **{
                **max(results, key=lambda r: r.rps).__dict__,
                "cpu_us_per_request": min(r.cpu_us_per_request for r in results),
            }
        )
        for name, results in runs.items()
    }


def paced(url: str, target_rps: float, seconds: float, tmp: Path) -> WrkResult:
    """Run at about `target_rps`: each connection waits `delay` ms between requests; the connection count sets the
    rate. Calibrated in two short runs, since the response time adds to the delay."""
    delay_ms = 10
    script = tmp / "pace.lua"
    script.write_text(f"function delay()\n  return {delay_ms}\nend\n")
    connections = max(1, round(target_rps * (delay_ms + 1) / 1000))
    for _ in range(2):
        probe = wrk(url, 3, connections, script)
        connections = max(1, round(connections * target_rps / max(probe.rps, 1.0)))
    return wrk(url, seconds, connections, script)


def pss_kb(pid: int) -> int:
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    return int(re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE).group(1))  # type: ignore[union-attr]


PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_kb(pids: Sequence[int]) -> int | None:
    """The memory `pids` hold, each physical page counted once however many of them map it: their total PSS if no
    other process on the machine mapped the same pages — as in a pod's container, where nothing else runs Python.

    Read from /proc/PID/pagemap, whose page frame numbers only root (CAP_SYS_ADMIN) sees; None without them.
    """
    frames: set[int] = set()
    for pid in pids:
        with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
            for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
                start, end = (int(bound, 16) for bound in line.split()[0].split("-"))
                if line.endswith("[vsyscall]"):
                    continue
                pagemap.seek(start // PAGE * 8)
                for (entry,) in struct.iter_unpack("Q", pagemap.read((end - start) // PAGE * 8)):
                    if entry >> 63:  # present in RAM; bits 0-54 are the page frame number
                        frames.add(entry & ((1 << 55) - 1))
    frames.discard(0)
    return len(frames) * PAGE // 1024 if frames else None


def process_tree(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return [pid, *children]


def scrape_sum(url: str, metric: str) -> float:
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    return sum(float(v) for v in re.findall(rf"^{metric}(?:\{{[^}}]*\}})? (\S+)$", text, re.MULTILINE))


def apiserver_pod_gets(cp: LocalControlPlane) -> float:
    """GETs of single pods the apiserver served, from its own /metrics (admin client certificate)."""
    with urllib.request.urlopen(cp.server + "/metrics", timeout=10, context=cp.ssl_context()) as response:
        text = response.read().decode()
    total = 0.0
    for labels, value in re.findall(r"^apiserver_request_total\{([^}]*)\} (\S+)$", text, re.MULTILINE):
        if 'verb="GET"' in labels and 'resource="pods"' in labels and 'subresource=""' in labels:
            total += float(value)
    return total


@contextmanager
def otlp_sink() -> Iterator[str]:
    """An OTLP/HTTP endpoint that accepts every export and discards it: the exporter's cost, not a collector's."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Sink(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")  # an empty ExportTraceServiceResponse
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Memory:
    pss_kb: int
    resident_kb: int | None


def memory(pid: int) -> Memory:
    pids = process_tree(pid)
    return Memory(sum(pss_kb(p) for p in pids), resident_kb(pids))


def exported_service(revision: str, into: Path) -> Path:
    """The service's package as of a git revision, for PYTHONPATH (it comes before the editable install)."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", revision, "apps/pod-details/src"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "apps" / "pod-details" / "src"


def memory_phase(
    cp: LocalControlPlane, pod: live_cluster.LivePod, tmp: Path, requests: int, connections: int, compare: str | None
) -> None:
    """Fresh servers with one worker each: the service in kubernetes-api and in local mode, and the baseline. Memory
    at start, then after `requests` requests each, read for all of them at the same moment both times."""

    def service(mode: str, **extra: str) -> dict[str, str]:
        env = {"WEB_CONCURRENCY": "1", "PROMETHEUS_MULTIPROC_DIR": str(tmp / f"metrics-{mode}"), **extra}
        if mode.startswith("kubernetes_api"):
            env.update(live_cluster.pod_env(cp, pod, tmp / mode))
        return env

    service_args = ["--config", "python:pod_details.gunicorn_conf", "pod_details.wsgi:app"]
    servers: dict[str, tuple[list[str], dict[str, str], Path, Sequence[str]]] = {
        "kubernetes_api": (service_args, service("kubernetes_api"), APP, MIXED_PATHS),
        "local": (service_args, service("local"), APP, MIXED_PATHS),
        "baseline": (BASELINE_ARGS, {}, tmp, ("/",)),
    }
    if compare:
        src = exported_service(compare, tmp / "compared")
        servers["kubernetes_api_compared"] = (
            service_args,
            service("kubernetes_api_compared", PYTHONPATH=str(src)),
            APP,
            MIXED_PATHS,
        )
    with ExitStack() as stack:
        running = {
            name: stack.enter_context(gunicorn(args, env, cwd, tmp / f"memory-{name}.log"))
            for name, (args, env, cwd, _) in servers.items()
        }
        before = {name: memory(pid) for name, (_, pid) in running.items()}
        loads = {
            name: wrk_count(running[name][0], requests, paths, connections, tmp)
            for name, (_, _, _, paths) in servers.items()
        }
        after = {name: memory(pid) for name, (_, pid) in running.items()}

    def mib(kb: int | None) -> float | None:
        return None if kb is None else round(kb / 1024, 1)

    def ratio(a: int | None, b: int | None) -> float | None:
        return None if a is None or b is None else round(a / b, 3)

    base = after["baseline"]
    for name in servers:
        (result, seconds), start, end = loads[name], before[name], after[name]
        extra: dict[str, object] = {"revision": compare} if name.endswith("_compared") else {}
        emit(
            f"memory_{name}_pss_mb",
            end.pss_kb / 1024,
            "MiB",
            **extra,
            before_load_mb=mib(start.pss_kb),
            resident_mb=mib(end.resident_kb),
            resident_before_load_mb=mib(start.resident_kb),
            requests=result.requests,
            errors=result.errors,
            req_per_s=round(result.requests / seconds, 1),
        )
        if name != "baseline":
            emit(
                f"memory_{name}_vs_baseline",
                end.pss_kb / base.pss_kb,
                "ratio",
                **extra,
                before_load=ratio(start.pss_kb, before["baseline"].pss_kb),
                resident=ratio(end.resident_kb, base.resident_kb),
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="length of each measured wrk run")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections for the peak runs")
    parser.add_argument("--rounds", type=int, default=3, help="peak runs per target; the best one counts")
    parser.add_argument("--requests", type=int, default=200_000, help="requests per server in the memory phase")
    parser.add_argument("--compare", metavar="REV", help="also measure the service's memory at this git revision")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("service_bench: the wrk load generator is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    if not (BIN / "gunicorn").exists():
        print(f"service_bench: {BIN / 'gunicorn'} is missing: run `make setup` first", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="pod-details-bench-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "bare_app.py").write_text(BASELINE_APP)
        with (
            LocalControlPlane(tmp / "control-plane") as cp,
            live_cluster.deployed(cp.kubeconfig, prefix="pod-details-bench") as pod,
        ):
            service_env = {
                **live_cluster.pod_env(cp, pod, tmp),
                "WEB_CONCURRENCY": "1",
                "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
            }
            service_args = ["--config", "python:pod_details.gunicorn_conf", "pod_details.wsgi:app"]
            # Tracing on, at its most expensive: every trace sampled, and a queue that drops nothing under load.
            traced_env = {
                **service_env,
                "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics-traced"),
                "OTEL_TRACES_SAMPLER": "always_on",
                "OTEL_BSP_MAX_QUEUE_SIZE": "65536",
                "OTEL_BSP_SCHEDULE_DELAY": "500",
            }
            with (
                gunicorn(service_args, service_env, APP, tmp / "service.log") as (service, service_pid),
                gunicorn(BASELINE_ARGS, {}, tmp, tmp / "baseline.log") as (baseline, baseline_pid),
            ):
                best = peaks(
                    {
                        "baseline": (baseline + "/", baseline_pid),
                        "details": (service + "/api/v1/details", service_pid),
                        "healthz": (service + "/api/v1/healthz", service_pid),
                    },
                    args.seconds,
                    args.connections,
                    args.rounds,
                )
                base, details, healthz = best["baseline"], best["details"], best["healthz"]
                at80 = paced(service + "/api/v1/details", 0.8 * details.rps, args.seconds, tmp)

                for name, result in best.items():
                    emit(f"{name}_rps", result.rps, "req/s", connections=args.connections, errors=result.errors)
                    emit(f"{name}_p50_ms", result.p50_ms, "ms")
                    emit(f"{name}_p99_ms", result.p99_ms, "ms")
                    emit(f"{name}_cpu_us_per_request", result.cpu_us_per_request, "us")
                emit("details_vs_baseline", details.rps / base.rps, "ratio")
                emit("healthz_vs_baseline", healthz.rps / base.rps, "ratio")
                emit("details_vs_baseline_by_cpu", base.cpu_us_per_request / details.cpu_us_per_request, "ratio")
                emit("healthz_vs_baseline_by_cpu", base.cpu_us_per_request / healthz.cpu_us_per_request, "ratio")
                emit(
                    "details_p99_ms_at_80pct",
                    at80.p99_ms,
                    "ms",
                    achieved_rps=round(at80.rps, 1),
                    fraction_of_peak=round(at80.rps / details.rps, 2),
                    p50_ms=at80.p50_ms,
                    errors=at80.errors,
                )
                pids = process_tree(service_pid)
                pss = sum(pss_kb(p) for p in pids) / 1024
                emit("pss_mb", pss, "MB", processes=len(pids))
                served = scrape_sum(service, "pod_details_http_requests_total")
                calls = scrape_sum(service, "pod_details_kubernetes_api_requests_total")
                emit(
                    "kubernetes_api_calls",
                    calls,
                    "calls",
                    http_requests_served=int(served),
                    apiserver_saw=int(apiserver_pod_gets(cp)),
                )

                # Tracing on, next to the same service with it off: interleaved rounds again, and both PSS read at
                # the same moment (pages shared with the other processes are then split the same way for both).
                with (
                    otlp_sink() as sink,
                    gunicorn(
                        service_args, {**traced_env, "OTEL_EXPORTER_OTLP_ENDPOINT": sink}, APP, tmp / "traced.log"
                    ) as (traced, traced_pid),
                ):
                    pair = peaks(
                        {
                            "details": (service + "/api/v1/details", service_pid),
                            "details_traced": (traced + "/api/v1/details", traced_pid),
                        },
                        args.seconds,
                        args.connections,
                        args.rounds,
                    )
                    off, on = pair["details"], pair["details_traced"]
                    emit("details_traced_rps", on.rps, "req/s", connections=args.connections, errors=on.errors)
                    emit("details_traced_p99_ms", on.p99_ms, "ms")
                    emit("details_traced_cpu_us_per_request", on.cpu_us_per_request, "us")
                    emit("details_traced_vs_untraced", on.rps / off.rps, "ratio", untraced_rps=round(off.rps, 1))
                    emit("details_traced_vs_untraced_by_cpu", off.cpu_us_per_request / on.cpu_us_per_request, "ratio")
                    untraced_pss = sum(pss_kb(p) for p in process_tree(service_pid)) / 1024
                    traced_pids = process_tree(traced_pid)
                    traced_pss = sum(pss_kb(p) for p in traced_pids) / 1024
                    emit(
                        "pss_traced_mb",
                        traced_pss,
                        "MB",
                        processes=len(traced_pids),
                        untraced_alongside_mb=round(untraced_pss, 1),
                        more_than_untraced_mb=round(traced_pss - untraced_pss, 1),
                    )
            memory_phase(cp, pod, tmp, args.requests, args.connections, args.compare)
    return 0


if __name__ == "__main__":
    sys.exit(main())
