"""The service's WSGI app with one more route, which always fails: 5xx traffic on demand, for the tests that prove the
error-rate rules and alerts against a real Prometheus. Everything else is the service as deployed (`pod_details.wsgi`):
the error goes through the app's own error handler, instrumentation and metrics, like an unexpected failure would.
"""

from __future__ import annotations

from pod_details.wsgi import app

FAULT = "/api/v1/fault"


@app.get(FAULT)
def fault() -> None:
    raise RuntimeError("a failure injected by the tests")
