"""What the upstream controllers would do at run time, done by the e2e and named as such.

Argo CD judges health from status: a Gateway, an HTTPRoute or a ClusterIssuer nobody reconciles stays Progressing,
and an HPA without the metrics API is Degraded, so the apps would never turn Healthy. Two stand-ins fill in:

- ``StatusController`` (for NGINX Gateway Fabric and cert-manager): accepts GatewayClasses with NGINX Gateway
  Fabric's controllerName, the Gateways of those classes and the HTTPRoutes attached to them, and marks
  ClusterIssuers Ready. Every condition it writes says it comes from the e2e stand-in; nothing is served or issued.
- ``MetricsAPI`` (for the metrics-server AKS manages): the ``metrics.k8s.io`` API as an aggregated APIService,
  reporting each running container at 10% of its CPU request, so HPAs compute and hold their minimum.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from gitops_testing.e2e.kube import Kube
from gitops_testing.e2e.substitutions import GATEWAY_CONTROLLER

log = logging.getLogger(__name__)

MESSAGE = "set by the gitops-e2e stand-in (no controller runs here)"
GATEWAY_API = "gateway.networking.k8s.io/v1"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conditions(generation: int | None, *types: tuple[str, str]) -> list[dict]:
    out = []
    for ctype, reason in types:
        c = {"type": ctype, "status": "True", "reason": reason, "message": MESSAGE, "lastTransitionTime": _now()}
        if generation is not None:
            c["observedGeneration"] = generation
        out.append(c)
    return out


def _same(old: list | None, new: list) -> bool:
    """Equal but for lastTransitionTime, so an unchanged status is not rewritten every round."""

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k != "lastTransitionTime"}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return strip(old or []) == strip(new)


class StatusController:
    """A polling loop in a thread: cheap (a handful of objects), and every write is a status merge-patch."""

    def __init__(self, kube: Kube, interval: float = 2.0) -> None:
        self.kube = kube
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="e2e-standin-status", daemon=True)
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.reconcile()
            except Exception as e:  # a CRD not installed yet, a conflict: the next round retries
                self.errors += 1
                log.debug("stand-in status round failed: %s", e)

    def reconcile(self) -> None:
        if self.kube.has_kind(GATEWAY_API, "GatewayClass"):
            self._gateways()
        if self.kube.has_kind("cert-manager.io/v1", "ClusterIssuer"):
            for issuer in self.kube.list("cert-manager.io/v1", "ClusterIssuer"):
                gen = issuer["metadata"].get("generation")
                want = _conditions(gen, ("Ready", "ACMEAccountRegistered"))
                if not _same((issuer.get("status") or {}).get("conditions"), want):
                    self.kube.patch_status(
                        "cert-manager.io/v1",
                        "ClusterIssuer",
                        issuer["metadata"]["name"],
                        {"status": {"conditions": want}},
                    )

    def _gateways(self) -> None:
        classes = {
            c["metadata"]["name"]
            for c in self.kube.list(GATEWAY_API, "GatewayClass")
            if c["spec"].get("controllerName") == GATEWAY_CONTROLLER and self._accept_class(c)
        }
        gateways = {}
        for gw in self.kube.list(GATEWAY_API, "Gateway"):
            if gw["spec"].get("gatewayClassName") in classes:
                gateways[(gw["metadata"]["namespace"], gw["metadata"]["name"])] = gw
        attached: dict[tuple[str, str, str], int] = {}
        for route in self.kube.list(GATEWAY_API, "HTTPRoute"):
            self._accept_route(route, gateways, attached)
        for key, gw in gateways.items():
            self._accept_gateway(gw, {listener: n for (ns, name, listener), n in attached.items() if (ns, name) == key})

    def _accept_class(self, gc: dict) -> bool:
        gen = gc["metadata"].get("generation")
        want = _conditions(gen, ("Accepted", "Accepted"))
        if not _same((gc.get("status") or {}).get("conditions"), want):
            self.kube.patch_status(
                GATEWAY_API, "GatewayClass", gc["metadata"]["name"], {"status": {"conditions": want}}
            )
        return True

    def _accept_gateway(self, gw: dict, attached: dict[str, int]) -> None:
        gen = gw["metadata"].get("generation")
        listeners = [
            {
                "name": listener["name"],
                "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                "attachedRoutes": attached.get(listener["name"], 0),
                "conditions": _conditions(
                    gen, ("Accepted", "Accepted"), ("ResolvedRefs", "ResolvedRefs"), ("Programmed", "Programmed")
                ),
            }
            for listener in gw["spec"].get("listeners") or []
        ]
        want = {
            "conditions": _conditions(gen, ("Accepted", "Accepted"), ("Programmed", "Programmed")),
            "listeners": listeners,
        }
        status = gw.get("status") or {}
        if not (_same(status.get("conditions"), want["conditions"]) and _same(status.get("listeners"), listeners)):
            ns, name = gw["metadata"]["namespace"], gw["metadata"]["name"]
            self.kube.patch_status(GATEWAY_API, "Gateway", name, {"status": want}, ns)

    def _accept_route(self, route: dict, gateways: dict, attached: dict) -> None:
        ns, gen = route["metadata"]["namespace"], route["metadata"].get("generation")
        parents = []
        for ref in route["spec"].get("parentRefs") or []:
            key = (ref.get("namespace") or ns, ref["name"])
            if ref.get("kind", "Gateway") != "Gateway" or key not in gateways:
                continue
            for listener in gateways[key]["spec"].get("listeners") or []:
                if ref.get("sectionName") in (None, listener["name"]):
                    attached[(*key, listener["name"])] = attached.get((*key, listener["name"]), 0) + 1
            parents.append(
                {
                    "parentRef": ref,
                    "controllerName": GATEWAY_CONTROLLER,
                    "conditions": _conditions(gen, ("Accepted", "Accepted"), ("ResolvedRefs", "ResolvedRefs")),
                }
            )
        if parents and not _same((route.get("status") or {}).get("parents"), parents):
            name = route["metadata"]["name"]
            self.kube.patch_status(GATEWAY_API, "HTTPRoute", name, {"status": {"parents": parents}}, ns)


# -- the metrics API -------------------------------------------------------------------------------------------------

GROUP_VERSION = "metrics.k8s.io/v1beta1"
SERVICE = "e2e-standin-metrics-server"
CPU_SHARE = 0.10  # of each container's CPU request


def _millicores(quantity: str | None) -> int:
    if not quantity:
        return 0
    if quantity.endswith("m"):
        return int(float(quantity[:-1]))
    return int(float(quantity) * 1000)


def serving_cert(directory: Path, ca_cert: Path, ca_key: Path, dns_names: list[str]) -> tuple[Path, Path]:
    """A serving certificate signed by the control plane's CA: the aggregator verifies the name
    ``<service>.<namespace>.svc``, whatever address the Service resolves to."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    signer = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [*map(x509.DNSName, dns_names), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(signer, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "metrics-standin.crt", directory / "metrics-standin.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


