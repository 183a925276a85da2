"""eSIMTrade endpoints over real HTTP on loopback."""

from __future__ import annotations

import math
import time

import httpx
import pytest

from pipelines.simulator import Limit, RateLimits, generate_dataset, serve

from ._support import ET_HEADERS


@pytest.fixture(scope="module")
def sim():
    dataset = generate_dataset(7, 400, drift_orders=4)
    with serve(dataset, rate_limits=RateLimits.unlimited()) as running:
        yield running


@pytest.fixture
def client(sim):
    with httpx.Client(base_url=sim.esimtrade_base_url, headers=ET_HEADERS, timeout=5) as http:
        yield http


def test_env_points_at_the_server(sim):
    env = sim.env()
    assert env["ESIMTRADE_BASE_URL"] == f"http://127.0.0.1:{sim.port}/esimtrade/api/v1"
    assert env["PRESSONE_BASE_URL"] == f"http://127.0.0.1:{sim.port}/pressone"
    assert (
        env["ESIMTRADE_ACCESS_CODE"] == "sim-access"
        and env["ESIMTRADE_SECRET_KEY"] == "sim-secret-key-0001"
    )
    assert (
        env["PRESSONE_CLIENT_ID"] == "sim-client"
        and env["PRESSONE_CLIENT_SECRET"] == "sim-client-secret-0001"
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-access-code": "sim-access"},
        {"x-access-code": "sim-access", "x-secret-key": "wrong"},
        {"Authorization": "Bearer sim-secret-key-0001"},
    ],
)
def test_auth_is_required(sim, headers):
    for path in ("/reseller/orders", "/portal/orders?orderno=B1"):
        answer = httpx.get(sim.esimtrade_base_url + path, headers=headers)
        assert answer.status_code == 401
        assert set(answer.json()) == {"error"} and answer.json()["error"]


def test_paging_totals_and_order(sim, client):
    dataset = sim.dataset
    first = client.get("/reseller/orders").json()
    assert first["page"] == 1 and first["pageSize"] == 20 and len(first["orders"]) == 20
    assert first["total"] == len(dataset.esimtrade)
    seen = []
    pages = math.ceil(first["total"] / 100)
    for page in range(1, pages + 1):
        body = client.get("/reseller/orders", params={"page": page, "pageSize": 100}).json()
        assert body["total"] == first["total"] and body["pageSize"] == 100
        seen += [order["providerOrderNo"] for order in body["orders"]]
    assert len(seen) == len(set(seen)) == first["total"]
    assert seen == [esim.order_no for esim in dataset.esimtrade]  # newest first
    beyond = client.get("/reseller/orders", params={"page": pages + 1, "pageSize": 100}).json()
    assert beyond["orders"] == [] and beyond["total"] == first["total"]
    clamped = client.get("/reseller/orders", params={"pageSize": 500}).json()
    assert clamped["pageSize"] == 100 and len(clamped["orders"]) == 100
    assert client.get("/reseller/orders", params={"page": 0}).status_code == 400
    assert client.get("/reseller/orders", params={"pageSize": "x"}).status_code == 400


def test_list_row_shape(client):
    row = client.get("/reseller/orders", params={"pageSize": 1}).json()["orders"][0]
    assert {
        "providerOrderNo",
        "slug",
        "packageCode",
        "packageName",
        "locationCode",
        "status",
        "quantity",
        "costPrice",
        "sellPrice",
        "totalSellPrice",
    } <= set(row)
    assert row["status"] == row["status"].lower()
    for price in ("costPrice", "sellPrice", "totalSellPrice"):
        assert isinstance(row[price], str) and float(row[price]) > 0


def test_list_filters(sim, client):
    body = client.get("/reseller/orders", params={"status": "cancel", "pageSize": 100}).json()
    expected = [e.order_no for e in sim.dataset.esimtrade if e.stored_status == "cancel"]
    assert body["total"] == len(expected) > 0
    assert [o["providerOrderNo"] for o in body["orders"]] == expected[:100]
    target = sim.dataset.esimtrade[10]
    body = client.get("/reseller/orders", params={"q": target.order_no}).json()
    assert [o["providerOrderNo"] for o in body["orders"]] == [target.order_no]


def test_sync_needs_exactly_one_parameter(client):
    for params in ({}, {"orderno": "B1", "iccid": "89"}, {"orderno": ""}):
        answer = client.get("/portal/orders", params=params)
        assert answer.status_code == 400 and "error" in answer.json()


