"""The Kubernetes API client: how to reach the apiserver, and reading this pod from it.

Two ways in, one request (docs/adr/0007-in-cluster-access-without-the-kubernetes-package.md says why):

- In a pod, the kubelet's in-cluster contract, spoken over urllib3: the apiserver at
  https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, its certificate verified against the mounted `ca.crt`, the
  mounted `token` as a bearer token — read again for every call, because the kubelet rotates it. Nothing of the
  `kubernetes` package is imported: any import of it runs its `__init__`, which loads the whole client (~14 MB a
  process), and the one GET this service makes needs none of it.
- Outside a pod (KUBECONFIG set), the `kubernetes` client, through its public API, loads the kubeconfig (contexts,
  client certificates, exec and OIDC credential plugins, proxies) and builds the urllib3 pool that carries the same
  request. Memory does not matter there.

The TLS context, with the cluster CA loaded, is built once: under gunicorn in the master (preload_app), so workers
share it instead of each loading the CA at every new connection. The pod is fetched as raw JSON and summarised here,
never deserialised into models.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pod_details.cache import SourceError
from pod_details.settings import PodIdentity, Settings

log = logging.getLogger(__name__)

POD_PATH = "/api/v1/namespaces/{namespace}/pods/{name}"

Pod = dict[str, Any]
"""A pod summarised to the fields the details endpoint reports (see `summarise_pod`)."""

Credentials = Callable[[], dict[str, str]]
"""Returns the headers that authenticate one request; called for every request, so a rotated credential is used."""


class FetchError(SourceError):
    """A failed read of the pod. `outcome` is a bounded label for metrics; `reason` is for people."""

    def __init__(self, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome


@dataclass(frozen=True)
class Access:
    """How this process reaches the apiserver, decided once at start.

    mode is "in-cluster", "kubeconfig" or "none"; `reason` says why there is no client when `client` is None.
    """

    mode: str
    client: PodClient | None
    reason: str | None


@dataclass(frozen=True)
class Endpoint:
    """Where the apiserver is and how to talk to it: its URL, a urllib3 pool with its TLS settings, credentials."""

    server: str
    pool: Any  # urllib3.PoolManager: urllib3 is imported only when there is an apiserver to reach
    credentials: Credentials


class PodClient:
    """Reads one pod with a GET through the endpoint's urllib3 pool."""

    def __init__(self, endpoint: Endpoint, namespace: str, name: str, timeout_seconds: float) -> None:
        import urllib3

        self._pool = endpoint.pool
        self._credentials = endpoint.credentials
        self.namespace = namespace
        self.name = name
        self._timeout_seconds = timeout_seconds
        # A total timeout: connect + read together stay under it, so a slow apiserver holds at most one thread per
        # process for at most this long. (A bare number would bound connect and each read separately.)
        self._timeout = urllib3.Timeout(total=timeout_seconds)
        self._url = endpoint.server + POD_PATH.format(namespace=quote(namespace, safe=""), name=quote(name, safe=""))

    def close_connections(self) -> None:
        """Close pooled connections: a process about to fork must not hand the same socket to its children."""
        self._pool.clear()

    def read_pod(self) -> Pod:
        """GET the pod as JSON and summarise it; raise FetchError with an outcome label on any failure."""
        import urllib3.exceptions

        url = self._url
        try:
            credentials = self._credentials()
        except Exception as exc:  # an exec credential plugin can fail in any way; the token file can be gone
            raise FetchError("error", f"GET {url}: no credentials: {_describe(exc)}") from exc
        headers = {"Accept": "application/json", "User-Agent": "pod-details", **credentials}
        try:
            # urllib3 retries three times by default, each with the full timeout; the cache already retries after
            # its TTL. Without retries urllib3 raises the error itself, not a MaxRetryError around it.
            response = self._pool.request(
                "GET", url, headers=headers, timeout=self._timeout, retries=False, redirect=False
            )
        except urllib3.exceptions.SSLError as exc:  # the certificate is not the cluster CA's, or the handshake failed
            raise FetchError("tls_error", f"GET {url}: {_describe(exc)}") from exc
        except urllib3.exceptions.NewConnectionError as exc:  # refused, unresolvable: a subclass of TimeoutError
            raise FetchError("connection_error", f"GET {url}: {_describe(exc)}") from exc
        except urllib3.exceptions.TimeoutError as exc:
            raise FetchError(
                "timeout", f"GET {url}: no answer within {self._timeout_seconds:g}s ({type(exc).__name__})"
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise FetchError("connection_error", f"GET {url}: {_describe(exc)}") from exc
        raw = response.data
        if response.status != 200:
            raise FetchError(_outcome(response.status), f"GET {url}: {response.status} {_status_message(raw)}")
        try:
            return summarise_pod(json.loads(raw))
        except (ValueError, TypeError, AttributeError) as exc:
            raise FetchError("error", f"GET {url}: the response is not a Pod object: {exc}") from exc


def connect(settings: Settings) -> Access:
    """Find credentials and build a client; never raise — a pod without API access still serves its details.

    An explicit KUBECONFIG wins over in-cluster credentials: whoever set it meant it.
    """
    env = settings.environ
    sa_dir = settings.service_account_dir
    token = sa_dir / "token"
    if settings.kubeconfig:
        mode = "kubeconfig"
    elif env.get("KUBERNETES_SERVICE_HOST") and token.is_file():
        mode = "in-cluster"
    else:
        return Access(
            "none",
            None,
            "no Kubernetes credentials: neither a service account token at "
            f"{token} with KUBERNETES_SERVICE_HOST, nor KUBECONFIG",
        )
    name, namespace = _target(settings.pod, env, mode, sa_dir)
    if not name or not namespace:
        return Access(mode, None, "POD_NAME and POD_NAMESPACE must be set (Downward API) to read the pod")
    try:
        endpoint = from_kubeconfig(settings.kubeconfig) if settings.kubeconfig else in_cluster(env, sa_dir)
        client = PodClient(endpoint, namespace, name, settings.kube_timeout_seconds)
    except Exception as exc:  # a broken kubeconfig is reported, not fatal: readiness must not depend on it
        where = f"KUBECONFIG={settings.kubeconfig}" if mode == "kubeconfig" else f"in-cluster configuration ({sa_dir})"
        return Access(mode, None, f"cannot load {where}: {_describe(exc)}")
    return Access(mode, client, None)


def _target(pod: PodIdentity, env: Mapping[str, str], mode: str, sa_dir: Path) -> tuple[str | None, str | None]:
    name, namespace = pod.name, pod.namespace
    if mode == "in-cluster":
        # Without the Downward API a pod still knows itself: its hostname is its name, and the service account
        # mount carries its namespace.
        name = name or env.get("HOSTNAME") or socket.gethostname()
        if not namespace:
            try:
                namespace = (sa_dir / "namespace").read_text().strip() or None
            except OSError:
                namespace = None
    return name, namespace


@dataclass(frozen=True)
class ServiceAccountToken:
    """The bearer token the kubelet projects into the pod. Read at every call: the kubelet replaces the file before
    the token expires (by default within an hour), and a process that kept the first one would start getting 401s."""

    path: Path

    def __call__(self) -> dict[str, str]:
        token = self.path.read_text().strip()
        if not token:
            raise ValueError(f"{self.path} is empty: expected a service account token")
        return {"Authorization": f"Bearer {token}"}


def in_cluster(env: Mapping[str, str], sa_dir: Path) -> Endpoint:
    """The apiserver as the kubelet describes it to every pod — what client-go's `rest.InClusterConfig` reads.

    The service host and port variables, the token and the CA bundle of the service account mount. A missing or
    unreadable piece raises here, at start, naming the variable or file.
    """
    import ssl

    import urllib3

    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ValueError("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set")
    token = ServiceAccountToken(sa_dir / "token")
    token()
    ca = sa_dir / "ca.crt"
    try:
        # Certificate and host name verified (CERT_REQUIRED, check_hostname), TLS 1.2 or later.
        context = ssl.create_default_context(cafile=str(ca))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"{ca}: expected the cluster's CA certificates in PEM: {_describe(exc)}") from exc
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    return Endpoint(server, urllib3.PoolManager(ssl_context=context, retries=False), token)


