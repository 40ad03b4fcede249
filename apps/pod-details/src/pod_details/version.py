"""What is running: name, version from the package metadata, the commit it was built from, and the interpreter."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

DISTRIBUTION = "pod-details"

bp = Blueprint("version", __name__)


@dataclass(frozen=True)
class AppInfo:
    name: str
    version: str
    commit: str
    python: str
    started_at: datetime
    started_monotonic: float

    @classmethod
    def current(cls, name: str, commit: str) -> AppInfo:
        try:
            version = metadata.version(DISTRIBUTION)
        except metadata.PackageNotFoundError:
            # Running from a source tree that was never installed: say so rather than invent a number.
            version = "0+unknown"
        return cls(
            name=name,
            version=version,
            commit=commit,
            python=platform.python_version(),
            started_at=datetime.now(UTC),
            started_monotonic=time.monotonic(),
        )

    def uptime_seconds(self) -> float:
        return round(time.monotonic() - self.started_monotonic, 3)

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version, "commit": self.commit, "python": self.python}


def app_info() -> AppInfo:
    return current_app.extensions["pod_details.app_info"]


@bp.get("/api/v1/version")
def version() -> ResponseReturnValue:
    return jsonify(app_info().as_dict())
