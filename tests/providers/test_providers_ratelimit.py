"""The request gate's pacer: it fills the configured rate, slows down when the provider says
so and recovers afterwards (no timing assertions: the schedule is read, not measured)."""

from __future__ import annotations

import time

import pytest
from providers_fakes import FakeESIMTrade, esimtrade_esim, esimtrade_order, json_response

from pipelines.providers._ratelimit import (
    FIRST_SLOWDOWN,
    MIN_RATE_SHARE,
    PROBE,
    SLOWDOWN,
    UNPACED_SLOWEST,
    RequestGate,
)


def test_pacer_interval_follows_the_configured_rate() -> None:
    assert RequestGate(requests_per_minute=600).interval == pytest.approx(0.1)
    assert RequestGate(requests_per_minute=None).interval == 0.0


def test_429s_stretch_the_interval_and_successes_probe_back_slowly() -> None:
    gate = RequestGate(requests_per_minute=600)
    gate.rate_limited()
    slowed = gate.interval
    assert slowed == pytest.approx(0.1 * SLOWDOWN)
    for _ in range(100):
        gate.rate_limited()
    assert gate.interval == pytest.approx(0.1 / MIN_RATE_SHARE)  # never slower than this
    gate = RequestGate(requests_per_minute=600)
    gate.rate_limited()
    for _ in range(20):
        gate.succeeded()
    # The learned pace is kept: a few successes barely move it...
    assert gate.interval == pytest.approx(0.1 * SLOWDOWN * PROBE**20)
    assert gate.interval > 0.1 * SLOWDOWN * 0.95
    for _ in range(10_000):
        gate.succeeded()
    assert gate.interval == pytest.approx(0.1)  # ...and it never gets faster than configured


def test_a_429_for_a_request_sent_before_the_last_slowdown_does_not_slow_again() -> None:
    gate = RequestGate(requests_per_minute=600)
    sent = time.monotonic()
    assert gate.rate_limited(sent)
    # Requests in flight when the first 429 came were sent at the old pace.
    assert not gate.rate_limited(sent)
    assert gate.interval == pytest.approx(0.1 * SLOWDOWN)
    assert gate.rate_limited(time.monotonic())
    assert gate.interval == pytest.approx(0.1 * SLOWDOWN**2)


def test_an_unpaced_gate_starts_pacing_at_half_its_recent_success_rate() -> None:
    gate = RequestGate(requests_per_minute=None)
    for _ in range(10):
        gate.succeeded()
    observed = gate._observed_interval(time.monotonic())
    assert gate.requests_per_minute is None
    gate.rate_limited()
    assert gate.interval == pytest.approx(observed * FIRST_SLOWDOWN)
    assert gate.requests_per_minute == pytest.approx(60 / gate.interval)
    first = gate.interval
    for _ in range(500):
        gate.rate_limited()
    # Never below a tenth of the first pace (nor slower than UNPACED_SLOWEST).
    assert gate.interval == pytest.approx(min(first / MIN_RATE_SHARE, UNPACED_SLOWEST))


def test_few_remaining_requests_are_spread_until_the_reset() -> None:
    gate = RequestGate(max_concurrency=8, requests_per_minute=None)
    gate.remaining(100, 10.0)  # plenty left: nothing changes
    assert gate.interval == 0.0
    gate.remaining(4, 2.0)
    assert gate.interval == pytest.approx(0.5)


async def test_pacer_hands_out_one_slot_per_interval() -> None:
    gate = RequestGate(max_concurrency=4, requests_per_minute=60_000)  # one per millisecond
    start = time.monotonic()
    for _ in range(20):
        async with gate.slot():
            pass
    # Each request took the next free slot, one interval after the one before.
    assert gate._next_slot >= start + 20 * 0.001


def _order_no(n: int) -> str:
    return str(esimtrade_order(n)["providerOrderNo"])


async def test_the_engine_slows_the_client_on_a_429_and_on_a_low_remaining_header() -> None:
    fake = FakeESIMTrade()
    nos = [_order_no(n) for n in (1, 2)]
    for no in nos:
        fake.esims[no] = esimtrade_esim(no)
    fake.add_faults(
        "/portal/orders",
        json_response(429, {"error": "slow down"}, {"Retry-After": "0.01"}),
        json_response(
            200,
            {"data": esimtrade_esim(nos[0])},
            {"X-RateLimit-Remaining": "2", "X-RateLimit-Reset": "0.4"},
        ),
    )
    async with fake.client(requests_per_minute=60_000, max_concurrency=4) as client:
        gate = client._engine.gate
        result = await client.sync_order(nos[0])
        assert result.outcome == "ok"
        assert client.stats.rate_limited == 1
        # The 429 stretched the interval; the low remaining count spreads the next requests.
        assert gate.interval >= 0.2
