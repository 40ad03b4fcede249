"""Liveness and readiness.

Liveness answers 200 whenever a worker can run a request: restarting the container would not fix anything else.
Readiness answers 503 only while draining; it deliberately ignores the apiserver, because an apiserver outage must
not take every replica out of its Service at once — details are served from cache or the Downward API meanwhile.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from pod_details.shutdown import DrainFlag

bp = Blueprint("health", __name__)


def drain_flag() -> DrainFlag:
    return current_app.extensions["pod_details.drain"]


@bp.get("/api/v1/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok")


@bp.get("/api/v1/readyz")
def readyz() -> ResponseReturnValue:
    if drain_flag().draining:
        return jsonify(status="draining"), 503
    return jsonify(status="ready")
