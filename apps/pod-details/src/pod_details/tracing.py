"""Distributed tracing with OpenTelemetry, on only when the standard OTEL_* variables ask for it (settings.Tracing).

Off, nothing here imports OpenTelemetry: every import is inside a function that runs only when tracing is on, so the
default service carries none of its memory or per-request cost (benchmarks/service_bench.py measures both).

On, the pieces are the maintained instrumentations, not hand-made spans:
- Flask's instrumentation makes a SERVER span per request, named after the route template, and continues the
  caller's trace from a W3C `traceparent` header;
- urllib3's makes a CLIENT span for the call to the Kubernetes API (kube.py reads the pod over urllib3, in a pod and
  with a kubeconfig alike), a child of the request that found the cache expired, and sends `traceparent` on to the
  apiserver;
- spans leave in batches over OTLP/HTTP (protobuf) to OTEL_EXPORTER_OTLP_ENDPOINT, from a background thread.

Under gunicorn the app is built in the master and instrumented there, so the instrumentation's code is shared with
the workers; the exporter and its thread are started in each worker after fork (`start`), because threads do not
survive fork. Until then the instrumentations hold a proxy tracer that records nothing, so the master's warm-up
requests (app.warm_up) make no spans. Each request's trace and span ids go into its access log line, and other log
lines written while a span is current carry them too.
"""

from __future__ import annotations

from typing import Any

# Imported by the gunicorn config before it points prometheus_client at its multiprocess directory: nothing here may
# import the metrics module (or anything that does) at import time.
from flask import Flask, request

from pod_details import logs
from pod_details.settings import Settings

# WSGI environ key: (trace_id, span_id) of the request's span, for its access log line (instrumentation.py).
TRACE = "pod_details.trace"
# Probes and scrapes are not worth a span each; OTEL_PYTHON_FLASK_EXCLUDED_URLS replaces this list.
EXCLUDED_URLS = "/metrics,/api/v1/healthz,/api/v1/readyz"

_provider: Any = None


def init_app(app: Flask, settings: Settings) -> None:
    """Instrument the app and the Kubernetes client's HTTP layer, when tracing is on. Spans flow once `start` ran."""
    if not settings.tracing.enabled:
        return
    import os

    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor

    excluded = None if os.environ.get("OTEL_PYTHON_FLASK_EXCLUDED_URLS") else EXCLUDED_URLS
    FlaskInstrumentor.instrument_app(app, excluded_urls=excluded)
    URLLib3Instrumentor().instrument()

    @app.before_request
    def _remember_ids() -> None:  # registered after the instrumentation's own hook, so its span is current
        ids = current_ids()
        if ids:
            request.environ[TRACE] = ids

    logs.set_context_fields(_log_fields)


def start(settings: Settings) -> None:
    """Install the SDK's tracer provider with a batching OTLP/HTTP exporter, in the process that will serve.

    The SDK reads the rest of its configuration itself: the endpoint, headers, timeout and compression
    (OTEL_EXPORTER_OTLP_*), the sampler (OTEL_TRACES_SAMPLER, _ARG) and the resource (OTEL_SERVICE_NAME,
    OTEL_RESOURCE_ATTRIBUTES); the service name defaults to the app's.
    """
    global _provider
    if not settings.tracing.enabled or _provider is not None:
        return
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()  # OTEL_RESOURCE_ATTRIBUTES, then OTEL_SERVICE_NAME over it
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: settings.app_name}))
    _provider = TracerProvider(resource=resource)
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(_provider)


def shutdown() -> None:
    """Export what is still queued, then stop the exporter's thread (a worker about to exit)."""
    if _provider is not None:
        _provider.shutdown()


def current_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) in hex of the current span, or None when there is none."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)


def _log_fields() -> dict[str, str]:
    ids = current_ids()
    return {"trace_id": ids[0], "span_id": ids[1]} if ids else {}
