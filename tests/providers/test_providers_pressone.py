from __future__ import annotations

import asyncio
import logging
import time
from datetime import date

import httpx
import pytest
from providers_fakes import USAGE, FakePressOne, assert_no_secret, json_response, pressone_order

from pipelines.providers import (
    AuthError,
    ProviderUnavailableError,
    RetryPolicy,
    ValidationError,
)
from pipelines.providers.pressone import MAX_FORCED_RENEWALS

ICCID = "8948010000095399804"


# --- token ---------------------------------------------------------------------------------


async def test_token_is_requested_once_as_multipart_and_shared_by_concurrent_calls() -> None:
    fake = FakePressOne([pressone_order(n) for n in range(1, 4)])
    fake.usage = {f"89{n:017d}": USAGE for n in range(30)}
    fake.delay = 0.005
    async with fake.client() as client:
        results = [r async for r in client.usage_many(fake.usage)]
        await client.get_order(1)
        assert client.stats.token_requests == 1
    assert {r.outcome for r in results} == {"ok"}
    assert fake.token_requests == 1
    assert fake.token_forms == [
        {
            "client_id": FakePressOne.CLIENT_ID,
            "client_secret": FakePressOne.CLIENT_SECRET,
            "grant_type": "client_credentials",
        }
    ]
    token_request = fake.requests[0]
    assert token_request.method == "POST" and token_request.url.path == "/customer/v2/token"
    for request in fake.requests[1:]:
        assert request.headers["accept"] == "application/json"
        assert request.headers["authorization"].startswith("Bearer tok-1-")


async def test_token_is_renewed_before_expires_in_elapses() -> None:
    fake = FakePressOne([pressone_order(1)], expires_in=1)
    async with fake.client() as client:
        await client.get_order(1)
        await client.get_order(1)
        assert fake.token_requests == 1
        await asyncio.sleep(1.0)
        await client.get_order(1)
    assert fake.token_requests == 2


async def test_401_refreshes_once_then_succeeds() -> None:
    fake = FakePressOne([pressone_order(1)])
    async with fake.client() as client:
        assert await client.get_order(1) is not None
        fake.revoke_tokens()  # the provider expires the token early
        order = await client.get_order(1)
    assert order is not None and order.id == 1
    assert fake.token_requests == 2


async def test_concurrent_401s_share_one_refresh() -> None:
    fake = FakePressOne()
    fake.usage = {f"89{n:017d}": USAGE for n in range(12)}
    async with fake.client(max_concurrency=6) as client:
        await client.get_usage(next(iter(fake.usage)))
        fake.revoke_tokens()
        results = [r async for r in client.usage_many(fake.usage)]
    assert {r.outcome for r in results} == {"ok"}
    assert fake.token_requests == 2


async def test_token_expiring_twice_in_a_row_is_renewed_each_time() -> None:
    fake = FakePressOne()
    fake.usage[ICCID] = USAGE
    fake.add_faults("/usage", *[json_response(401, {"message": "Unauthenticated."})] * 2)
    async with fake.client() as client:
        result = await client.get_usage(ICCID)
    assert result.outcome == "ok"
    assert fake.token_requests == 3


async def test_tokens_expiring_under_concurrent_callers_are_renewed_not_fatal() -> None:
    fake = FakePressOne()
    fake.usage = {f"89{n:017d}": USAGE for n in range(16)}

    def expire(request: httpx.Request) -> httpx.Response:
        fake.revoke_tokens()  # the provider drops the token every caller shares
        return json_response(401, {"message": "Unauthenticated."})

    fake.add_faults("/usage", *[expire] * 4)
    fake.delay = 0.005
    async with fake.client(max_concurrency=8) as client:
        results = [r async for r in client.usage_many(fake.usage)]
    assert {r.outcome for r in results} == {"ok"} and len(results) == 16
    assert fake.token_requests <= 1 + 4


async def test_persistent_401_raises_auth_error_after_bounded_renewals() -> None:
    fake = FakePressOne()
    fake.usage = {f"89{n:017d}": USAGE for n in range(8)}
    fake.add_faults("/usage", *[json_response(401, {"message": "Unauthenticated."})] * 500)
    async with fake.client(max_concurrency=8) as client:
        with pytest.raises(AuthError) as info:
            [r async for r in client.usage_many(fake.usage)]
    assert info.value.status_code == 401
    # Concurrent callers share each renewal: never one token request per call or per retry.
    assert fake.token_requests == 1 + MAX_FORCED_RENEWALS


async def test_bad_credentials_raise_auth_error_without_secret() -> None:
    fake = FakePressOne([pressone_order(1)])
    wrong = "cs-WRONG-but-still-secret"
    async with fake.client(client_secret=wrong) as client:
        with pytest.raises(AuthError) as info:
            [p async for p in client.iter_orders()]
        assert wrong not in repr(client)
    text = str(info.value) + repr(info.value)
    assert wrong not in text
    assert info.value.status_code == 422 and "Validation failed" in text
    assert fake.token_requests == 1  # credentials errors are not retried


