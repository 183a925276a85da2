"""PressOne endpoints over real HTTP on loopback, in both success envelopes."""

from __future__ import annotations

import math
import time
from datetime import datetime

import httpx
import pytest

from pipelines.simulator import Limit, RateLimits, generate_dataset, serve

from ._support import TOKEN_FORM, plain, token


@pytest.fixture(scope="module", params=["plain", "wrapped"])
def sim(request):
    dataset = generate_dataset(7, 400)
    with serve(
        dataset, rate_limits=RateLimits.unlimited(), pressone_envelope=request.param
    ) as running:
        yield running


@pytest.fixture(scope="module")
def client(sim):
    with httpx.Client(base_url=sim.pressone_base_url + "/customer/v2", timeout=5) as http:
        http.headers.update(
            {"Authorization": f"Bearer {token(http, sim)}", "Accept": "application/json"}
        )
        yield http


def _body(answer: httpx.Response, envelope: str) -> dict:
    body = answer.json()
    if envelope == "wrapped":
        assert body["success"] is True and body["code"] == "0000" and body["message"] == "success"
        assert body["timestamp"].endswith("Z")
        return body["data"]
    assert "success" not in body
    return body


def _envelope(sim) -> str:
    return sim.state.envelope


def test_token(sim):
    answer = httpx.post(sim.pressone_base_url + "/customer/v2/token", files=TOKEN_FORM)
    data = _body(answer, _envelope(sim))["data"]
    assert (
        data["token_type"] == "Bearer" and data["expires_in"] == 31_622_400 and data["access_token"]
    )


def test_token_errors(sim):
    url = sim.pressone_base_url + "/customer/v2/token"
    wrong = {**TOKEN_FORM, "client_secret": (None, "nope")}
    answer = httpx.post(url, files=wrong)
    assert answer.status_code == 401
    body = answer.json()
    assert body["success"] is False and body["data"] is None and body["code"] and body["timestamp"]
    incomplete = {"client_id": (None, "sim-client")}
    assert httpx.post(url, files=incomplete).status_code == 422
    urlencoded = {name: value for name, (_, value) in TOKEN_FORM.items()}
    assert httpx.post(url, data=urlencoded).status_code == 200


