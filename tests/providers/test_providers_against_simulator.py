"""The real clients against the running simulator over loopback."""

from __future__ import annotations

import asyncio

import pytest

from pipelines.providers import AuthError, ESIMTradeClient, PressOneClient, RetryPolicy
from pipelines.simulator import FaultConfig, FaultKind, Limit, RateLimits, generate_dataset, serve

FAST = RetryPolicy(max_attempts=6, max_total_seconds=30, initial_wait=0.01, max_wait=0.1)


@pytest.fixture(scope="module")
def dataset():
    return generate_dataset(seed=5, orders=240)


def _esimtrade(env: dict[str, str], **options) -> ESIMTradeClient:
    return ESIMTradeClient(
        env["ESIMTRADE_BASE_URL"],
        env["ESIMTRADE_ACCESS_CODE"],
        env["ESIMTRADE_SECRET_KEY"],
        retry=FAST,
        requests_per_minute=None,
        **options,
    )


def _pressone(env: dict[str, str], secret: str | None = None, **options) -> PressOneClient:
    return PressOneClient(
        env["PRESSONE_BASE_URL"],
        env["PRESSONE_CLIENT_ID"],
        secret or env["PRESSONE_CLIENT_SECRET"],
        retry=FAST,
        **options,
    )


@pytest.mark.parametrize("envelope", ["plain", "wrapped"])
async def test_pressone_lists_every_order_in_both_envelopes_with_one_token(
    dataset, envelope: str
) -> None:
    counts = dataset.ground_truth()["counts"]
    with serve(dataset, pressone_envelope=envelope, rate_limits=RateLimits.unlimited()) as sim:
        async with _pressone(sim.env(), page_size=7) as client:
            listing = client.iter_orders()
            ids = [order.id async for page in listing for order in page.items]
            iccid = next(
                order.sims[0].iccid
                for page in [p async for p in client.iter_orders(order_status="completed")]
                for order in page.items
                if order.sims
            )
            usage = await client.get_usage(iccid)
            assert client.stats.token_requests == 1
    assert len(ids) == len(set(ids)) == counts["pressone_orders"]
    assert usage.outcome in {"ok", "not_found"}


async def test_pressone_bad_credentials_raise_auth_error_without_the_secret(dataset) -> None:
    with serve(dataset, rate_limits=RateLimits.unlimited()) as sim:
        async with _pressone(sim.env(), secret="wrong-secret-value-123") as client:
            with pytest.raises(AuthError) as raised:
                async for _ in client.iter_orders():
                    pass
    assert "wrong-secret-value-123" not in str(raised.value)


async def test_pressone_refreshes_a_token_that_expires(dataset) -> None:
    with serve(dataset, rate_limits=RateLimits.unlimited(), token_ttl_seconds=1) as sim:
        async with _pressone(sim.env(), page_size=100) as client:
            async for _ in client.iter_orders():
                pass
            await asyncio.sleep(1.2)
            async for _ in client.iter_orders():
                pass
            assert client.stats.token_requests >= 2


async def test_pressone_survives_tokens_that_keep_expiring_early(dataset) -> None:
    """A fifth of the requests revoke the shared token: every list row and usage lookup still
    arrives, since a token that worked before and is then rejected has only expired."""
    faults = FaultConfig.only(FaultKind.TOKEN_EXPIRY, rate=0.2)
    limits = RateLimits.unlimited()
    with serve(dataset, rate_limits=limits) as clean_sim:
        async with _pressone(clean_sim.env(), page_size=20) as client:
            expected = sorted(
                o.code for p in [p async for p in client.iter_orders()] for o in p.items
            )
    with serve(dataset, faults=faults, rate_limits=limits) as sim:
        async with _pressone(sim.env(), page_size=20, max_concurrency=8) as client:
            pages = [p async for p in client.iter_orders()]
            iccids = sorted({s.iccid for p in pages for o in p.items for s in o.sims if s.iccid})
            usage = [r async for r in client.usage_many(iccids)]
            renewals = client.stats.token_requests
    assert sorted(o.code for p in pages for o in p.items) == expected
    with serve(dataset, rate_limits=limits) as clean_sim:
        async with _pressone(clean_sim.env(), max_concurrency=8) as client:
            clean = {r.iccid: r.outcome async for r in client.usage_many(iccids)}
    # Planted always-failing lookups fail in both; every other lookup answers as without faults.
    assert {r.iccid: r.outcome for r in usage} == clean
    assert renewals > 1 + 5  # more early expiries than the cap on rejected fresh tokens


async def test_esimtrade_lists_syncs_and_reports_unknown_orders(dataset) -> None:
    counts = dataset.ground_truth()["counts"]
    with serve(dataset, rate_limits=RateLimits.unlimited()) as sim:
        async with _esimtrade(sim.env(), page_size=13) as client:
            order_nos = [o.provider_order_no async for p in client.iter_orders() for o in p.items]
            synced = await client.sync_order(order_nos[0])
            unknown = await client.sync_order("B99999999990000")
    assert len(order_nos) == len(set(order_nos)) == counts["esimtrade_list_orders"]
    assert synced.outcome == "ok" and synced.esims[0].order_no == order_nos[0]
    assert unknown.outcome == "not_found"


async def test_esimtrade_empty_filtered_list(dataset) -> None:
    with serve(dataset, rate_limits=RateLimits.unlimited()) as sim:
        async with _esimtrade(sim.env()) as client:
            pages = [page async for page in client.iter_orders(q="no-such-order-anywhere")]
    assert sum(len(page.items) for page in pages) == 0


async def test_esimtrade_bad_secret_is_an_auth_error(dataset) -> None:
    with serve(dataset, rate_limits=RateLimits.unlimited()) as sim:
        env = sim.env() | {"ESIMTRADE_SECRET_KEY": "not-the-key-987654"}
        async with _esimtrade(env) as client:
            with pytest.raises(AuthError) as raised:
                async for _ in client.iter_orders():
                    pass
    assert "not-the-key-987654" not in str(raised.value)


async def test_esimtrade_429_then_success_under_a_tight_limit(dataset) -> None:
    limits = RateLimits.unlimited()
    limits = RateLimits(
        esimtrade=Limit(5, 1.0),
        pressone=limits.pressone,
        pressone_usage_per_iccid=limits.pressone_usage_per_iccid,
        pressone_token=limits.pressone_token,
    )
    with serve(dataset, rate_limits=limits) as sim:
        async with _esimtrade(sim.env(), max_concurrency=8) as client:
            order_nos = [o.provider_order_no async for p in client.iter_orders() for o in p.items]
            results = [r async for r in client.sync_many(order_nos[:20])]
        assert sim.stats.responses_429 > 0
    assert all(result.outcome == "ok" for result in results)


async def test_lists_are_exact_under_faults_and_drift(dataset) -> None:
    drifting = generate_dataset(seed=5, orders=240, drift_orders=6)
    expected = drifting.ground_truth()["counts"]
    faults = FaultConfig.uniform(0.2, stall_seconds=1.5)
    with serve(drifting, faults=faults, rate_limits=RateLimits.unlimited()) as sim:
        async with _esimtrade(sim.env(), page_size=20, timeout=1.0) as client:
            order_nos = [o.provider_order_no async for p in client.iter_orders() for o in p.items]
        async with _pressone(sim.env(), page_size=20, timeout=1.0) as client:
            ids = [o.id async for p in client.iter_orders() for o in p.items]
    assert len(order_nos) == len(set(order_nos)) == expected["esimtrade_list_orders"]
    assert len(ids) == len(set(ids)) == expected["pressone_orders"]