def test_sync_unknown_is_404(client):
    for params in ({"orderno": "B26010100000001"}, {"iccid": "8900000000000000000"}):
        answer = client.get("/portal/orders", params=params)
        assert answer.status_code == 404 and set(answer.json()) == {"error"}


def test_sync_body_and_stored_copy(sim, client):
    lagging = next(
        e
        for e in sim.dataset.esimtrade
        if e.stored_status != e.esim_status.lower() and not e.poisoned
    )
    listed = client.get("/reseller/orders", params={"q": lagging.order_no}).json()["orders"][0]
    assert listed["status"] == lagging.stored_status
    by_iccid = client.get("/portal/orders", params={"iccid": lagging.iccid}).json()["data"]
    assert by_iccid["orderNo"] == lagging.order_no
    again = client.get("/reseller/orders", params={"q": lagging.order_no}).json()["orders"][0]
    assert again["status"] == listed["status"]  # a sync by ICCID leaves the stored copy alone
    data = client.get("/portal/orders", params={"orderno": lagging.order_no}).json()["data"]
    assert data["esimTranNo"] == lagging.order_no[1:] and data["iccid"] == lagging.iccid
    assert isinstance(data["totalVolume"], int) and isinstance(data["orderUsage"], int)
    assert data["packageList"][0]["packageCode"] == lagging.package.code
    synced = client.get("/reseller/orders", params={"q": lagging.order_no}).json()["orders"][0]
    assert synced["status"] == data["esimStatus"].lower() != listed["status"]


def test_allocating_orders_have_nulls(sim, client):
    pending = [
        e
        for e in sim.dataset.esimtrade
        if e.esim_status in ("CREATE", "PAYING", "PAID", "GETTING_RESOURCE")
    ]
    shapes = set()
    for esim in pending:
        data = client.get("/portal/orders", params={"orderno": esim.order_no}).json()["data"]
        assert data.get("iccid") is None and data.get("totalVolume") is None
        shapes.add("iccid" in data)
    assert shapes == {True, False}  # some send null, some leave the field out


def test_reused_iccid_answers_with_the_newest(sim, client):
    shared = next(esims for esims in sim.dataset.esimtrade_by_iccid.values() if len(esims) > 1)
    newest = max(shared, key=lambda e: e.created_at)
    data = client.get("/portal/orders", params={"iccid": newest.iccid}).json()["data"]
    assert data["orderNo"] == newest.order_no


def test_poisoned_sync_always_fails(sim, client):
    poisoned = next(e for e in sim.dataset.esimtrade if e.poisoned)
    for _ in range(3):
        answer = client.get("/portal/orders", params={"orderno": poisoned.order_no})
        assert answer.status_code == 500 and "error" in answer.json()
    assert sim.stats.planted_failures["esimtrade.sync"] >= 3


def test_rate_limit_answers_429_with_retry_after():
    dataset = generate_dataset(7, 50)
    limits = RateLimits(esimtrade=Limit(3, 60.0))
    with serve(dataset, rate_limits=limits) as running, httpx.Client(headers=ET_HEADERS) as http:
        statuses = [
            http.get(running.esimtrade_base_url + "/reseller/orders").status_code for _ in range(3)
        ]
        assert statuses == [200, 200, 200]
        limited = http.get(running.esimtrade_base_url + "/reseller/orders")
        assert limited.status_code == 429
        assert limited.json() == {"error": "rate limited"}
        assert int(limited.headers["retry-after"]) >= 1
        assert (
            running.stats.responses_429 == 1 and running.stats.rate_limited["esimtrade.list"] == 1
        )


def test_token_bucket_refills():
    dataset = generate_dataset(7, 50)
    with (
        serve(dataset, rate_limits=RateLimits(esimtrade=Limit(2, 0.2))) as running,
        httpx.Client(headers=ET_HEADERS) as http,
    ):
        url = running.esimtrade_base_url + "/reseller/orders"
        assert [http.get(url).status_code for _ in range(3)] == [200, 200, 429]
        time.sleep(0.25)
        assert http.get(url).status_code == 200


def test_latency_option():
    dataset = generate_dataset(7, 50)
    with serve(dataset, latency_ms=150, rate_limits=RateLimits.unlimited()) as running:
        started = time.perf_counter()
        httpx.get(running.esimtrade_base_url + "/reseller/orders", headers=ET_HEADERS)
        assert time.perf_counter() - started >= 0.15