def from_kubeconfig(path: str) -> Endpoint:
    """The apiserver, TLS settings and credentials of a kubeconfig's current context, loaded by the `kubernetes`
    client: its loader handles what a kubeconfig can hold (client certificates, exec and OIDC plugins that refresh
    tokens, proxies), and its REST layer's pool is built with all of it."""
    from kubernetes import client, config
    from kubernetes.client import rest

    configuration = client.Configuration()
    config.load_kube_config(config_file=path, client_configuration=configuration, persist_config=False)
    configuration.retries = False
    pool = rest.RESTClientObject(configuration).pool_manager

    def credentials() -> dict[str, str]:
        # auth_settings() runs the loader's refresh hook: an expiring token is renewed by its plugin.
        auth = configuration.auth_settings().get("BearerToken")
        return {auth["key"]: auth["value"]} if auth else {}

    return Endpoint(configuration.host, pool, credentials)


def summarise_pod(obj: Mapping[str, Any]) -> Pod:
    """Reduce a Pod object to what the details endpoint shows. No env, volumes or annotations: they may hold secrets."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if obj.get("kind", "Pod") != "Pod" or not meta.get("name"):
        raise ValueError(f"kind={obj.get('kind')!r}, metadata.name={meta.get('name')!r}")
    owners = meta.get("ownerReferences") or []
    owner = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
    statuses = {s.get("name"): s for s in status.get("containerStatuses") or []}
    containers = []
    for c in spec.get("containers") or []:
        st = statuses.get(c.get("name"), {})
        containers.append(
            {
                "name": c.get("name"),
                "image": c.get("image"),
                "ready": bool(st.get("ready", False)),
                "restart_count": int(st.get("restartCount", 0)),
            }
        )
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "node": spec.get("nodeName"),
        "ip": status.get("podIP"),
        "labels": dict(meta.get("labels") or {}),
        "owner": {"kind": owner.get("kind"), "name": owner.get("name")} if owner else None,
        "service_account": spec.get("serviceAccountName"),
        "phase": status.get("phase"),
        "start_time": status.get("startTime"),
        "containers": containers,
    }


def fallback_pod(identity: PodIdentity, use_host: bool) -> Pod:
    """The pod as far as the process knows without the API: Downward API variables, or the host when there are none."""
    name, node, ip = identity.name, identity.node, identity.ip
    if use_host:
        name = name or socket.gethostname()
        node = node or name
        ip = ip or _host_ip(name)
    return {
        "name": name,
        "namespace": identity.namespace,
        "uid": None,
        "node": node,
        "ip": ip,
        "labels": None,
        "owner": None,
        "service_account": identity.service_account,
        "phase": None,
        "start_time": None,
        "containers": None,
    }


def _host_ip(hostname: str) -> str | None:
    try:
        return socket.gethostbyname(hostname)
    except OSError:
        return None


def _outcome(status: int) -> str:
    return {401: "unauthorized", 403: "forbidden", 404: "not_found"}.get(status, "http_error")


def _status_message(raw: bytes) -> str:
    """The apiserver explains errors in a Status object; fall back to a bounded piece of the body."""
    try:
        message = json.loads(raw).get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message) if message else raw[:200].decode("utf-8", "replace")


def _describe(exc: BaseException) -> str:
    """One bounded line: the exception's type and message."""
    return f"{type(exc).__name__}: " + " ".join(str(exc).split())[:300]
