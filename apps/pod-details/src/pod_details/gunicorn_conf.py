"""gunicorn configuration: `gunicorn --config python:pod_details.gunicorn_conf pod_details.wsgi:app`.

A gunicorn config module is configuration by module-level assignment, so unlike the rest of the package it does its
work at import — in the master, before the app is loaded:

- Validates the settings and exits 2 with a one-line message naming the bad variable (no traceback, no bind).
- Points prometheus_client at a fresh multiprocess directory under /tmp before anything imports it.
- Preloads the app in the master (`preload_app`): the app factory, the Kubernetes client (urllib3 and the TLS
  context holding the cluster CA) and the drain flag are created once and shared with workers copy-on-write, and
  `app.warm_up()` serves one request of each kind there, so workers start with the pod already read (that first API
  call delays start by at most KUBE_TIMEOUT_SECONDS). `gc.freeze()` before fork keeps the collector from writing to
  (and so copying) those shared pages in every worker.
- With tracing switched on by OTEL_* variables, starts each worker's span exporter after fork (its thread would not
  survive the fork) and flushes it when the worker exits; see tracing.py.
- Hooks the master's SIGTERM so readiness goes off and traffic drains before gunicorn's graceful stop; see
  shutdown.py for the sequence. The termination grace period must exceed DRAIN_SECONDS + GRACEFUL_TIMEOUT_SECONDS.
"""

from __future__ import annotations

import gc
import logging
import logging.config
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from gunicorn import glogging

from pod_details import logs, shutdown, tracing
from pod_details.settings import Settings, SettingsError

try:
    _settings = Settings.from_env()
except SettingsError as exc:
    print(f"pod-details: {exc}", file=sys.stderr)
    sys.exit(2)

# No collections while the app loads: they would free objects between long-lived ones, and the holes would later be
# filled by allocations in workers, copying the shared pages they sit in. when_ready() freezes what was loaded
# (collections skip frozen objects) and turns collection back on — the sequence Python's gc.freeze() docs describe
# for servers that fork.
gc.disable()


def _metrics_dir(configured: Path | None) -> tuple[Path, bool]:
    """The directory for multiprocess metrics, emptied: files left by a previous run would add to this run's counts."""
    if configured is None:
        return Path(tempfile.mkdtemp(prefix="pod-details-metrics-")), True
    configured.mkdir(parents=True, exist_ok=True)
    for stale in configured.glob("*.db"):
        stale.unlink()
    return configured, False


_metrics_path, _metrics_path_owned = _metrics_dir(_settings.metrics_dir)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_path)

bind = [_settings.bind]
# gunicorn's gthread worker, answering its own errors (400, 414, 431) as problem details: see worker.py.
worker_class = "pod_details.worker.ThreadWorker"
workers = _settings.web_concurrency
threads = _settings.threads
preload_app = True  # required: the drain flag must be created before workers fork (shutdown.py)
graceful_timeout = _settings.graceful_timeout_seconds
timeout = 30
# Longer than gunicorn's 2 s so a proxy reusing connections rarely races a server-side close.
keepalive = 15
proc_name = _settings.app_name


class JsonLogger(glogging.Logger):
    """gunicorn's logger, with its messages as JSON lines on stdout.

    The app writes its own line per request, so gunicorn's access log stays off. The JSON configuration is applied
    here rather than through `logconfig_dict`, whose mere presence makes gunicorn format an access line for every
    request only for the logging filter to drop it.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        logging.config.dictConfig(logs.config_dict(_settings.log_level))
        logging.captureWarnings(True)  # library warnings become JSON lines too, not bare text on stderr


logger_class = JsonLogger
accesslog = None
loglevel = _settings.log_level.lower()
# Every record would otherwise look up the thread and multiprocessing process names, which no line uses (the
# formatter writes the pid); the logging HOWTO's "Optimization" section suggests exactly this.
logging.logThreads = False
logging.logMultiprocessing = False
# The control socket would write under $HOME (read-only in the container) and start a thread in the master.
control_socket_disable = True


def when_ready(server: Any) -> None:
    from pod_details.app import warm_up  # imported here: prometheus_client must not load before the env is set

    app = server.app.wsgi()  # the preloaded Flask app
    shutdown.install_drain(server, app.extensions["pod_details.drain"], _settings.drain_seconds)
    warm_up(app)
    gc.freeze()
    gc.enable()


def pre_fork(server: Any, worker: Any) -> None:
    gc.freeze()


def post_fork(server: Any, worker: Any) -> None:
    shutdown.reset_in_worker()
    tracing.start(_settings)  # the exporter's thread belongs to the worker; nothing happens when tracing is off


def worker_exit(server: Any, worker: Any) -> None:
    app = getattr(worker, "wsgi", None)  # None when the worker failed before loading the app
    if app is not None:
        app.extensions["pod_details.access_log"].flush()
    tracing.shutdown()


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(_metrics_path))


def on_exit(server: Any) -> None:
    if _metrics_path_owned:
        shutil.rmtree(_metrics_path, ignore_errors=True)
