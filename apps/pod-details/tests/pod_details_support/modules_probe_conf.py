"""gunicorn configuration for tests: the service's own, plus a hook that reports which modules a worker imported.

After each request, the worker writes the names in its `sys.modules` to $MODULES_PROBE_FILE (JSON), so a test can
prove what a worker serving real requests has, and has not, loaded.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from pod_details.gunicorn_conf import *  # noqa: F403 - every setting and hook of the service, unchanged


def post_request(worker: Any, req: Any, environ: dict[str, Any], resp: Any) -> None:
    path = os.environ["MODULES_PROBE_FILE"]
    with open(f"{path}.tmp", "w") as out:
        json.dump({"pid": os.getpid(), "modules": sorted(sys.modules)}, out)
    os.replace(f"{path}.tmp", path)
