from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from providers_fakes import (
    FAST_RETRY,
    FakeESIMTrade,
    assert_no_secret,
    esimtrade_esim,
    esimtrade_order,
    json_response,
    raising,
)

from pipelines.providers import (
    AuthError,
    ProviderUnavailableError,
    RateLimitedError,
    RetryPolicy,
    deadline_in,
)


def order_no(n: int) -> str:
    return str(esimtrade_order(n)["providerOrderNo"])


def with_esims(fake: FakeESIMTrade, *numbers: int) -> list[str]:
    nos = [order_no(n) for n in numbers]
    for no in nos:
        fake.esims[no] = esimtrade_esim(no)
    return nos


# --- per-order sync ------------------------------------------------------------------------


async def test_sync_ok_sends_only_the_key_pair_and_parses_the_esim() -> None:
    fake = FakeESIMTrade()
    (no,) = with_esims(fake, 1)
    async with fake.client() as client:
        result = await client.sync_order(no)
    assert result.outcome == "ok" and result.http_status == 200
    assert result.requested_by == "orderno" and result.requested == no
    (esim,) = result.esims
    assert esim.order_no == no and esim.total_volume == 524_288_000
    assert esim.raw["qrCodeUrl"].startswith("https://")
    assert result.fetched_at.tzinfo is UTC
    request = fake.requests[0]
    assert request.url.path == "/api/v1/portal/orders"
    assert request.url.params["orderno"] == no
    assert request.headers["x-access-code"] == FakeESIMTrade.ACCESS_CODE
    assert request.headers["x-secret-key"] == FakeESIMTrade.SECRET_KEY
    assert "authorization" not in request.headers and "x-api-key" not in request.headers


async def test_sync_by_iccid_and_list_shaped_data() -> None:
    fake = FakeESIMTrade()
    fake.by_iccid["8948010000095399804"] = [esimtrade_esim("B1"), esimtrade_esim("B2")]
    async with fake.client() as client:
        result = await client.sync_iccid("8948010000095399804")
    assert result.outcome == "ok" and result.requested_by == "iccid"
    assert [e.order_no for e in result.esims] == ["B1", "B2"]
    assert fake.requests[0].url.params["iccid"] == "8948010000095399804"


async def test_sync_allocating_profile_with_nulls_is_ok() -> None:
    fake = FakeESIMTrade()
    fake.esims["B9"] = {
        "esimTranNo": "9",
        "orderNo": "B9",
        "iccid": None,
        "esimStatus": None,
        "packageList": [],
        "totalVolume": None,
        "surprise": 1,
    }
    async with fake.client() as client:
        result = await client.sync_order("B9")
    assert result.outcome == "ok"
    assert result.esims[0].iccid is None and result.esims[0].raw["surprise"] == 1


async def test_sync_404_is_not_found_with_body() -> None:
    fake = FakeESIMTrade()
    async with fake.client() as client:
        result = await client.sync_order("B404")
    assert result.outcome == "not_found" and result.http_status == 404
    assert result.error_body == {"error": "order not found"}
    assert result.esims == ()
    assert len(fake.requests) == 1  # a 404 is an answer, not retried


async def test_bad_credentials_raise_auth_error_without_the_secret() -> None:
    fake = FakeESIMTrade()
    (no,) = with_esims(fake, 1)
    async with fake.client(secret_key="sk-WRONG-but-secret") as client:
        with pytest.raises(AuthError) as info:
            await client.sync_order(no)
        assert "sk-WRONG-but-secret" not in repr(client)
    assert info.value.status_code == 401 and info.value.endpoint.startswith("/portal/orders")
    assert "sk-WRONG-but-secret" not in str(info.value) + repr(info.value)


