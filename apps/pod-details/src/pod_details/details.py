"""GET /api/v1/details: the pod this process runs in, where that information came from, and how fresh it is.

Three sources, best first:
- kubernetes-api: the pod read from the apiserver through the cache; `stale` when the latest refresh failed.
- downward-api: identity from the Downward API variables, when the API was never reached (or cannot be).
- local: outside Kubernetes, the host's name and address.
`kubernetes.reason` says why the answer is not fresh API data, and is null when it is. `age_seconds` says how old the
data is: `stale` turns true only once a refresh has failed, up to one TTL after the apiserver went away, while the
age keeps growing from the last good read (for the Downward API and local sources, from the process's start).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify
from flask.typing import ResponseReturnValue

from pod_details import kube
from pod_details.cache import TtlCache
from pod_details.metrics import Metrics
from pod_details.settings import Settings
from pod_details.version import AppInfo

log = logging.getLogger(__name__)

bp = Blueprint("details", __name__)


class PodDetails:
    def __init__(self, settings: Settings, access: kube.Access, info: AppInfo, metrics: Metrics) -> None:
        self._info = info
        self._metrics = metrics
        self._access = access
        self._fallback_source = "downward-api" if settings.pod.name else "local"
        self._fallback = kube.fallback_pod(settings.pod, use_host=settings.pod.name is None)
        self._fallback_at = _iso(datetime.now(UTC))
        self.cache: TtlCache[kube.Pod] | None = None
        if access.client is not None:
            self.cache = TtlCache(self._read, settings.cache_ttl_seconds, on_lookup=metrics.record_cache_lookup)

    def _read(self) -> kube.Pod:
        assert self._access.client is not None
        try:
            pod = self._access.client.read_pod()
        except kube.FetchError as exc:
            self._metrics.record_kube_call(exc.outcome)
            log.warning("reading the pod failed", extra={"fields": {"outcome": exc.outcome, "reason": exc.reason}})
            raise
        self._metrics.record_kube_call("ok")
        return pod

    def close_connections(self) -> None:
        if self._access.client is not None:
            self._access.client.close_connections()

    def view(self) -> dict[str, Any]:
        kubernetes: dict[str, Any] = {"mode": self._access.mode, "reason": self._access.reason}
        pod, source, stale, fetched_at = self._fallback, self._fallback_source, False, self._fallback_at
        age: float | None = self._info.uptime_seconds()
        if self.cache is not None:
            snapshot = self.cache.get()
            kubernetes["reason"] = snapshot.error
            if snapshot.value is not None:
                pod, source, stale = snapshot.value, "kubernetes-api", snapshot.stale
                fetched_at = _iso(snapshot.fetched_at) if snapshot.fetched_at else None
                age = self.cache.age_seconds(snapshot)
        return {
            "pod": pod,
            "app": {**self._info.as_dict(), "uptime_seconds": self._info.uptime_seconds()},
            "source": source,
            "stale": stale,
            "fetched_at": fetched_at,
            "age_seconds": round(age, 3) if age is not None else None,
            "kubernetes": kubernetes,
        }


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def init_app(app: Flask, details: PodDetails) -> None:
    app.extensions["pod_details.details"] = details


def details_of(app: Flask) -> PodDetails:
    return app.extensions["pod_details.details"]


@bp.get("/api/v1/details")
def details() -> ResponseReturnValue:
    return jsonify(details_of(current_app).view())