class MetricsAPI:
    """An HTTPS server answering ``metrics.k8s.io/v1beta1`` from the pods the apiserver knows about."""

    def __init__(self, kube: Kube, cert_dir: Path, ca_cert: Path, ca_key: Path) -> None:
        self.kube = kube
        self.ca = ca_cert
        cert, key = serving_cert(cert_dir, ca_cert, ca_key, [f"{SERVICE}.kube-system.svc", "localhost"])
        handler = _handler(self._pod_metrics, self._node_metrics)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="e2e-standin-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for serve_forever, which must be running
            self.server.shutdown()
        self.server.server_close()

    def manifests(self) -> list[dict]:
        """The APIService and the Service it points at: an ExternalName to this server on loopback."""
        labels = {"app.kubernetes.io/managed-by": "gitops-e2e"}
        return [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": SERVICE, "namespace": "kube-system", "labels": labels},
                "spec": {
                    "type": "ExternalName",
                    "externalName": "localhost",
                    "ports": [{"name": "https", "port": self.port}],
                },
            },
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": "v1beta1.metrics.k8s.io", "labels": labels},
                "spec": {
                    "group": "metrics.k8s.io",
                    "version": "v1beta1",
                    "service": {"namespace": "kube-system", "name": SERVICE, "port": self.port},
                    "caBundle": base64.b64encode(self.ca.read_bytes()).decode(),
                    "groupPriorityMinimum": 100,
                    "versionPriority": 100,
                },
            },
        ]

    def _pod_metrics(self, namespace: str | None, name: str | None, selector: str | None) -> list[dict]:
        pods = (
            self.kube.list("v1", "Pod", namespace, label_selector=selector)
            if selector
            else self.kube.list("v1", "Pod", namespace)
        )
        out = []
        for pod in pods:
            if name and pod["metadata"]["name"] != name:
                continue
            if (pod.get("status") or {}).get("phase") != "Running":
                continue
            containers = []
            for c in pod["spec"]["containers"]:
                requests = (c.get("resources") or {}).get("requests") or {}
                cpu = max(1, int(_millicores(requests.get("cpu")) * CPU_SHARE))
                containers.append({"name": c["name"], "usage": {"cpu": f"{cpu}m", "memory": "20Mi"}})
            out.append(
                {
                    "kind": "PodMetrics",
                    "apiVersion": GROUP_VERSION,
                    "metadata": {
                        "name": pod["metadata"]["name"],
                        "namespace": pod["metadata"]["namespace"],
                        "labels": pod["metadata"].get("labels") or {},
                        "creationTimestamp": _now(),
                    },
                    "timestamp": _now(),
                    "window": "15s",
                    "containers": containers,
                }
            )
        return out

    def _node_metrics(self) -> list[dict]:
        return [
            {
                "kind": "NodeMetrics",
                "apiVersion": GROUP_VERSION,
                "metadata": {"name": n["metadata"]["name"], "creationTimestamp": _now()},
                "timestamp": _now(),
                "window": "15s",
                "usage": {"cpu": "100m", "memory": "512Mi"},
            }
            for n in self.kube.list("v1", "Node")
        ]


