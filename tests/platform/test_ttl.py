"""ExpiringCache: entries expire ttl_s after they were put; a full cache drops expired entries
first, then the oldest."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billfold.platform import ttl
from billfold.platform.ttl import ExpiringCache


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(ttl.time, "monotonic", lambda: now[0])
    return now


def test_an_entry_lives_for_its_ttl(clock: list[float]) -> None:
    cache: ExpiringCache[str, int] = ExpiringCache(10, ttl_s=5.0)
    cache.put("a", 1)
    clock[0] += 4.9
    assert cache.get("a") == 1
    clock[0] += 0.1
    assert cache.get("a") is None
    assert cache.get("never put") is None


def test_putting_again_restarts_the_ttl(clock: list[float]) -> None:
    cache: ExpiringCache[str, int] = ExpiringCache(10, ttl_s=5.0)
    cache.put("a", 1)
    clock[0] += 4
    cache.put("a", 2)
    clock[0] += 4
    assert cache.get("a") == 2


def test_a_full_cache_drops_the_oldest(clock: list[float]) -> None:
    cache: ExpiringCache[str, int] = ExpiringCache(3, ttl_s=60.0)
    for n, key in enumerate("abc"):
        cache.put(key, n)
        clock[0] += 1
    cache.put("a", 10)  # put again: "a" is now the newest
    cache.put("d", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c"), cache.get("d")) == (10, None, 2, 3)
    assert len(cache) == 3


def test_a_full_cache_drops_every_expired_entry_first(clock: list[float]) -> None:
    cache: ExpiringCache[int, int] = ExpiringCache(4, ttl_s=10.0)
    for key in range(3):
        cache.put(key, key)
    clock[0] += 5
    cache.put(3, 3)
    clock[0] += 6  # 0, 1 and 2 have expired, 3 has not
    cache.put(4, 4)
    assert len(cache) == 2
    assert (cache.get(3), cache.get(4)) == (3, 4)


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        ExpiringCache(0, ttl_s=1.0)


@given(
    st.lists(
        st.tuples(st.integers(0, 20), st.floats(0, 3, allow_nan=False)), min_size=1, max_size=200
    ),
    st.integers(1, 8),
)
def test_against_a_model(steps: list[tuple[int, float]], maxsize: int) -> None:
    """Each step puts a key after some time passed; every key put within the ttl is found
    unless the size bound pushed it out, and the cache never holds more than maxsize."""
    now = [0.0]
    original = ttl.time.monotonic
    ttl.time.monotonic = lambda: now[0]  # type: ignore[assignment]
    try:
        cache: ExpiringCache[int, float] = ExpiringCache(maxsize, ttl_s=5.0)
        model: dict[int, tuple[float, float]] = {}  # key -> (value, put at), newest last
        for key, elapsed in steps:
            now[0] += elapsed
            cache.put(key, now[0])
            model.pop(key, None)
            model[key] = (now[0], now[0])
            live = [k for k, (_, at) in model.items() if at + 5.0 > now[0]]
            kept = set(live[-maxsize:])
            assert len(cache) <= maxsize
            for k in model:
                assert cache.get(k) == (model[k][0] if k in kept else None)
    finally:
        ttl.time.monotonic = original  # type: ignore[assignment]
