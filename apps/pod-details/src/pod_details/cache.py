"""A TTL cache with single-flight refresh and stale-on-error, for one value fetched from a slow, fallible source.

The apiserver is never called per request: at most one call per TTL per process, made by the one request that
finds the value expired. Requests arriving while that call is in flight are served what the cache holds at once —
they never queue behind it, so a slow apiserver cannot pile up worker threads. A failed call keeps the last good
value, marked stale, and remembers the reason; the next attempt comes a TTL later, not on the next request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

T = TypeVar("T")

IN_FLIGHT = "the first request to the Kubernetes API is still in flight"


class SourceError(Exception):
    """What a fetcher raises to report a failure: `reason` is shown to people as is."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Snapshot(Generic[T]):
    """What the cache holds: the last good value (or None), when it was fetched, and why the latest attempt failed.

    `fetched_at` is wall-clock time for people; `fetched_clock` is the cache's own clock at that moment, for ages
    that a wall-clock step cannot make negative.
    """

    value: T | None
    fetched_at: datetime | None
    error: str | None
    fetched_clock: float | None = None

    @property
    def stale(self) -> bool:
        """A value is stale when it is the last good one and a later attempt to refresh it failed."""
        return self.value is not None and self.error is not None


class TtlCache(Generic[T]):
    def __init__(
        self,
        fetch: Callable[[], T],
        ttl_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_lookup: Callable[[str], None] | None = None,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl_seconds
        self._clock = clock
        self._on_lookup = on_lookup or (lambda _result: None)
        self._lock = threading.Lock()
        self._refreshing = False
        self._next_refresh = float("-inf")
        self._snapshot: Snapshot[T] = Snapshot(None, None, IN_FLIGHT)

    def get(self) -> Snapshot[T]:
        """Return the current snapshot, refreshing it first if it expired and no other thread is doing so."""
        with self._lock:
            if self._refreshing or self._clock() < self._next_refresh:
                self._on_lookup("hit")
                return self._snapshot
            self._refreshing = True
        self._on_lookup("miss")
        return self._refresh()

    def age_seconds(self, snapshot: Snapshot[T]) -> float | None:
        """Seconds since the snapshot's value was fetched, or None when it holds none."""
        if snapshot.fetched_clock is None:
            return None
        return max(0.0, self._clock() - snapshot.fetched_clock)

    def _refresh(self) -> Snapshot[T]:
        value: T | None = None
        error: str | None = None
        try:
            value = self._fetch()
        except SourceError as exc:
            error = exc.reason
        except Exception as exc:  # a bug in the fetcher must not become a 500 on every request
            error = f"unexpected {type(exc).__name__}: {exc}"
        with self._lock:
            previous = self._snapshot
            if error is None:
                self._snapshot = Snapshot(value, datetime.now(UTC), None, self._clock())
            else:
                self._snapshot = Snapshot(previous.value, previous.fetched_at, error, previous.fetched_clock)
            self._next_refresh = self._clock() + self._ttl
            self._refreshing = False
            return self._snapshot
