"""GET /api/v1/openapi.json: an OpenAPI 3.1 document that describes every endpoint and every response exactly.

It is written by hand, next to the code it describes, and checked both ways: openapi-spec-validator proves it is
valid OpenAPI, and schemathesis fuzzes the running service against it, so a response that drifts from it fails a test.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, jsonify
from flask.typing import ResponseReturnValue

from pod_details.version import AppInfo

bp = Blueprint("openapi", __name__)

_JSON = "application/json"
_PROBLEM = "application/problem+json"


def _nullable(schema_type: str, **extra: Any) -> dict[str, Any]:
    return {"type": [schema_type, "null"], **extra}


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _ok(description: str, schema: dict[str, Any], media_type: str = _JSON) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"X-Request-ID": _ref("headers", "RequestId")},
        "content": {media_type: {"schema": schema}},
    }


# What any GET can be answered besides its own responses: gunicorn refuses a malformed or oversized request before
# the app sees it (400, 414, 431), the app refuses a body over MAX_CONTENT_LENGTH (413), and an unexpected failure
# is a 500. All of them are problem details.
_EVERY_OPERATION = (
    ("400", "BadRequest"),
    ("413", "ContentTooLarge"),
    ("414", "UriTooLong"),
    ("431", "HeaderFieldsTooLarge"),
    ("500", "InternalServerError"),
)


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"X-Request-ID": _ref("headers", "RequestId")},
        "content": {_PROBLEM: {"schema": _ref("schemas", "Problem")}},
    }


def _operation(operation_id: str, summary: str, responses: dict[str, Any], tag: str) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "tags": [tag],
            "parameters": [_ref("parameters", "RequestId"), _ref("parameters", "Traceparent")],
            "responses": {**responses, **{status: _ref("responses", name) for status, name in _EVERY_OPERATION}},
        }
    }


_POD = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "name",
        "namespace",
        "uid",
        "node",
        "ip",
        "labels",
        "owner",
        "service_account",
        "phase",
        "start_time",
        "containers",
    ],
    "properties": {
        "name": _nullable("string"),
        "namespace": _nullable("string"),
        "uid": _nullable("string"),
        "node": _nullable("string"),
        "ip": _nullable("string"),
        "labels": _nullable("object", additionalProperties={"type": "string"}),
        "owner": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["kind", "name"],
                    "properties": {"kind": {"type": "string"}, "name": {"type": "string"}},
                },
            ]
        },
        "service_account": _nullable("string"),
        "phase": _nullable("string", examples=["Running"]),
        "start_time": _nullable("string", format="date-time"),
        "containers": _nullable("array", items=_ref("schemas", "Container")),
    },
}

_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "description": "RFC 9457 problem details.",
        "type": "object",
        "additionalProperties": False,
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "const": "about:blank"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "instance": {
                "type": "string",
                "description": "The request's path; absent when the server could not read it (400, 414, 431).",
            },
            "request_id": {"type": "string"},
        },
    },
    "Version": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "version", "commit", "python"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "commit": {"type": "string", "description": "Git commit the image was built from, or 'unknown'."},
            "python": {"type": "string"},
        },
    },
    "Container": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "image", "ready", "restart_count"],
        "properties": {
            "name": {"type": "string"},
            "image": {"type": "string"},
            "ready": {"type": "boolean"},
            "restart_count": {"type": "integer", "minimum": 0},
        },
    },
    "Pod": _POD,
    "Details": {
        "type": "object",
        "additionalProperties": False,
        "required": ["pod", "app", "source", "stale", "fetched_at", "age_seconds", "kubernetes"],
        "properties": {
            "pod": _ref("schemas", "Pod"),
            "app": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "version", "commit", "python", "uptime_seconds"],
                "properties": {
                    "name": {"type": "string"},
                    "version": {"type": "string"},
                    "commit": {"type": "string"},
                    "python": {"type": "string"},
                    "uptime_seconds": {"type": "number", "minimum": 0},
                },
            },
            "source": {"enum": ["kubernetes-api", "downward-api", "local"]},
            "stale": {"type": "boolean", "description": "True when the latest refresh from the API failed."},
            "fetched_at": _nullable("string", format="date-time"),
            "age_seconds": _nullable(
                "number",
                minimum=0,
                description="Seconds since the data was read: from the API, since its last good read (it keeps "
                "growing while refreshes fail); otherwise since the process started. `stale` turns true only once a "
                "refresh has failed, up to one cache TTL after the API became unreachable; a client that needs "
                "fresher data compares this age with its own bound.",
            ),
            "kubernetes": {
                "type": "object",
                "additionalProperties": False,
                "required": ["mode", "reason"],
                "properties": {
                    "mode": {"enum": ["in-cluster", "kubeconfig", "none"]},
                    "reason": _nullable("string", description="Why the data is not fresh from the API; else null."),
                },
            },
        },
    },
}


def document(info: AppInfo) -> dict[str, Any]:
    """The OpenAPI document for this build of the service."""
    status = {
        "type": "object",
        "additionalProperties": False,
        "required": ["status"],
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pod-details",
            "version": info.version,
            "description": "Reports its own health and the details of the Kubernetes pod it runs in.\n\n"
            "Every error is an RFC 9457 problem (application/problem+json). Besides the responses of each "
            "operation, a path not listed here is answered 404 (components.responses.NotFound) and a method other "
            "than GET or HEAD on a listed path 405 (components.responses.MethodNotAllowed).",
        },
        "paths": {
            "/api/v1/healthz": _operation(
                "healthz",
                "Liveness: 200 while the process can serve.",
                {"200": _ok("Alive.", {**status, "properties": {"status": {"const": "ok"}}})},
                "health",
            ),
            "/api/v1/readyz": _operation(
                "readyz",
                "Readiness: 200 normally, 503 from SIGTERM on while the pod drains.",
                {
                    "200": _ok("Ready for traffic.", {**status, "properties": {"status": {"const": "ready"}}}),
                    "503": _ok(
                        "Draining before shutdown.", {**status, "properties": {"status": {"const": "draining"}}}
                    ),
                },
                "health",
            ),
            "/api/v1/details": _operation(
                "details",
                "The pod this process runs in, its source and freshness.",
                {"200": _ok("The pod's details.", _ref("schemas", "Details"))},
                "details",
            ),
            "/api/v1/version": _operation(
                "version",
                "Name, version and build of the service.",
                {"200": _ok("The running build.", _ref("schemas", "Version"))},
                "meta",
            ),
            "/api/v1/openapi.json": _operation(
                "openapi",
                "This document.",
                {"200": _ok("The OpenAPI document.", {"type": "object", "required": ["openapi", "paths"]})},
                "meta",
            ),
            "/metrics": _operation(
                "metrics",
                "Prometheus metrics of all worker processes, in the text exposition format.",
                {"200": _ok("Metrics.", {"type": "string"}, media_type="text/plain")},
                "meta",
            ),
        },
        "components": {
            "schemas": _SCHEMAS,
            "parameters": {
                "RequestId": {
                    "name": "X-Request-ID",
                    "in": "header",
                    "required": False,
                    "description": "Echoed on the response when it is 1-128 characters of [A-Za-z0-9._:+=/-] "
                    "starting with a letter or digit; otherwise a new id is generated.",
                    "schema": {"type": "string"},
                },
                "Traceparent": {
                    "name": "traceparent",
                    "in": "header",
                    "required": False,
                    "description": "W3C Trace Context; a valid one is logged with the request.",
                    "schema": {"type": "string"},
                },
            },
            "headers": {
                "RequestId": {
                    "description": "The request's id, as given by the client or generated.",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
                }
            },
            "responses": {
                "BadRequest": _problem("gunicorn could not parse the request line or a header."),
                "NotFound": _problem("Any path this document does not list."),
                "MethodNotAllowed": _problem(
                    "Any method but GET and HEAD on a listed path; the Allow header lists those two."
                ),
                "ContentTooLarge": _problem("The request body is larger than MAX_CONTENT_LENGTH."),
                "UriTooLong": _problem("The request line is longer than gunicorn's limit (4094 bytes)."),
                "HeaderFieldsTooLarge": _problem(
                    "More header fields (100), or a longer one (8190 bytes), than gunicorn accepts."
                ),
                "InternalServerError": _problem(
                    "An unexpected failure; the logs hold the details under the request id."
                ),
            },
        },
    }


@bp.get("/api/v1/openapi.json")
def openapi() -> ResponseReturnValue:
    return jsonify(current_app.extensions["pod_details.openapi"])


def init_app(app: Flask, info: AppInfo) -> None:
    app.extensions["pod_details.openapi"] = document(info)