RESOURCES = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": GROUP_VERSION,
    "resources": [
        {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics", "verbs": ["get", "list"]},
        {"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics", "verbs": ["get", "list"]},
    ],
}
PODS_RE = re.compile(r"^/apis/metrics\.k8s\.io/v1beta1(?:/namespaces/([^/]+))?/pods(?:/([^/]+))?$")
NODES_RE = re.compile(r"^/apis/metrics\.k8s\.io/v1beta1/nodes(?:/([^/]+))?$")


def _handler(pod_metrics: Callable, node_metrics: Callable) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args) -> None:
            log.debug("metrics stand-in: " + format, *args)

        def _send(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query)
            try:
                if url.path == "/apis/metrics.k8s.io/v1beta1":
                    return self._send(200, RESOURCES)
                if m := PODS_RE.match(url.path):
                    items = pod_metrics(m.group(1), m.group(2), (query.get("labelSelector") or [None])[0])
                    if m.group(2):
                        return self._send(200, items[0]) if items else self._not_found()
                    return self._send(
                        200, {"kind": "PodMetricsList", "apiVersion": GROUP_VERSION, "metadata": {}, "items": items}
                    )
                if m := NODES_RE.match(url.path):
                    items = [n for n in node_metrics() if not m.group(1) or n["metadata"]["name"] == m.group(1)]
                    if m.group(1):
                        return self._send(200, items[0]) if items else self._not_found()
                    return self._send(
                        200, {"kind": "NodeMetricsList", "apiVersion": GROUP_VERSION, "metadata": {}, "items": items}
                    )
            except Exception as e:  # answer, so the apiserver does not wait out its timeout
                return self._send(500, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": str(e)})
            return self._not_found()

        def _not_found(self) -> None:
            self._send(
                404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}
            )

    return Handler
