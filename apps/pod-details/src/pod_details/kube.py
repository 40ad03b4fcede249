"""The Kubernetes API client: how to reach the apiserver, and reading this pod from it.

Memory matters here (the pod's budget is 50 MB for master and workers together). Importing the `kubernetes`
package whole costs ~16 MB per pod: its `__init__` imports every helper (dynamic client, watch, stream, leader
election, informers, YAML utils) and the config loaders pull in pydantic, requests and oauthlib. The one call this
service makes needs three modules of it: the client `Configuration`, the REST layer (urllib3 with the client's TLS
and auth settings), and — in a pod — the in-cluster config loader. So:

- `_kubernetes_modules()` imports just those, with the package `__init__` files of `kubernetes`,
  `kubernetes.config` and `kubernetes.utils` skipped while it does (see there). The heavier kubeconfig loader is
  imported only when KUBECONFIG is set, i.e. outside a pod.
- The pod is fetched as raw JSON through the REST layer and summarised here, never deserialised into models.
- Under gunicorn this happens once in the master (preload_app); workers share the pages.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import socket
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

from pod_details.cache import SourceError
from pod_details.settings import PodIdentity, Settings

log = logging.getLogger(__name__)

POD_PATH = "/api/v1/namespaces/{namespace}/pods/{name}"

Pod = dict[str, Any]
"""A pod summarised to the fields the details endpoint reports (see `summarise_pod`)."""


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


class PodClient:
    """Reads one pod through the client's REST layer, with a `kubernetes.client.Configuration` (host, TLS, auth)."""

    def __init__(self, configuration: Any, namespace: str, name: str, timeout_seconds: float) -> None:
        rest = _kubernetes_modules()["rest"]
        self._configuration = configuration
        self._rest = rest.RESTClientObject(configuration)
        self.namespace = namespace
        self.name = name
        self._timeout = timeout_seconds
        self._url = configuration.host + POD_PATH.format(namespace=quote(namespace, safe=""), name=quote(name, safe=""))

    def close_connections(self) -> None:
        """Close pooled connections: a process about to fork must not hand the same socket to its children."""
        self._rest.pool_manager.clear()

    def read_pod(self) -> Pod:
        """GET the pod as JSON and summarise it; raise FetchError with an outcome label on any failure."""
        import urllib3.exceptions

        url = self._url
        headers = {"Accept": "application/json", "User-Agent": "pod-details"}
        # auth_settings() runs the loader's refresh hook: a rotated service account token is re-read from its file.
        auth = self._configuration.auth_settings().get("BearerToken")
        if auth:
            headers[auth["key"]] = auth["value"]
        try:
            # A single number is urllib3's *total* timeout: connect + read together stay under it, so a slow
            # apiserver holds at most one thread per process for at most this long.
            response = self._rest.request("GET", url, headers=headers, _request_timeout=self._timeout)
            try:
                raw = response.read()
            finally:
                response.response.release_conn()
        except urllib3.exceptions.NewConnectionError as exc:  # refused, unresolvable: a subclass of TimeoutError
            raise FetchError("connection_error", f"GET {url}: {_describe(exc)}") from exc
        except urllib3.exceptions.TimeoutError as exc:
            raise FetchError(
                "timeout", f"GET {url}: no answer within {self._timeout:g}s ({type(exc).__name__})"
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise FetchError("connection_error", f"GET {url}: {_describe(exc)}") from exc
        except Exception as exc:  # the REST layer reports TLS failures as an ApiException with status 0
            outcome = "tls_error" if "SSL" in str(getattr(exc, "reason", "")) else "error"
            raise FetchError(outcome, f"GET {url}: {_describe(exc)}") from exc
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
        configuration = _configuration(settings, mode)
        client = PodClient(configuration, namespace, name, settings.kube_timeout_seconds)
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


def _configuration(settings: Settings, mode: str) -> Any:
    modules = _kubernetes_modules()
    configuration = modules["configuration"].Configuration()
    if mode == "kubeconfig":
        from kubernetes.config import kube_config  # heavier (YAML, OAuth, pydantic); only outside a pod

        kube_config.load_kube_config(
            config_file=settings.kubeconfig, client_configuration=configuration, persist_config=False
        )
    else:
        sa_dir = settings.service_account_dir
        modules["incluster_config"].InClusterConfigLoader(
            token_filename=str(sa_dir / "token"), cert_filename=str(sa_dir / "ca.crt"), environ=settings.environ
        ).load_and_set(configuration)
    # urllib3 retries three times by default, each with the full timeout; the cache already retries after its TTL.
    configuration.retries = False
    return configuration


# The packages whose __init__ is skipped: each only re-exports its submodules, importing all of them.
_SKIPPED_INITS = ("kubernetes", "kubernetes.config", "kubernetes.utils")


def _kubernetes_modules() -> dict[str, ModuleType]:
    """Import the three submodules the service uses, without the package `__init__` files that import everything.

    While importing, each skipped package is an empty module object made from its own import spec — the same
    `__path__`, so its submodules load normally. Afterwards the placeholders are removed from `sys.modules`, so any
    later `import kubernetes` elsewhere in the process runs the real `__init__` and finds these submodules already
    loaded. Submodules that were already imported (the whole package, say) are simply reused.
    """
    names = {
        "configuration": "kubernetes.client.configuration",
        "rest": "kubernetes.client.rest",
        "incluster_config": "kubernetes.config.incluster_config",
    }
    with _without_package_inits(_SKIPPED_INITS):
        return {key: importlib.import_module(name) for key, name in names.items()}


@contextmanager
def _without_package_inits(packages: tuple[str, ...]) -> Iterator[None]:
    placeholders: dict[str, ModuleType] = {}
    try:
        for name in packages:
            if name in sys.modules:
                continue
            spec = importlib.util.find_spec(name)
            if spec is None:
                raise ModuleNotFoundError(f"the kubernetes client is not installed ({name})")
            placeholders[name] = sys.modules[name] = importlib.util.module_from_spec(spec)
        yield
    finally:
        for name, module in placeholders.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


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
    """One bounded line: the exception's type and message (or the REST layer's `reason`, which holds the cause)."""
    reason = getattr(exc, "reason", None)
    text = reason if isinstance(reason, str) and reason else str(exc)
    return f"{type(exc).__name__}: " + " ".join(text.split())[:300]