async def test_token_endpoint_429_is_retried_honouring_retry_after() -> None:
    fake = FakePressOne([pressone_order(1)])
    fake.add_faults(
        "/customer/v2/token",
        json_response(429, {"message": "Too Many Attempts."}, {"Retry-After": "0.2"}),
    )
    async with fake.client() as client:
        assert await client.get_order(1) is not None
        assert client.stats.token_requests == 1 and client.stats.retries == 1
    assert fake.token_requests == 1  # the 429 came from the fault queue
    assert fake.paths()[:2] == ["/customer/v2/token"] * 2  # one token request, retried
    assert fake.request_times[1] - fake.request_times[0] >= 0.19


async def test_token_inside_success_envelope() -> None:
    fake = FakePressOne([pressone_order(1)], envelope="full")
    async with fake.client() as client:
        order = await client.get_order(1)
    assert order is not None and order.code == "20230227-000001"


async def test_no_secret_in_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakePressOne([pressone_order(1)])
    fake.add_faults("/orders/1", json_response(500, {"message": "oops"}))
    async with fake.client() as client:
        await client.get_order(1)
        fake.add_faults("/orders/1", *[json_response(503, {"message": "down"})] * 20)
        with pytest.raises(ProviderUnavailableError) as info:
            await client.get_order(1)
    assert "retrying in" in caplog.text
    assert_no_secret(fake, caplog.text, str(info.value), repr(info.value))


# --- orders --------------------------------------------------------------------------------


@pytest.mark.parametrize("envelope", ["none", "full"])
@pytest.mark.parametrize("per_page_as_string", [True, False])
async def test_iter_orders_walks_laravel_pages(envelope: str, per_page_as_string: bool) -> None:
    fake = FakePressOne(
        [pressone_order(n) for n in range(87, 0, -1)],
        envelope=envelope,
        per_page_as_string=per_page_as_string,
    )
    async with fake.client(page_size=20) as client:
        listing = client.iter_orders()
        pages = [p async for p in listing]
    ids = [o.id for p in pages for o in p.items]
    assert sorted(ids) == list(range(1, 88))
    assert listing.stats.pages_requested == 5 and listing.stats.passes == 1
    assert listing.stats.final_total == 87
    assert pages[0].items[0].sims[0].iccid is not None


async def test_iter_orders_with_envelope_data_as_bare_list() -> None:
    # Envelope data is the array only: no meta, no links, so stop on the short page.
    fake = FakePressOne([pressone_order(n) for n in range(45, 0, -1)], envelope="data")
    async with fake.client(page_size=20) as client:
        listing = client.iter_orders()
        pages = [p async for p in listing]
    assert sum(len(p.items) for p in pages) == 45
    assert listing.stats.pages_requested == 3
    assert listing.stats.complete is None


async def test_iter_orders_empty() -> None:
    fake = FakePressOne([])
    async with fake.client() as client:
        listing = client.iter_orders()
        assert [p async for p in listing] == []
    assert listing.stats.pages_requested == 1


async def test_iter_orders_query_parameters() -> None:
    fake = FakePressOne([pressone_order(1)])
    async with fake.client(page_size=25) as client:
        [
            p
            async for p in client.iter_orders(
                created_from=date(2026, 1, 1),
                created_to=date(2026, 1, 31),
                order_status="completed",
                description="shop #12",
            )
        ]
    params = fake.requests[-1].url.params
    assert params["include"] == "sims,status"
    assert params["filter[created_at]"] == "2026-01-01 - 2026-01-31"
    assert params["filter[order_status]"] == "completed"
    assert params["filter[description]"] == "shop #12"
    assert params["limit"] == "25" and params["page"] == "1"
    with pytest.raises(ValueError):
        client.iter_orders(created_from=date(2026, 2, 1), created_to=date(2026, 1, 1))


async def test_iter_orders_under_head_inserts() -> None:
    fake = FakePressOne([pressone_order(n) for n in range(60, 0, -1)])
    counter = iter(range(1000, 1100))
    calls = {"n": 0}

    def drift(page: int) -> None:
        calls["n"] += 1
        if calls["n"] in (2, 4):
            for _ in range(7):
                fake.orders.insert(0, pressone_order(next(counter)))

    fake.before_list_page = drift
    async with fake.client(page_size=10, max_concurrency=3) as client:
        listing = client.iter_orders()
        pages = [p async for p in listing]
    ids = [o.id for p in pages for o in p.items]
    assert len(ids) == len(set(ids))
    assert set(ids) == {o["id"] for o in fake.orders}
    assert listing.stats.passes >= 2


async def test_get_order_found_missing_and_rejected() -> None:
    fake = FakePressOne([pressone_order(5, extra_field={"a": 1})])
    fake.add_faults(
        "/orders/6",
        json_response(
            422,
            {
                "success": False,
                "code": "4008",
                "message": "Validation failed",
                "data": None,
                "timestamp": "2024-01-15T10:30:00.000Z",
            },
        ),
    )
    async with fake.client() as client:
        order = await client.get_order(5)
        assert await client.get_order(99) is None
        with pytest.raises(ValidationError) as info:
            await client.get_order(6)
    assert order is not None and order.raw["extra_field"] == {"a": 1}
    assert info.value.code == "4008" and info.value.status_code == 422
    assert fake.requests[1].url.params["include"] == "sims,user,status"


