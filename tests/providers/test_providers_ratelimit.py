"""The request gate's pacer: it fills the configured rate, slows down when the provider says
so and recovers afterwards (no timing assertions: the schedule is read, not measured)."""

from __future__ import annotations

import time

import pytest
from providers_fakes import FakeESIMTrade, esimtrade_esim, esimtrade_order, json_response

from pipelines.providers._ratelimit import MIN_RATE_SHARE, RequestGate


def test_pacer_interval_follows_the_configured_rate() -> None:
    assert RequestGate(requests_per_minute=600).interval == pytest.approx(0.1)
    assert RequestGate(requests_per_minute=None).interval == 0.0


def test_429s_stretch_the_interval_and_successes_bring_it_back() -> None:
    gate = RequestGate(requests_per_minute=600)
    gate.rate_limited()
    slowed = gate.interval
    assert slowed > 0.1
    for _ in range(100):
        gate.rate_limited()
    assert gate.interval == pytest.approx(0.1 / MIN_RATE_SHARE)  # never slower than this
    for _ in range(1000):
        gate.succeeded()
    assert gate.interval == pytest.approx(0.1)  # and never faster than configured


def test_an_unpaced_gate_stays_unpaced_after_a_429() -> None:
    gate = RequestGate(requests_per_minute=None)
    gate.rate_limited()
    assert gate.interval == 0.0


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