def test_bearer_required(sim):
    url = sim.pressone_base_url + "/customer/v2/orders"
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        answer = httpx.get(url, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["success"] is False and answer.json()["message"]


def test_laravel_pagination(sim, client):
    envelope = _envelope(sim)
    dataset = sim.dataset
    first = _body(client.get("/orders", params={"limit": 50}), envelope)
    meta, links = first["meta"], first["links"]
    total = len(dataset.pressone)
    assert meta["per_page"] == "50" and isinstance(meta["per_page"], str)
    assert (
        meta["total"] == total
        and meta["current_page"] == 1
        and meta["from"] == 1
        and meta["to"] == 50
    )
    assert meta["last_page"] == math.ceil(total / 50)
    assert meta["path"].endswith("/pressone/customer/v2/orders")
    assert (
        links["prev"] is None
        and "page=2" in links["next"]
        and f"page={meta['last_page']}" in links["last"]
    )
    assert "limit=50" in links["next"]
    ids, url = [], links["first"]
    while url:
        page = _body(client.get(url), envelope)
        ids += [order["id"] for order in page["data"]]
        url = page["links"]["next"]
    assert ids == [order.id for order in dataset.pressone]  # newest first, every order once
    assert (
        page["meta"]["current_page"] == page["meta"]["last_page"] and page["links"]["next"] is None
    )
    assert page["meta"]["to"] == total


def test_include_subsets(sim, client):
    envelope = _envelope(sim)
    bare = _body(client.get("/orders", params={"limit": 1}), envelope)["data"][0]
    assert not {"sims", "user", "status"} & set(bare)
    assert {
        "id",
        "code",
        "created_at",
        "type",
        "package_id",
        "quantity",
        "price",
        "currency",
        "data",
        "validity",
    } <= set(bare)
    some = _body(client.get("/orders", params={"limit": 1, "include": "status,user"}), envelope)[
        "data"
    ][0]
    assert "sims" not in some and some["status"]["slug"] in (
        "completed",
        "failed",
        "refunded",
        "partially_refunded",
    )
    assert some["user"]["email"]
    full = _body(
        client.get("/orders", params={"limit": 5, "include": "sims,user,status"}), envelope
    )["data"]
    for order in full:
        datetime.strptime(order["created_at"], "%Y-%m-%d %H:%M:%S")
        assert (
            isinstance(order["id"], int)
            and isinstance(order["price"], str)
            and order["currency"] == "USD"
        )
        for sim_row in order["sims"]:
            assert {
                "id",
                "iccid",
                "lpa",
                "matching_id",
                "qrcode",
                "qrcode_url",
                "apn_type",
                "is_roaming",
            } <= set(sim_row)


def test_filters(sim, client):
    envelope = _envelope(sim)
    dataset = sim.dataset

    def codes(**params):
        body = _body(
            client.get("/orders", params={"limit": 100, "include": "sims,status", **params}),
            envelope,
        )
        return [order["code"] for order in body["data"]], body["meta"]["total"]

    target = next(o for o in dataset.pressone if o.type == "sim" and o.sims and o.description)
    assert codes(**{"filter[code]": target.code}) == ([target.code], 1)
    by_iccid, _ = codes(**{"filter[iccid]": target.sims[0].iccid})
    assert target.code in by_iccid
    found, total = codes(**{"filter[description]": target.description.upper()[:6]})
    assert target.code in found and total == sum(
        1
        for o in dataset.pressone
        if target.description.lower()[:6] in (o.description or "").lower()
    )
    _, total = codes(**{"filter[order_status]": "failed"})
    assert total == sum(1 for o in dataset.pressone if o.status == "failed") > 0
    day = target.created_at.strftime("%Y-%m-%d")
    found, total = codes(**{"filter[created_at]": f"{day} - {day}"})
    assert target.code in found
    assert total == sum(1 for o in dataset.pressone if o.created_at.strftime("%Y-%m-%d") == day)
    found, total = codes(
        **{"filter[created_at]": f"{day} - {day}", "filter[order_status]": target.status}
    )
    assert target.code in found
    topups = [o for o in dataset.pressone if o.type == "topup"]
    by_iccid, _ = codes(**{"filter[iccid]": topups[0].sims[0].iccid})
    assert topups[0].code in by_iccid and len(by_iccid) >= 2  # the sim order and its top-up
    assert client.get("/orders", params={"filter[created_at]": "yesterday"}).status_code == 422


def test_single_order(sim, client):
    envelope = _envelope(sim)
    order = next(o for o in sim.dataset.pressone if o.quantity == 2 and o.sims)
    body = _body(client.get(f"/orders/{order.id}", params={"include": "sims,status"}), envelope)
    assert body["meta"] == {"message": "success"}
    assert (
        body["data"]["code"] == order.code
        and len(body["data"]["sims"]) == 2
        and "user" not in body["data"]
    )
    missing = client.get("/orders/1")
    assert missing.status_code == 404 and missing.json()["success"] is False


def test_usage(sim, client):
    envelope = _envelope(sim)
    usage = sim.dataset.pressone_usage
    iccid = next(
        i
        for i, record in usage.items()
        if record.status == "ACTIVE" and not record.unlimited and not record.poisoned
    )
    body = _body(client.get(f"/sims/{iccid}/usage"), envelope)
    data = body["data"]
    assert body["meta"] == {"message": "success"}
    assert data["total"] == usage[iccid].total_mb and data["remaining"] == usage[iccid].remaining_mb
    assert data["status"] == "ACTIVE" and data["is_unlimited"] is False
    assert {"expired_at", "remaining_voice", "remaining_text", "total_voice", "total_text"} <= set(
        data
    )
    unlimited = next(i for i, record in usage.items() if record.unlimited and not record.poisoned)
    data = _body(client.get(f"/sims/{unlimited}/usage"), envelope)["data"]
    assert data["is_unlimited"] is True and data["total"] == 0 and data["remaining"] == 0


def test_usage_404_shape(sim, client):
    no_usage = next(
        s.iccid
        for o in sim.dataset.pressone
        if o.status == "completed"
        for s in o.sims
        if s.iccid not in sim.dataset.pressone_usage
    )
    for iccid in (no_usage, "8900000000000000000"):
        answer = client.get(f"/sims/{iccid}/usage")
        assert answer.status_code == 404
        assert answer.json() == {"data": [], "meta": {"message": "messages.resource_not_found"}}


def test_poisoned_usage_always_fails(sim, client):
    iccid = next(i for i, record in sim.dataset.pressone_usage.items() if record.poisoned)
    for _ in range(3):
        answer = client.get(f"/sims/{iccid}/usage")
        assert answer.status_code == 500 and answer.json()["success"] is False


def test_usage_rate_limit_is_per_iccid():
    dataset = generate_dataset(7, 100)
    limits = RateLimits(pressone=None, pressone_usage_per_iccid=Limit(2, 60.0), pressone_token=None)
    with (
        serve(dataset, rate_limits=limits) as running,
        httpx.Client(base_url=running.pressone_base_url + "/customer/v2") as http,
    ):
        http.headers["Authorization"] = "Bearer " + token(http, running)
        first, second = [i for i, r in dataset.pressone_usage.items() if not r.poisoned][:2]
        answers = [http.get(f"/sims/{first}/usage") for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert (
            answers[0].headers["x-ratelimit-limit"] == "2"
            and answers[0].headers["x-ratelimit-remaining"] == "1"
        )
        limited = answers[2]
        assert limited.json() == {"message": "Too Many Attempts."}
        assert int(limited.headers["retry-after"]) >= 1
        assert (
            limited.headers["x-ratelimit-remaining"] == "0"
            and int(limited.headers["x-ratelimit-reset"]) > 0
        )
        assert http.get(f"/sims/{second}/usage").status_code == 200


def test_token_endpoint_has_its_own_limit():
    dataset = generate_dataset(7, 50)
    limits = RateLimits(pressone_token=Limit(2, 60.0))
    with serve(dataset, rate_limits=limits) as running, httpx.Client() as http:
        url = running.pressone_base_url + "/customer/v2/token"
        statuses = [http.post(url, files=TOKEN_FORM).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        limited = http.post(url, files=TOKEN_FORM)
        assert (
            limited.json() == {"message": "Too Many Attempts."} and limited.headers["retry-after"]
        )


def test_token_expires_after_ttl():
    dataset = generate_dataset(7, 50)
    with (
        serve(dataset, token_ttl_seconds=1, rate_limits=RateLimits.unlimited()) as running,
        httpx.Client() as http,
    ):
        bearer = token(http, running)
        url = running.pressone_base_url + "/customer/v2/orders"
        assert http.get(url, headers={"Authorization": f"Bearer {bearer}"}).status_code == 200
        time.sleep(1.1)
        assert http.get(url, headers={"Authorization": f"Bearer {bearer}"}).status_code == 401
        assert (
            plain(
                http.post(running.pressone_base_url + "/customer/v2/token", files=TOKEN_FORM).json()
            )["data"]["expires_in"]
            == 1
        )
