"""The app factory: builds a Flask app from Settings and wires each concern's module to it. Nothing else runs here."""

from __future__ import annotations

from flask import Flask

from pod_details import (
    details,
    health,
    instrumentation,
    kube,
    metrics,
    openapi,
    problems,
    security,
    tracing,
    version,
)
from pod_details.settings import Settings
from pod_details.shutdown import DrainFlag


def create_app(settings: Settings, *, access: kube.Access | None = None) -> Flask:
    """Build the app. `access` replaces the Kubernetes client found from the settings (tests inject one)."""
    app = Flask("pod_details")
    # The API is for programs: no automatic OPTIONS answers, compact JSON in the order the code builds it.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.compact = True  # type: ignore[attr-defined]

    info = version.AppInfo.current(settings.app_name, settings.git_commit)
    app_metrics = metrics.Metrics(info)
    if access is None:
        access = kube.connect(settings)

    app.extensions["pod_details.settings"] = settings
    app.extensions["pod_details.app_info"] = info
    app.extensions["pod_details.drain"] = DrainFlag()
    metrics.init_app(app, app_metrics)
    details.init_app(app, details.PodDetails(settings, access, info, app_metrics))
    openapi.init_app(app, info)

    # Order matters: instrumentation's hook records the route before the body limit may refuse the request.
    instrumentation.init_app(app, app_metrics)
    security.init_app(app, settings.max_content_length)
    problems.init_app(app)
    tracing.init_app(app, settings)  # does nothing, and imports nothing, unless OTEL_* variables switch it on

    for blueprint in (health.bp, details.bp, version.bp, metrics.bp, openapi.bp):
        app.register_blueprint(blueprint)
    return app


WARM_UP_PATHS = (
    "/api/v1/healthz",
    "/api/v1/readyz",
    "/api/v1/details",
    "/api/v1/version",
    "/api/v1/openapi.json",
    "/metrics",
    "/api/v1/not-found",
)


def warm_up(app: Flask) -> None:
    """Serve one request of each kind inside this process, then drop any connection the Kubernetes client opened.

    Run in the gunicorn master before it forks: everything a first request initialises lazily — modules imported on
    first use, routing and JSON caches, OpenSSL's state for a first handshake and the first read of the pod — then
    lives in memory that workers share instead of each building a private copy. Workers also start with the pod
    already cached. These requests are not client traffic: they are neither logged nor counted (the one Kubernetes
    API call is).
    """
    client = app.test_client()
    for path in WARM_UP_PATHS:
        client.get(path, environ_overrides={instrumentation.WARM_UP: True})
    details.details_of(app).close_connections()
