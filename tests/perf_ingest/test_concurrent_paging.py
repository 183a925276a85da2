"""Parallel paging under list drift: many pages in flight at once against the simulator, whose
newest-first lists gain rows at the head while they are paged, and repeat rows across pages.
The client must end with exactly the simulator's rows, each once."""

from __future__ import annotations

import pytest

from pipelines.providers import ESIMTradeClient, PressOneClient, RetryPolicy
from pipelines.simulator import FaultConfig, FaultKind, RateLimits, generate_dataset, serve

FAST = RetryPolicy(max_attempts=6, max_total_seconds=30, initial_wait=0.01, max_wait=0.1)
DRIFT = FaultConfig.only(FaultKind.LIST_DRIFT, FaultKind.DUPLICATE_ROW, rate=0.3, drift_batch=4)


@pytest.mark.parametrize("concurrency", [4, 16])
async def test_concurrent_paging_under_drift_yields_exactly_the_truth(concurrency: int) -> None:
    dataset = generate_dataset(seed=23, orders=400, drift_orders=40)
    with serve(dataset, faults=DRIFT, rate_limits=RateLimits.unlimited(), latency_ms=5) as sim:
        env = sim.env()
        async with ESIMTradeClient(
            env["ESIMTRADE_BASE_URL"],
            env["ESIMTRADE_ACCESS_CODE"],
            env["ESIMTRADE_SECRET_KEY"],
            retry=FAST,
            requests_per_minute=None,
            max_concurrency=concurrency,
            page_size=7,
        ) as esimtrade:
            listing = esimtrade.iter_orders()
            order_nos = [order.provider_order_no async for page in listing for order in page.items]
            esimtrade_stats = listing.stats
        async with PressOneClient(
            env["PRESSONE_BASE_URL"],
            env["PRESSONE_CLIENT_ID"],
            env["PRESSONE_CLIENT_SECRET"],
            retry=FAST,
            max_concurrency=concurrency,
            page_size=7,
        ) as pressone:
            pressone_listing = pressone.iter_orders()
            ids = [order.id async for page in pressone_listing for order in page.items]
        assert sim.stats.faults[FaultKind.LIST_DRIFT] > 0  # the lists did move while paged
    assert len(order_nos) == len(set(order_nos))
    assert set(order_nos) == {esim.order_no for esim in dataset.esimtrade}
    assert len(ids) == len(set(ids))
    assert set(ids) == {order.id for order in dataset.pressone}
    assert esimtrade_stats.complete and pressone_listing.stats.complete
    assert esimtrade_stats.pages_requested > 400 / 2 / 7  # every page, some more than once