async def test_error_body_echoing_the_secret_is_redacted() -> None:
    fake = FakeESIMTrade()
    fake.add_faults(
        "/portal/orders",
        json_response(403, {"error": f"key {FakeESIMTrade.SECRET_KEY} may not read orders"}),
    )
    async with fake.client() as client:
        with pytest.raises(AuthError) as info:
            await client.sync_order("B1")
    assert_no_secret(fake, str(info.value), repr(info.value))
    assert "may not read orders" in str(info.value)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(402, "PaymentRequiredError"), (409, "ConflictError"), (400, "ValidationError")],
)
async def test_other_client_errors_fail_the_sync_without_retry(status: int, expected: str) -> None:
    fake = FakeESIMTrade()
    fake.add_faults("/portal/orders", json_response(status, {"error": "nope"}))
    async with fake.client() as client:
        result = await client.sync_order("B1")
    assert result.outcome == "failed" and result.http_status == status
    assert "nope" in (result.error or "")
    assert len(fake.requests) == 1


def http_date_in(seconds: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


@pytest.mark.parametrize(
    ("retry_after", "min_wait"),
    [(None, 0.0), ("0", 0.0), ("0.3", 0.3), ("1", 1.0), ("date", 0.5), ("garbage", 0.0)],
)
async def test_429_then_success_honours_retry_after(
    retry_after: str | None, min_wait: float, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeESIMTrade()
    (no,) = with_esims(fake, 1)
    header = http_date_in(2) if retry_after == "date" else retry_after
    headers = {"Retry-After": header} if header is not None else {}
    fake.add_faults("/portal/orders", json_response(429, {"error": "slow down"}, headers))
    caplog.set_level(logging.INFO, "esim_recon.providers")
    async with fake.client() as client:
        result = await client.sync_order(no)
        assert client.stats.rate_limited == 1 and client.stats.retries == 1
        assert client.stats.requests == 2
    assert result.outcome == "ok"
    gap = fake.request_times[1] - fake.request_times[0]
    assert gap >= min_wait * 0.95
    assert gap > 0  # never a hot loop
    assert "HTTP 429" in caplog.text and "retrying in" in caplog.text
    assert_no_secret(fake, caplog.text)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_then_success(status: int) -> None:
    fake = FakeESIMTrade()
    (no,) = with_esims(fake, 1)
    fake.add_faults("/portal/orders", json_response(status, {"error": "upstream"}))
    async with fake.client() as client:
        result = await client.sync_order(no)
    assert result.outcome == "ok" and len(fake.requests) == 2


@pytest.mark.parametrize(
    "fault",
    [
        httpx.Response(200, content=b'{"data": {"esimTranNo": "2602'),
        httpx.Response(200, content=b"<html>gateway</html>"),
        httpx.Response(200, json={"error": "no data key"}),
        raising(httpx.ConnectError),
        raising(httpx.ReadTimeout),
        raising(httpx.RemoteProtocolError),
    ],
    ids=["truncated-json", "html", "wrong-shape", "connect", "timeout", "dropped"],
)
async def test_transient_fault_then_success(fault: Any) -> None:
    fake = FakeESIMTrade()
    (no,) = with_esims(fake, 1)
    fake.add_faults("/portal/orders", fault)
    async with fake.client() as client:
        result = await client.sync_order(no)
        assert client.stats.retries == 1
    assert result.outcome == "ok"


async def test_persistent_503_fails_the_sync_within_the_time_cap() -> None:
    fake = FakeESIMTrade()
    fake.add_faults("/portal/orders", *[json_response(503, {"error": "down"})] * 100)
    policy = RetryPolicy(max_attempts=50, max_total_seconds=0.5, initial_wait=0.02, max_wait=0.1)
    start = time.monotonic()
    async with fake.client(retry=policy) as client:
        result = await client.sync_order("B1")
    elapsed = time.monotonic() - start
    assert result.outcome == "failed" and result.http_status == 503
    assert "503" in (result.error or "") and "attempts" in (result.error or "")
    assert elapsed < 1.0
    assert 2 <= len(fake.requests) < 50


async def test_persistent_503_stops_after_max_attempts() -> None:
    fake = FakeESIMTrade()
    fake.add_faults("/portal/orders", *[json_response(503, {"error": "down"})] * 100)
    async with fake.client() as client:
        result = await client.sync_order("B1")
    assert result.outcome == "failed" and len(fake.requests) == FAST_RETRY.max_attempts


async def test_a_retry_after_beyond_the_deadline_leaves_the_call_undone_at_once() -> None:
    fake = FakeESIMTrade()
    fake.add_faults("/portal/orders", json_response(429, {"error": "x"}, {"Retry-After": "60"}))
    start = time.monotonic()
    async with fake.client() as client:
        with pytest.raises(RateLimitedError) as raised:
            await client.sync_order("B1", deadline=deadline_in(5.0))
    assert time.monotonic() - start < 0.5
    assert raised.value.status_code == 429 and raised.value.retry_after == 60
    assert len(fake.requests) == 1


async def test_429s_never_count_toward_giving_up() -> None:
    fake = FakeESIMTrade()
    [no] = with_esims(fake, 1)
    # Three times the attempts the policy allows for failures, all of them 429.
    throttled = json_response(429, {"error": "slow down"}, {"Retry-After": "0.01"})
    fake.add_faults("/portal/orders", *[throttled] * (3 * FAST_RETRY.max_attempts))
    async with fake.client() as client:
        result = await client.sync_order(no)
        assert client.stats.rate_limited == 3 * FAST_RETRY.max_attempts
    assert result.outcome == "ok"
    assert len(fake.requests) == 3 * FAST_RETRY.max_attempts + 1


async def test_failures_still_count_between_429s() -> None:
    fake = FakeESIMTrade()
    throttled = json_response(429, {"error": "slow down"}, {"Retry-After": "0.01"})
    down = json_response(503, {"error": "down"})
    fake.add_faults("/portal/orders", *[throttled, down] * 20)
    async with fake.client() as client:
        result = await client.sync_order("B1")
    # The 429s in between did not buy the failures more attempts.
    assert result.outcome == "failed" and result.http_status == 503
    assert len(fake.requests) == 2 * FAST_RETRY.max_attempts


# --- shared rate limiting and concurrency --------------------------------------------------


async def test_a_429_pauses_all_concurrent_workers() -> None:
    fake = FakeESIMTrade()
    nos = with_esims(fake, *range(1, 9))
    fake.add_faults("/portal/orders", json_response(429, {"error": "x"}, {"Retry-After": "0.4"}))
    fake.delay = 0.01
    async with fake.client(max_concurrency=4) as client:
        results = [r async for r in client.sync_many(nos)]
        assert client.stats.rate_limited == 1
    assert {r.outcome for r in results} == {"ok"}
    first_429_at = fake.request_times[0]
    # Workers already in flight when the 429 arrived may land, but no new request starts
    # during the pause.
    late = [t for t in fake.request_times[4:] if t < first_429_at + 0.4 * 0.95]
    assert late == []


async def test_rate_limit_remaining_zero_pauses_until_reset() -> None:
    fake = FakeESIMTrade()
    nos = with_esims(fake, 1, 2)
    ok = json_response(
        200,
        {"data": esimtrade_esim(nos[0])},
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "0.3"},
    )
    fake.add_faults("/portal/orders", ok)
    async with fake.client(max_concurrency=1) as client:
        await client.sync_order(nos[0])
        await client.sync_order(nos[1])
    assert fake.request_times[1] - fake.request_times[0] >= 0.28


async def test_requests_per_minute_paces_requests() -> None:
    fake = FakeESIMTrade()
    nos = with_esims(fake, *range(1, 6))
    async with fake.client(requests_per_minute=600) as client:  # one per 0.1 s
        results = [r async for r in client.sync_many(nos)]
    assert len(results) == 5
    gaps = [b - a for a, b in zip(fake.request_times, fake.request_times[1:], strict=False)]
    assert min(gaps) >= 0.09


async def test_sync_many_bounds_concurrency_dedupes_and_streams() -> None:
    fake = FakeESIMTrade()
    nos = with_esims(fake, *range(1, 21))
    fake.delay = 0.02
    async with fake.client(max_concurrency=3) as client:
        results = [r async for r in client.sync_many(nos + nos[:5] + ["B-unknown"])]
    assert len(results) == 21
    assert sorted(r.requested for r in results) == sorted([*nos, "B-unknown"])
    assert fake.max_in_flight == 3
    assert {r.outcome for r in results if r.requested == "B-unknown"} == {"not_found"}


async def test_sync_many_stops_at_request_budget() -> None:
    fake = FakeESIMTrade()
    nos = with_esims(fake, *range(1, 11))
    async with fake.client(max_concurrency=2) as client:
        stream = client.sync_many(nos, budget_requests=4)
        results = [r async for r in stream]
    assert len(results) == 4 and len(fake.requests) == 4
    assert stream.stats.stop_reason == "request budget exhausted"
    assert stream.stats.skipped == nos[4:]


async def test_sync_many_stops_starting_work_at_the_deadline() -> None:
    fake = FakeESIMTrade()
    nos = with_esims(fake, *range(1, 21))
    fake.delay = 0.05
    async with fake.client(max_concurrency=2) as client:
        stream = client.sync_many(nos, deadline=deadline_in(0.12))
        results = [r async for r in stream]
    assert 2 <= len(results) < 20
    assert stream.stats.stop_reason == "deadline reached"
    assert len(results) + len(stream.stats.skipped) == 20


async def test_sync_many_raises_auth_error_and_cancels_the_rest() -> None:
    fake = FakeESIMTrade()
    nos = with_esims(fake, *range(1, 41))
    fake.delay = 0.01
    async with fake.client(secret_key="sk-revoked-value", max_concurrency=4) as client:
        with pytest.raises(AuthError) as info:
            [r async for r in client.sync_many(nos)]
        in_flight = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert "sk-revoked-value" not in str(info.value)
    assert in_flight == []
    assert len(fake.requests) < 10  # the batch stopped instead of trying all 40


# --- stored order list ---------------------------------------------------------------------


async def test_iter_orders_reads_every_page_in_parallel() -> None:
    fake = FakeESIMTrade([esimtrade_order(n) for n in range(250, 0, -1)])
    fake.delay = 0.01
    async with fake.client(page_size=20, max_concurrency=4) as client:
        listing = client.iter_orders(status="got_resource")
        pages = [p async for p in listing]
    orders = [o for p in pages for o in p.items]
    assert len(orders) == 250 and len({o.provider_order_no for o in orders}) == 250
    assert listing.stats.pages_requested == 13 and listing.stats.passes == 1
    assert fake.max_in_flight == 4
    params = fake.requests[0].url.params
    assert params["page"] == "1" and params["pageSize"] == "20"
    assert params["status"] == "got_resource"
    page = pages[0]
    assert page.total == 250 and page.source_endpoint.startswith("/reseller/orders?page=")
    assert_no_secret(fake, *(p.source_endpoint for p in pages))
    assert_no_secret(fake, *(str(r.url) for r in fake.requests))
    assert orders[0].cost_price is not None


async def test_iter_orders_empty_list() -> None:
    fake = FakeESIMTrade([])
    async with fake.client() as client:
        listing = client.iter_orders()
        pages = [p async for p in listing]
    assert pages == [] and listing.stats.pages_requested == 1
    assert listing.stats.complete is True


async def test_iter_orders_under_drift_and_faults() -> None:
    orders = [esimtrade_order(n) for n in range(95, 0, -1)]
    fake = FakeESIMTrade(orders)
    fresh = iter(range(1000, 2000))

    def insert_head(page: int) -> None:
        # New orders arrive at the head during the walk, shifting later pages.
        if fake.list_calls in (2, 3, 5):
            for _ in range(4):
                fake.orders.insert(0, esimtrade_order(next(fresh)))

    fake.before_list_page = insert_head
    fake.add_faults(
        "/reseller/orders",
        json_response(503, {"error": "busy"}),
        httpx.Response(200, content=b'{"page": 1, "pageSize": 10, "total": 9'),
        json_response(429, {"error": "x"}, {"Retry-After": "0"}),
    )
    async with fake.client(page_size=10, max_concurrency=3) as client:
        listing = client.iter_orders()
        pages = [p async for p in listing]
    keys = [o.provider_order_no for p in pages for o in p.items]
    assert len(keys) == len(set(keys))
    assert set(keys) == {o["providerOrderNo"] for o in fake.orders}
    assert listing.stats.duplicates_dropped > 0
    assert listing.stats.complete


async def test_iter_orders_drops_an_order_the_server_repeats_on_two_pages() -> None:
    fake = FakeESIMTrade([esimtrade_order(n) for n in range(30, 0, -1)])

    def repeat_seam(page: int, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Page 2 also carries the last order of page 1.
        return [fake.orders[9], *rows] if page == 2 else rows

    fake.tamper_rows = repeat_seam
    async with fake.client(page_size=10) as client:
        listing = client.iter_orders()
        keys = [o.provider_order_no for p in [p async for p in listing] for o in p.items]
    assert sorted(keys) == sorted(o["providerOrderNo"] for o in fake.orders)
    assert listing.stats.duplicates_dropped == 1 and listing.stats.passes == 1


async def test_a_list_page_gets_more_patience_than_a_sync_then_raises() -> None:
    fake = FakeESIMTrade([esimtrade_order(n) for n in range(30, 0, -1)])
    fake.add_faults("/reseller/orders", *[json_response(503, {"error": "down"})] * 100)
    fake.add_faults("/portal/orders", *[json_response(503, {"error": "down"})] * 100)
    policy = RetryPolicy(max_attempts=4, max_total_seconds=10, initial_wait=0.001, max_wait=0.002)
    async with fake.client(retry=policy, page_size=10) as client:
        sync = await client.sync_order("B1")
        with pytest.raises(ProviderUnavailableError) as info:
            [p async for p in client.iter_orders()]
    paths = fake.paths()
    assert sync.outcome == "failed" and paths.count("/api/v1/portal/orders") == 4
    assert paths.count("/api/v1/reseller/orders") == policy.for_lists().max_attempts >= 20
    assert info.value.status_code == 503 and info.value.attempts == policy.for_lists().max_attempts
    assert info.value.endpoint.startswith("/reseller/orders?page=1")


async def test_iter_orders_stops_on_a_server_that_ignores_page() -> None:
    fake = FakeESIMTrade([esimtrade_order(n) for n in range(100, 0, -1)])
    fake.ignore_page_param = True
    async with fake.client(page_size=10, max_concurrency=1) as client:
        listing = client.iter_orders()
        pages = [p async for p in listing]
    assert sum(len(p.items) for p in pages) == 10
    assert listing.stats.pages_requested <= 2 * listing.stats.passes
    assert listing.stats.complete is False


async def test_iter_orders_max_pages_guard() -> None:
    fake = FakeESIMTrade([esimtrade_order(n) for n in range(100, 0, -1)])
    async with fake.client(page_size=10, max_pages=3, max_passes=1) as client:
        listing = client.iter_orders()
        pages = [p async for p in listing]
    assert len(pages) == 3 and listing.stats.pages_requested == 3
    assert "max_pages" in listing.stats.stop_reasons[0]


async def test_unknown_order_fields_are_preserved() -> None:
    fake = FakeESIMTrade([esimtrade_order(1, reseller_note="vip", costPrice=1.2)])
    async with fake.client() as client:
        pages = [p async for p in client.iter_orders()]
    order = pages[0].items[0]
    assert order.raw["reseller_note"] == "vip"
    assert str(order.cost_price) == "1.2"
