"""Graceful shutdown: readiness goes off first, traffic drains, then gunicorn stops.

Kubernetes sends SIGTERM to the container's PID 1 — the gunicorn master — at the same time as it starts removing the
pod from Service endpoints. Endpoint removal takes seconds to reach every kube-proxy, gateway and load balancer, so a
server that stops listening at once refuses requests that are still being routed to it. The sequence here:

1. The master's SIGTERM handler (installed by `install_drain` from the gunicorn config) does not stop anything; it
   sets the shared drain flag and arms a timer for `DRAIN_SECONDS`.
2. Every worker keeps serving normally, but `/api/v1/readyz` reads the flag and answers 503, so the pod also leaves
   the endpoints of anything that watches readiness.
3. When the timer fires, the master runs gunicorn's own graceful stop: close the listeners, SIGTERM the workers, let
   in-flight requests finish within the graceful timeout, exit 0.

The flag lives in an anonymous shared memory page created by the app factory. With `preload_app` the factory runs
in the master before any worker is forked, so the master and all workers (including ones respawned during the
drain) map the same page: a write in the master is seen by every worker without signals, files or locks. A single
byte written by one process and read by others needs no lock.

The timer is a SIGALRM (setitimer) whose handler only queues a SIGTERM on the arbiter's signal queue; the arbiter's
main loop then calls the wrapped handler again, which now hands over to gunicorn's. No thread is started in the
master, and interval timers are not inherited across fork, so workers never see the alarm.
"""

from __future__ import annotations

import logging
import mmap
import signal
import time
from typing import Any

log = logging.getLogger(__name__)


class DrainFlag:
    """A process-shared boolean: set once in the master, read by every forked worker."""

    def __init__(self) -> None:
        # MAP_SHARED|MAP_ANONYMOUS: survives fork as the same physical page.
        self._page = mmap.mmap(-1, 1, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)

    @property
    def draining(self) -> bool:
        return self._page[0] == 1

    def set(self) -> None:
        self._page[0] = 1


def install_drain(arbiter: Any, flag: DrainFlag, drain_seconds: float) -> None:
    """Make the gunicorn arbiter drain for `drain_seconds` on SIGTERM before its normal graceful stop.

    Called from the `when_ready` hook, i.e. in the master, after the app was preloaded and before workers start.
    """
    graceful_stop = arbiter.handle_term
    deadline: list[float] = []

    def handle_term() -> None:
        if not deadline:
            flag.set()
            deadline.append(time.monotonic() + drain_seconds)
            arbiter.log.info("SIGTERM: readiness off, draining for %ss before stopping", drain_seconds)
            if drain_seconds > 0:
                signal.setitimer(signal.ITIMER_REAL, drain_seconds)
                return
        if time.monotonic() < deadline[0]:
            # A repeated SIGTERM during the drain changes nothing: the schedule already promised to the
            # termination grace period stands. SIGINT/SIGQUIT still stop at once.
            arbiter.log.info("SIGTERM: already draining")
            return
        graceful_stop()

    def on_alarm(signum: int, frame: object) -> None:
        # Signal-handler context: only queue, like gunicorn's own handlers; the arbiter loop does the work.
        arbiter.SIG_QUEUE.put_nowait(signal.SIGTERM)

    signal.signal(signal.SIGALRM, on_alarm)
    arbiter.handle_term = handle_term


def reset_in_worker() -> None:
    """Workers must not inherit the master's SIGALRM handler (it refers to the arbiter)."""
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