async def test_success_false_envelope_on_200_is_a_validation_error() -> None:
    fake = FakePressOne()
    fake.add_faults(
        "/orders/1",
        json_response(
            200,
            {
                "success": False,
                "code": "34",
                "message": "package invalid",
                "data": None,
                "timestamp": "t",
            },
        ),
    )
    async with fake.client() as client:
        with pytest.raises(ValidationError) as info:
            await client.get_order(1)
    assert info.value.code == "34"


# --- usage ---------------------------------------------------------------------------------


@pytest.mark.parametrize("envelope", ["none", "full", "data"])
async def test_usage_ok(envelope: str) -> None:
    fake = FakePressOne(envelope=envelope)
    fake.usage[ICCID] = {**USAGE, "new_counter": 3}
    async with fake.client() as client:
        result = await client.get_usage(ICCID)
    assert result.outcome == "ok" and result.http_status == 200
    assert result.usage is not None
    assert result.usage.remaining == 767 and result.usage.total == 2048
    assert result.usage.status == "ACTIVE" and result.usage.raw["new_counter"] == 3
    assert fake.requests[-1].url.path == f"/customer/v2/sims/{ICCID}/usage"


async def test_usage_404_is_not_found() -> None:
    fake = FakePressOne()
    async with fake.client() as client:
        result = await client.get_usage(ICCID)
    assert result.outcome == "not_found" and result.http_status == 404
    assert result.usage is None and "resource_not_found" in (result.error or "")


async def test_usage_429_per_iccid_does_not_stall_other_iccids() -> None:
    fake = FakePressOne()
    other = "8948010000095399812"
    fake.usage = {ICCID: USAGE, other: USAGE}
    fake.add_faults(
        f"/sims/{ICCID}/usage",
        json_response(
            429,
            {"message": "Too Many Attempts."},
            {"Retry-After": "0.4", "X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0"},
        ),
    )
    async with fake.client() as client:
        start = time.monotonic()
        results = {r.iccid: r async for r in client.usage_many([ICCID, other])}
        elapsed = time.monotonic() - start
        assert client.stats.rate_limited == 1
    assert results[ICCID].outcome == "ok" and results[other].outcome == "ok"
    other_times = [
        t for r, t in zip(fake.requests, fake.request_times, strict=True) if other in r.url.path
    ]
    assert other_times[0] - start < 0.2  # not held back by the other ICCID's 429
    assert elapsed >= 0.39  # the limited ICCID waited its Retry-After


async def test_usage_persistent_failure_is_failed_and_auth_raises() -> None:
    fake = FakePressOne()
    fake.add_faults("/usage", *[json_response(502, {"message": "bad gateway"})] * 50)
    policy = RetryPolicy(max_attempts=3, max_total_seconds=1, initial_wait=0.001, max_wait=0.002)
    async with fake.client(retry=policy) as client:
        result = await client.get_usage(ICCID)
    assert result.outcome == "failed" and result.http_status == 502
    assert "bad gateway" in (result.error or "")

    fake = FakePressOne()
    async with fake.client(client_secret="cs-nope-nope") as client:
        with pytest.raises(AuthError):
            [r async for r in client.usage_many([ICCID, "8948010000095399812"])]


async def test_usage_truncated_json_then_success() -> None:
    fake = FakePressOne()
    fake.usage[ICCID] = USAGE
    fake.add_faults("/usage", httpx.Response(200, content=b'{"data": {"remaining": 7'))
    async with fake.client() as client:
        result = await client.get_usage(ICCID)
        assert client.stats.retries == 1
    assert result.outcome == "ok"


async def test_an_iccid_waiting_out_its_quota_leaves_its_slot_to_the_next_ones() -> None:
    fake = FakePressOne()
    others = ["8948010000095399812", "8948010000095399820"]
    fake.usage = {ICCID: USAGE, **dict.fromkeys(others, USAGE)}
    # Beyond KEY_QUOTA_SECONDS: the ICCID's own quota, not the client's pace.
    fake.add_faults(
        f"/sims/{ICCID}/usage",
        json_response(429, {"message": "Too Many Attempts."}, {"Retry-After": "10.5"}),
    )
    async with fake.client(max_concurrency=1) as client:
        start = time.monotonic()
        results = {r.iccid: r async for r in client.usage_many([ICCID, *others])}
        assert client.pace is None  # a per-ICCID quota does not slow the client
    assert {iccid: r.outcome for iccid, r in results.items()} == dict.fromkeys(
        [ICCID, *others], "ok"
    )
    asked = [
        (t, r.url.path)
        for r, t in zip(fake.requests, fake.request_times, strict=True)
        if "/usage" in r.url.path
    ]
    # With one slot, the other ICCIDs were asked while the first waited out its 10.5 s...
    assert [path.split("/")[-2] for _, path in asked] == [ICCID, *others, ICCID]
    assert all(moment - start < 5 for moment, _ in asked[:3])
    # ...and the first was asked again when its quota allowed.
    assert asked[3][0] - asked[0][0] >= 10.5
