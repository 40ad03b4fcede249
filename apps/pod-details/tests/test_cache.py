from __future__ import annotations

import threading
import time

from pod_details.cache import IN_FLIGHT, SourceError, TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Fetcher:
    """A fake source: returns successive values, or raises when told to."""

    def __init__(self) -> None:
        self.calls = 0
        self.error: str | None = None

    def __call__(self) -> dict[str, int]:
        self.calls += 1
        if self.error:
            raise SourceError(self.error)
        return {"n": self.calls}


def test_serves_from_cache_within_ttl_and_refreshes_after() -> None:
    clock, fetch, lookups = Clock(), Fetcher(), []
    cache = TtlCache(fetch, 30, clock=clock, on_lookup=lookups.append)
    first = cache.get()
    assert first.value == {"n": 1} and first.error is None and not first.stale and first.fetched_at is not None
    clock.now += 29.9
    assert cache.get().value == {"n": 1}
    assert fetch.calls == 1
    clock.now += 0.2
    assert cache.get().value == {"n": 2}
    assert lookups == ["miss", "hit", "miss"]


def test_error_keeps_last_good_value_marked_stale_with_reason() -> None:
    clock, fetch = Clock(), Fetcher()
    cache = TtlCache(fetch, 10, clock=clock)
    good = cache.get()
    fetch.error = "GET pod: 403 forbidden"
    clock.now += 11
    stale = cache.get()
    assert stale.value == good.value and stale.fetched_at == good.fetched_at
    assert stale.stale and stale.error == "GET pod: 403 forbidden"
    # The age keeps counting from the last good read while refreshes fail.
    assert cache.age_seconds(stale) == 11
    # The next attempt waits a TTL: a failing apiserver is not hammered by every request.
    clock.now += 5
    assert cache.get().stale and fetch.calls == 2
    fetch.error = None
    clock.now += 6
    fresh = cache.get()
    assert fresh.value == {"n": 3} and not fresh.stale and fresh.error is None
    assert cache.age_seconds(fresh) == 0


def test_never_good_means_no_value_and_the_reason() -> None:
    fetch = Fetcher()
    fetch.error = "connection refused"
    snapshot = TtlCache(fetch, 10, clock=Clock()).get()
    assert snapshot.value is None and not snapshot.stale and snapshot.error == "connection refused"


def test_unexpected_exception_is_a_reason_not_a_crash() -> None:
    def broken() -> dict[str, int]:
        raise KeyError("spec")

    snapshot = TtlCache(broken, 10, clock=Clock()).get()
    assert snapshot.value is None and snapshot.error == "unexpected KeyError: 'spec'"


def test_single_flight_one_call_while_others_are_served_from_cache() -> None:
    release, started = threading.Event(), threading.Event()
    calls = 0

    def slow() -> int:
        nonlocal calls
        calls += 1
        started.set()
        release.wait(5)
        return calls

    clock = Clock()
    cache = TtlCache(slow, 10, clock=clock)
    # Nothing cached yet: while the first call is in flight, others get "no value yet" at once.
    first = threading.Thread(target=cache.get)
    first.start()
    assert started.wait(5)
    begin = time.monotonic()
    waiting = [cache.get() for _ in range(20)]
    assert time.monotonic() - begin < 1
    assert all(s.value is None and s.error == IN_FLIGHT for s in waiting)
    release.set()
    first.join(5)
    assert cache.get().value == 1

    # Expired: many threads at once, exactly one calls the source; the rest get the cached value without waiting.
    release.clear()
    started.clear()
    clock.now += 11
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get().value)) for _ in range(16)]
    for t in threads:
        t.start()
    assert started.wait(5)
    time.sleep(0.1)
    assert sorted(r for r in results if r is not None) == [1] * 15
    release.set()
    for t in threads:
        t.join(5)
    assert calls == 2 and results.count(2) == 1
