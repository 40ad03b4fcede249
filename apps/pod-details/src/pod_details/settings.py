"""Settings from environment variables, validated once at start.

Every knob the service has is here, so a bad value stops the process before it binds a port: a pod with a typo in
its manifest crash-loops with a one-line reason instead of serving with a silently wrong default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# host:port, [v6]:port or unix:/path — the forms gunicorn's --bind accepts that make sense in a container.
_BIND = re.compile(r"^(unix:/\S+|\[[0-9A-Fa-f:.]+\]:\d{1,5}|[A-Za-z0-9.-]*:\d{1,5})$")


class SettingsError(ValueError):
    """A variable has a value the service cannot run with; the message names it and what was expected."""


@dataclass(frozen=True)
class PodIdentity:
    """What the Downward API tells the pod about itself through environment variables.

    Every field is optional: outside Kubernetes none of them are set, and the details endpoint says so.
    """

    name: str | None = None
    namespace: str | None = None
    node: str | None = None
    ip: str | None = None
    service_account: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PodIdentity:
        def get(name: str) -> str | None:
            return environ.get(name) or None

        return cls(
            name=get("POD_NAME"),
            namespace=get("POD_NAMESPACE"),
            node=get("NODE_NAME"),
            ip=get("POD_IP"),
            service_account=get("POD_SERVICE_ACCOUNT"),
        )


# The OTel exporters the service ships: OTLP over HTTP with protobuf bodies, or none.
_OTEL_EXPORTERS = ("otlp", "none")
_OTEL_SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)


@dataclass(frozen=True)
class Tracing:
    """Whether spans are exported, decided from the OpenTelemetry SDK's standard variables without importing it.

    The specification's default exporter is OTLP to localhost; this service instead stays off until a variable says
    where to send spans: OTEL_EXPORTER_OTLP_ENDPOINT (or _TRACES_ENDPOINT), or OTEL_TRACES_EXPORTER=otlp.
    OTEL_TRACES_EXPORTER=none and OTEL_SDK_DISABLED=true turn it off whatever else is set. OTEL_SERVICE_NAME names
    the service (default: the app's name) but switches nothing on. Everything else (OTEL_RESOURCE_ATTRIBUTES,
    OTEL_TRACES_SAMPLER/_ARG, headers, timeouts) is read by the SDK itself once it is on; only values that would make
    it fail later are checked here.
    """

    enabled: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Tracing:
        def get(name: str) -> str:
            return environ.get(name, "").strip()

        exporters = [e.strip().lower() for e in get("OTEL_TRACES_EXPORTER").split(",") if e.strip()]
        unknown = [e for e in exporters if e not in _OTEL_EXPORTERS]
        if unknown:
            raise SettingsError(
                f"OTEL_TRACES_EXPORTER={get('OTEL_TRACES_EXPORTER')!r} is invalid: expected otlp or none"
            )
        for name in ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
            if get(name) and get(name) != "http/protobuf":
                raise SettingsError(f"{name}={get(name)!r} is invalid: expected http/protobuf (OTLP over HTTP)")
        sampler = get("OTEL_TRACES_SAMPLER").lower()
        if sampler and sampler not in _OTEL_SAMPLERS:
            raise SettingsError(
                f"OTEL_TRACES_SAMPLER={sampler!r} is invalid: expected one of {', '.join(_OTEL_SAMPLERS)}"
            )
        if sampler.endswith("traceidratio") and get("OTEL_TRACES_SAMPLER_ARG"):
            _Reader(environ).get("OTEL_TRACES_SAMPLER_ARG", _ratio, 1.0)
        off = get("OTEL_SDK_DISABLED").lower() == "true" or "none" in exporters
        endpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT") or get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        return cls(enabled=not off and bool(exporters or endpoint))


@dataclass(frozen=True)
class Settings:
    """The service's configuration. Build it with `from_env()`; the defaults are the production values."""

    app_name: str = "pod-details"
    bind: str = "0.0.0.0:8080"
    # gunicorn: processes and threads per process. One worker with threads is the memory-lean default; scale pods,
    # not workers, unless a pod has more than one core.
    web_concurrency: int = 1
    threads: int = 8
    # Seconds readiness reports 503 before gunicorn stops accepting, so endpoints and load balancers stop routing to
    # the pod first. Kubernetes needs a few seconds to propagate an endpoint removal; 10 s covers a busy cluster.
    drain_seconds: float = 10.0
    # Seconds gunicorn then gives in-flight requests to finish before it kills a worker.
    # terminationGracePeriodSeconds must exceed drain_seconds + graceful_timeout_seconds.
    graceful_timeout_seconds: int = 15
    cache_ttl_seconds: float = 30.0
    # Total time allowed for one call to the apiserver (connect + read); bounds how long a request can wait on it.
    kube_timeout_seconds: float = 2.0
    # Largest request body accepted: the API takes no bodies, so anything past a small bound is refused with 413.
    max_content_length: int = 64 * 1024
    log_level: str = "INFO"
    git_commit: str = "unknown"
    kubeconfig: str | None = None
    metrics_dir: Path | None = None
    # Where the service account token, CA and namespace are mounted; the kubelet's default unless a pod projects
    # them elsewhere.
    service_account_dir: Path = Path("/var/run/secrets/kubernetes.io/serviceaccount")
    pod: PodIdentity = field(default_factory=PodIdentity)
    tracing: Tracing = field(default_factory=Tracing)
    # Where the environment came from: kept so the kube module sees the same variables (KUBERNETES_SERVICE_HOST…)
    # the settings were read from, which lets tests run it against a fake environment.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every variable; raise SettingsError naming the first bad one."""
        env = dict(os.environ if environ is None else environ)
        reader = _Reader(env)
        defaults = cls()
        port = reader.get("PORT", _integer(1, 65535), None)
        bind = reader.get("BIND", _matching(_BIND, "HOST:PORT, e.g. 0.0.0.0:8080"), None)
        if bind is None:
            bind = f"0.0.0.0:{port}" if port is not None else defaults.bind
        return cls(
            app_name=defaults.app_name,
            bind=bind,
            web_concurrency=reader.get("WEB_CONCURRENCY", _integer(1, 64), defaults.web_concurrency),
            threads=reader.get("GUNICORN_THREADS", _integer(1, 256), defaults.threads),
            drain_seconds=reader.get("DRAIN_SECONDS", _seconds(0, 300), defaults.drain_seconds),
            graceful_timeout_seconds=reader.get(
                "GRACEFUL_TIMEOUT_SECONDS", _integer(1, 300), defaults.graceful_timeout_seconds
            ),
            cache_ttl_seconds=reader.get("CACHE_TTL_SECONDS", _seconds(1, 86400), defaults.cache_ttl_seconds),
            kube_timeout_seconds=reader.get("KUBE_TIMEOUT_SECONDS", _seconds(0.1, 60), defaults.kube_timeout_seconds),
            max_content_length=reader.get("MAX_CONTENT_LENGTH", _integer(0, 1 << 30), defaults.max_content_length),
            log_level=reader.get("LOG_LEVEL", _choice(_LOG_LEVELS), defaults.log_level),
            git_commit=reader.get("GIT_COMMIT", _matching(re.compile(r"^[\w.-]{1,64}$"), "a commit id"), "unknown"),
            kubeconfig=env.get("KUBECONFIG") or None,
            metrics_dir=reader.get("PROMETHEUS_MULTIPROC_DIR", Path, None),
            service_account_dir=reader.get("KUBE_SERVICE_ACCOUNT_DIR", Path, defaults.service_account_dir),
            pod=PodIdentity.from_env(env),
            tracing=Tracing.from_env(env),
            environ=env,
        )


class _Reader:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def get(self, name: str, parse: Callable[[str], T], default: T) -> T:
        raw = self._environ.get(name, "").strip()
        if not raw:
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            raise SettingsError(f"{name}={raw!r} is invalid: expected {exc}") from None


def _number(raw: str, kind: type[int] | type[float], lo: float, hi: float, what: str) -> int | float:
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{what} between {lo:g} and {hi:g}") from None
    if value != value or not lo <= value <= hi:  # value != value catches NaN
        raise ValueError(f"{what} between {lo:g} and {hi:g}")
    return value


def _integer(lo: int, hi: int) -> Callable[[str], int]:
    return lambda raw: int(_number(raw, int, lo, hi, "a whole number"))


def _seconds(lo: float, hi: float) -> Callable[[str], float]:
    return lambda raw: float(_number(raw, float, lo, hi, "a number of seconds"))


def _ratio(raw: str) -> float:
    return float(_number(raw, float, 0, 1, "a ratio"))


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.upper() not in options:
            raise ValueError("one of " + ", ".join(options))
        return raw.upper()

    return parse


def _matching(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not pattern.match(raw):
            raise ValueError(what)
        return raw

    return parse
