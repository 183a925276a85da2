"""Limits on what the clients accept (issue 14): body size, nesting, values beyond their
column, list walks that trust their own request, unreadable pages and walk limits. Real
clients against the in-memory fakes (httpx.MockTransport)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from pipelines.providers import PayloadLimits
from pipelines.providers._errors import BodyRejected, RecordRejected
from pipelines.providers._paging import FetchedPage, Listing, PageInfo
from pipelines.providers._payload import decode_body, nesting_depth, read_capped
from pipelines.providers._records import (
    ESIMTradeEsim,
    ESIMTradeListedOrder,
    PressOneOrder,
    PressOneUsage,
)
from tests.providers.providers_fakes import (
    FAST_RETRY,
    FakeESIMTrade,
    FakePressOne,
    assert_no_secret,
    esimtrade_esim,
    esimtrade_order,
    pressone_order,
)

DEEP = b'{"data":' + b"[" * 200_000 + b"]" * 200_000 + b"}"


# --- bodies ---------------------------------------------------------------------------------


def test_nesting_is_measured_without_parsing_and_ignores_brackets_in_strings() -> None:
    assert nesting_depth(b'{"a": [1, {"b": "[[[[\\"{{"}]}') == 3
    assert nesting_depth(b"[]") == 1 and nesting_depth(b"12") == 0
    assert nesting_depth(DEEP) == 200_001


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (DEEP, "too_deep"),
        (b"<html>502 Bad Gateway</html>", "not_json"),
        (b'{"a": 1', "not_json"),
        (b"\xff\xfe{}", "not_json"),
        (b'{"n": ' + b"9" * 5000 + b"}", "not_json"),
        (b'{"s": "\\ud800"}', "not_text"),
    ],
)
def test_a_refused_body_says_why(content: bytes, kind: str) -> None:
    with pytest.raises(BodyRejected) as refused:
        decode_body(content, PayloadLimits())
    assert refused.value.kind == kind


def test_brackets_inside_strings_are_not_nesting() -> None:
    body = b'{"description": "' + b"[" * 500 + b'"}'
    assert decode_body(body, PayloadLimits(max_json_depth=8)) == {"description": "[" * 500}
    # Brackets in strings that pair off with real ones: the decoder's own guard still holds.
    hidden = b"[" + b'"]",[' * 3000 + b"1" + b',"["]' * 3000 + b"]"
    with pytest.raises(BodyRejected) as refused:
        decode_body(hidden, PayloadLimits())
    assert refused.value.kind == "too_deep"


def test_surrogate_pairs_are_text() -> None:
    assert decode_body(b'{"s": "\\ud83d\\ude00"}', PayloadLimits()) == {"s": "\U0001f600"}


async def test_reading_stops_just_past_the_size_limit() -> None:
    async def chunks() -> Any:
        for _ in range(1000):
            yield b"x" * 1000

    content, received, over = await read_capped(chunks(), 2500)
    assert over and len(content) == 2500 and received == 3000


# --- values beyond their column ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "kind", "words"),
    [
        ("orderUsage", 10**20, "out_of_range", "orderUsage 100000000000000000000 is beyond BIGINT"),
        ("totalVolume", -(2**63) - 1, "out_of_range", "beyond BIGINT"),
        ("iccid", "8948\x00\x1b[2J", "control_characters", "iccid"),
        ("esimStatus", "IN_USE" * 1000, "too_long", "longer than 1024 characters"),
    ],
)
def test_a_value_beyond_its_column_refuses_the_record(
    field: str, value: Any, kind: str, words: str
) -> None:
    body = esimtrade_esim("B26022703140001", **{field: value})
    with pytest.raises(RecordRejected) as refused:
        ESIMTradeEsim.from_json(body)
    assert refused.value.kind == kind and words in str(refused.value)
    assert ESIMTradeEsim.from_json(esimtrade_esim("B26022703140001", orderUsage=2**63 - 1))


def test_amounts_and_small_integers_have_their_own_bounds() -> None:
    with pytest.raises(RecordRejected, match=r"costPrice .* is beyond DECIMAL"):
        ESIMTradeListedOrder.from_json(esimtrade_order(1, costPrice="1e20"))
    assert ESIMTradeListedOrder.from_json(esimtrade_order(1, costPrice="99999999999999.9999"))
    with pytest.raises(RecordRejected, match=r"quantity .* is beyond INTEGER"):
        PressOneOrder.from_json(pressone_order(1, quantity=2**31))
    # Free text is kept as given.
    order = PressOneOrder.from_json(pressone_order(1, description="line one\nline two\t"))
    assert order.description == "line one\nline two\t"


@pytest.mark.parametrize("total", [10**400, float("inf"), "-1e999"])
def test_a_usage_amount_beyond_double_refuses_the_record(total: Any) -> None:
    with pytest.raises(RecordRejected, match=r"total .* is beyond DOUBLE"):
        PressOneUsage.from_json("8944", {"total": total, "remaining": 1})
    # Epoch seconds beyond any date read as no date, as before.
    assert PressOneUsage.from_json("8944", {"expired_at": 10**400}).expired_at is None
    assert PressOneUsage.from_json("8944", {"total": "NaN"}).total is None


async def test_a_sync_with_a_value_beyond_its_column_fails_once_and_is_quarantined() -> None:
    fake = FakeESIMTrade()
    fake.esims["B1"] = esimtrade_esim("B1", orderUsage=10**20)
    async with fake.client() as client:
        result = await client.sync_order("B1")
        [item] = client.quarantine.drain()
    assert result.outcome == "failed" and "record quarantined" in (result.error or "")
    assert len(fake.requests) == 1  # well formed: asking again brings the same value
    assert item.kind == "out_of_range" and item.source_endpoint == "/portal/orders?orderno=B1"
    assert json.loads(item.raw)["data"]["orderUsage"] == 10**20
    assert_no_secret(fake, item.raw, item.reason, result.error or "")


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (httpx.Response(200, content=DEEP), "too_deep"),
        (httpx.Response(200, content=b"<html>proxy error</html>"), "not_json"),
        (httpx.Response(200, json={"data": {}, "padding": "x" * 5000}), "too_large"),
    ],
)
async def test_a_refused_body_is_quarantined_and_asked_again(
    response: httpx.Response, kind: str
) -> None:
    fake = FakeESIMTrade()
    fake.esims["B1"] = esimtrade_esim("B1")
    fake.add_faults("/portal/orders", response)
    limits = PayloadLimits(max_body_bytes=4096) if kind == "too_large" else PayloadLimits()
    async with fake.client(limits=limits) as client:
        result = await client.sync_order("B1")
        [item] = client.quarantine.drain()
    assert result.outcome == "ok" and len(fake.requests) == 2
    assert item.kind == kind and item.http_status == 200 and item.raw
    assert len(item.raw) <= 65_536


async def test_a_body_refused_to_the_end_fails_that_sync_only() -> None:
    fake = FakeESIMTrade()
    for order_no in ("B1", "B2"):
        fake.esims[order_no] = esimtrade_esim(order_no)
    fake.add_faults("orders", *[httpx.Response(200, content=DEEP)] * 6)
    async with fake.client() as client:
        first = await client.sync_order("B1")
        second = await client.sync_order("B2")
    assert first.outcome == "failed"
    assert "JSON nested more than 64 levels deep" in (first.error or "")
    assert second.outcome == "ok"


# --- list walks -------------------------------------------------------------------------------


@pytest.mark.parametrize("echo", [10**18, -5, "many", None])
async def test_esimtrade_walks_ignore_absurd_page_echoes(echo: Any) -> None:
    fake = FakeESIMTrade([esimtrade_order(n) for n in range(95, 0, -1)])
    original = fake.serve

    def echoing(request: httpx.Request) -> httpx.Response:
        response = original(request)
        body = json.loads(response.content)
        if "orders" in body:
            body["page"] = body["pageSize"] = echo
        return httpx.Response(response.status_code, json=body)

    fake.serve = echoing  # type: ignore[method-assign]
    async with fake.client(page_size=10) as client:
        listing = client.iter_orders()
        orders = [order async for page in listing for order in page.items]
    assert len(orders) == 95 and listing.stats.complete is True
    assert listing.stats.passes == 1 and listing.stats.pages_requested == 10


@pytest.mark.parametrize("echo", [10**18, -1, "lots"])
async def test_pressone_walks_ignore_absurd_page_echoes(echo: Any) -> None:
    fake = FakePressOne([pressone_order(n) for n in range(45, 0, -1)])
    original = fake.serve

    def echoing(request: httpx.Request) -> httpx.Response:
        response = original(request)
        body = json.loads(response.content)
        if isinstance(body.get("meta"), dict) and "total" in body["meta"]:
            body["meta"]["current_page"] = body["meta"]["per_page"] = echo
        return httpx.Response(response.status_code, json=body)

    fake.serve = echoing  # type: ignore[method-assign]
    async with fake.client(page_size=10) as client:
        listing = client.iter_orders()
        orders = [order async for page in listing for order in page.items]
    assert len(orders) == 45 and listing.stats.complete is True


async def test_a_server_serving_fewer_rows_than_asked_is_measured_by_its_rows() -> None:
    async def fetch(number: int) -> FetchedPage:
        rows = tuple({"k": k} for k in range(number * 5 - 4, min(number * 5, 23) + 1))
        info = PageInfo(items=rows, total=23, per_page=10)  # asked for 10, served 5
        return FetchedPage(number, info, datetime.now(UTC), "/")

    listing: Listing[int] = Listing(fetch, parse_item=lambda r: r["k"], key=int, page_size=10)
    keys = [k async for page in listing for k in page.items]
    assert sorted(keys) == list(range(1, 24)) and listing.stats.complete is True


async def test_an_unreadable_page_is_skipped_asked_again_and_quarantined() -> None:
    fake = FakeESIMTrade([esimtrade_order(n) for n in range(30, 0, -1)])
    # Refused through every attempt a refused answer gets (a sync's, even on a list page, so a
    # proxy's error page costs seconds, not the list's whole patience), then answered.
    attempts = FAST_RETRY.for_lists().max_refused_attempts
    assert attempts < FAST_RETRY.for_lists().max_attempts
    refused = [httpx.Response(200, content=b"<html>proxy</html>")] * attempts
    original = fake.serve

    def spoiling(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page") == "2" and refused:
            return refused.pop()
        return original(request)

    fake.serve = spoiling  # type: ignore[method-assign]
    async with fake.client(page_size=10) as client:
        listing = client.iter_orders()
        orders = [order async for page in listing for order in page.items]
        quarantined = client.quarantine.drain()
    # Pass 1 reads pages 1 and 3; the head and full passes that follow read page 2.
    assert len(orders) == 30 and listing.stats.complete is True
    assert listing.stats.unreadable_pages == 1 and listing.stats.pages_unread == []
    assert len(quarantined) == attempts and {q.kind for q in quarantined} == {"not_json"}


async def test_a_page_unreadable_in_every_pass_leaves_the_listing_incomplete() -> None:
    fake = FakeESIMTrade([esimtrade_order(n) for n in range(30, 0, -1)])
    original = fake.serve

    def spoiling(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page") == "2":
            return httpx.Response(200, content=DEEP)
        return original(request)

    fake.serve = spoiling  # type: ignore[method-assign]
    async with fake.client(page_size=10) as client:
        listing = client.iter_orders()
        orders = [order async for page in listing for order in page.items]
    assert len(orders) == 20
    assert listing.stats.complete is False and listing.stats.pages_unread == [2]


async def test_a_list_of_nothing_but_refused_answers_still_fails() -> None:
    fake = FakeESIMTrade([esimtrade_order(n) for n in range(30, 0, -1)])
    fake.serve = lambda request: httpx.Response(200, content=b"<html/>")  # type: ignore[method-assign]
    async with fake.client(page_size=10) as client:
        listing = client.iter_orders()
        with pytest.raises(Exception, match="not valid JSON"):
            [page async for page in listing]


async def test_a_list_record_beyond_its_column_is_quarantined_and_the_page_loads() -> None:
    orders = [esimtrade_order(n) for n in range(12, 0, -1)]
    orders[3]["quantity"] = 10**20
    fake = FakeESIMTrade(orders)
    async with fake.client(page_size=10) as client:
        listing = client.iter_orders()
        loaded = [order async for page in listing for order in page.items]
        [item] = client.quarantine.drain()
    assert len(loaded) == 11 and listing.stats.complete is True
    assert item.kind == "out_of_range" and item.page == 1
    assert json.loads(item.raw)["providerOrderNo"] == orders[3]["providerOrderNo"]


async def test_the_walk_limits_stop_a_walk_with_a_reason() -> None:
    fake = FakeESIMTrade([esimtrade_order(n) for n in range(100, 0, -1)])
    async with fake.client(page_size=10, max_pages=4) as client:
        listing = client.iter_orders()
        pages = [page async for page in listing]
    assert len(pages) == 4 and listing.stats.complete is False
    assert listing.stats.limit_reached == "max_pages (4) reached"

    fake.delay = 0.05
    async with fake.client(page_size=10, max_walk_seconds=0.12, max_concurrency=1) as client:
        listing = client.iter_orders()
        pages = [page async for page in listing]
    assert listing.stats.limit_reached is not None
    assert listing.stats.limit_reached.startswith("walk time limit (0.12 s) reached")
    assert len(pages) < 10 and listing.stats.complete is False
