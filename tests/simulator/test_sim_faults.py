"""Injected faults: each kind observable, reproducible, capped, and survivable."""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime

import httpx
import pytest

from pipelines.simulator import (
    FaultConfig,
    FaultKind,
    RateLimits,
    Spoil,
    SpoilKind,
    generate_dataset,
    serve,
)
from pipelines.simulator.faults import TRANSPORT_KINDS, FaultEngine, Limit, request_key

from ._support import ET_HEADERS, TOKEN_FORM, Walker, plain, token

FAST = {"stall_seconds": 0.6}


@pytest.fixture(scope="module")
def dataset():
    return generate_dataset(7, 200, drift_orders=10)


def _serve(dataset, kind, **options):
    return serve(
        dataset,
        rate_limits=RateLimits.unlimited(),
        faults=FaultConfig.only(kind, **{**FAST, **options}),
    )


def _list(sim, client, page=2):
    return client.get(
        sim.esimtrade_base_url + "/reseller/orders",
        params={"page": page, "pageSize": 10},
        headers=ET_HEADERS,
    )


@pytest.mark.parametrize(
    ("kind", "header"),
    [
        (FaultKind.RETRY_AFTER_SECONDS, "1"),
        (FaultKind.RETRY_AFTER_ZERO, "0"),
        (FaultKind.RETRY_AFTER_DATE, "date"),
        (FaultKind.RETRY_AFTER_MISSING, None),
    ],
)
def test_429_variants(dataset, kind, header):
    with _serve(dataset, kind) as sim, httpx.Client() as client:
        answer = _list(sim, client)
        assert answer.status_code == 429 and answer.json() == {"error": "rate limited"}
        value = answer.headers.get("retry-after")
        if header == "date":
            assert parsedate_to_datetime(value).tzinfo is not None
        else:
            assert value == header
        usage_iccid = next(i for i, r in sim.dataset.pressone_usage.items() if not r.poisoned)
        answer = client.get(
            f"{sim.pressone_base_url}/customer/v2/sims/{usage_iccid}/usage",
            headers={"Authorization": f"Bearer {token(client, sim)}"},
        )
        assert answer.status_code == 429 and answer.json() == {"message": "Too Many Attempts."}
        assert sim.stats.faults[kind] == 2 and sim.stats.responses_429 == 2


@pytest.mark.parametrize(
    ("kind", "status", "content_type"),
    [
        (FaultKind.HTTP_500, 500, "application/json"),
        (FaultKind.HTTP_502, 502, "text/html"),
        (FaultKind.HTTP_503, 503, "application/json"),
        (FaultKind.HTTP_504, 504, "text/html"),
    ],
)
def test_server_errors(dataset, kind, status, content_type):
    with _serve(dataset, kind) as sim, httpx.Client() as client:
        answer = _list(sim, client)
        assert answer.status_code == status and answer.headers["content-type"].startswith(
            content_type
        )
        assert sim.stats.faults[kind] == 1


def test_stall_outlasts_the_client_timeout(dataset):
    with _serve(dataset, FaultKind.STALL) as sim, httpx.Client(timeout=0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            _list(sim, client)
        assert sim.stats.faults[FaultKind.STALL] == 1


def test_disconnect_mid_response(dataset):
    with _serve(dataset, FaultKind.DISCONNECT) as sim, httpx.Client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            _list(sim, client)
        assert sim.stats.faults[FaultKind.DISCONNECT] == 1
        with pytest.raises(httpx.RemoteProtocolError):
            _list(sim, client)
        assert _list(sim, client).status_code == 200  # the third attempt always gets through


def test_truncated_json(dataset):
    with _serve(dataset, FaultKind.TRUNCATED_JSON) as sim, httpx.Client() as client:
        answer = _list(sim, client)
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
        with pytest.raises(json.JSONDecodeError):
            answer.json()
        assert int(answer.headers["content-length"]) == len(answer.content)
        assert sim.stats.faults[FaultKind.TRUNCATED_JSON] == 1


def test_token_expires_early_until_renewed(dataset):
    with (
        _serve(dataset, FaultKind.TOKEN_EXPIRY, max_consecutive=1) as sim,
        httpx.Client() as client,
    ):
        url = sim.pressone_base_url + "/customer/v2/orders"
        old = token(client, sim)
        assert client.get(url, headers={"Authorization": f"Bearer {old}"}).status_code == 401
        # the same token stays refused, even for a request that draws no fault
        assert (
            client.get(
                url, params={"page": 1}, headers={"Authorization": f"Bearer {old}"}
            ).status_code
            == 401
        )
        new = token(client, sim)
        assert client.get(url, headers={"Authorization": f"Bearer {new}"}).status_code == 200
        assert sim.stats.faults[FaultKind.TOKEN_EXPIRY] == 1


def test_token_endpoint_rate_limit_fault(dataset):
    with _serve(dataset, FaultKind.TOKEN_THROTTLED) as sim, httpx.Client() as client:
        url = sim.pressone_base_url + "/customer/v2/token"
        statuses = [client.post(url, files=TOKEN_FORM).status_code for _ in range(3)]
        assert statuses == [429, 429, 200]  # never more than max_consecutive in a row


def test_duplicate_row_on_next_page(dataset):
    with _serve(dataset, FaultKind.DUPLICATE_ROW) as sim, httpx.Client() as client:
        first = _list(sim, client, page=1).json()["orders"]
        second = _list(sim, client, page=2).json()["orders"]
        assert second[0] == first[-1] and len(second) == 11
        bearer = {"Authorization": f"Bearer {token(client, sim)}"}
        url = sim.pressone_base_url + "/customer/v2/orders"
        one = client.get(url, params={"limit": 10, "page": 1}, headers=bearer).json()["data"]
        two = client.get(url, params={"limit": 10, "page": 2}, headers=bearer).json()["data"]
        assert two[0]["id"] == one[-1]["id"]


def test_drift_inserts_at_the_head(dataset):
    with _serve(dataset, FaultKind.LIST_DRIFT) as sim, httpx.Client() as client:
        hidden = [e.order_no for e in sim.dataset.esimtrade if e.drift]
        first = _list(sim, client, page=1).json()
        assert not set(hidden) & {o["providerOrderNo"] for o in first["orders"]}
        assert first["total"] == len(sim.dataset.esimtrade) - len(hidden)
        second = _list(sim, client, page=2).json()
        shift = second["total"] - first["total"]
        assert 1 <= shift <= 3
        # the page moved under the client: it starts with rows it has already seen
        assert [o["providerOrderNo"] for o in second["orders"][:shift]] == [
            o["providerOrderNo"] for o in first["orders"][-shift:]
        ]
        again = _list(sim, client, page=1).json()["orders"]
        assert [o["providerOrderNo"] for o in again[:shift]] == hidden[len(hidden) - shift :]
        assert again[shift:] == first["orders"][: 10 - shift]
        # the last page reveals whatever is still hidden
        last_page = -(-second["total"] // 10)
        final = _list(sim, client, page=last_page).json()
        assert final["total"] == len(sim.dataset.esimtrade)
        # eSIMTrade has nothing hidden left; PressOne, never listed here, still hides its own
        pressone_drift = sum(o.drift for o in sim.dataset.pressone)
        assert sim.state.hidden == {"esimtrade": 0, "pressone": pressone_drift} and pressone_drift


def test_drift_off_shows_everything_from_the_start(dataset):
    with serve(dataset, rate_limits=RateLimits.unlimited()) as sim, httpx.Client() as client:
        first = _list(sim, client, page=1).json()
        assert first["total"] == len(sim.dataset.esimtrade)
        assert first["orders"][0]["providerOrderNo"] == sim.dataset.esimtrade[0].order_no


def _decisions(keys, seed, kinds=(FaultKind.HTTP_500, FaultKind.STALL, FaultKind.DISCONNECT)):
    engine = FaultEngine(FaultConfig.uniform(0.6), seed=seed)
    outcome: dict[tuple[str, str, str], list[FaultKind | None]] = {}
    for key in keys:
        outcome.setdefault(key, []).append(engine.decide(key, kinds)[0])
    return outcome


def test_decisions_are_reproducible_and_capped():
    keys = [request_key("GET", f"/p/{n}", [("page", "2")]) for n in range(200)]
    interleaved = [key for key in keys for _ in range(6)]
    grouped = [key for _ in range(6) for key in keys]
    outcome = _decisions(interleaved, seed=3)
    assert _decisions(grouped, seed=3) == outcome  # other requests do not change a key's faults
    assert _decisions(interleaved, seed=4) != outcome
    assert any(faults[0] is not None and faults[1] is not None for faults in outcome.values())
    for faults in outcome.values():
        for window in zip(faults, faults[1:], faults[2:], strict=False):
            assert None in window  # never three faults in a row


def test_uniform_rate_spreads_over_kinds():
    engine = FaultEngine(FaultConfig.uniform(0.3, max_consecutive=100), seed=1)
    counts: dict[object, int] = {}
    for n in range(6000):
        kind, _ = engine.decide(request_key("GET", "/x", [("n", str(n))]), TRANSPORT_KINDS)
        counts[kind] = counts.get(kind, 0) + 1
    assert 0.26 < 1 - counts[None] / 6000 < 0.34
    assert set(counts) == {None, *TRANSPORT_KINDS}


def _read_everything(sim):
    walker = Walker(sim, timeout=0.4)
    try:
        esimtrade = walker.esimtrade_list(page_size=20)
        pressone = walker.pressone_list(limit=20)
        syncs = {
            no: walker.call("esimtrade", "/portal/orders", {"orderno": no})
            for no in sorted(esimtrade)
        }
        iccids = sorted({s["iccid"] for order in pressone.values() for s in order["sims"]})
        usage = {}
        for iccid in iccids:
            status, body = walker.call("pressone", f"/sims/{iccid}/usage")
            usage[iccid] = (status, plain(body)["data"] if body else None)
        return {
            "esimtrade": esimtrade,
            "pressone": pressone,
            "syncs": syncs,
            "usage": usage,
        }, walker.retries
    finally:
        walker.close()


def test_a_faulty_run_reads_the_same_data_as_a_clean_run():
    clean_world = generate_dataset(21, 160, drift_orders=12)
    faulty_world = generate_dataset(21, 160, drift_orders=12)
    with serve(clean_world, rate_limits=RateLimits.unlimited()) as sim:
        clean, clean_retries = _read_everything(sim)
    faults = FaultConfig.uniform(0.3, stall_seconds=0.5, retry_after_seconds=0)
    with serve(
        faulty_world, rate_limits=RateLimits.unlimited(), faults=faults, pressone_envelope="wrapped"
    ) as sim:
        faulty, faulty_retries = _read_everything(sim)
        served = sim.stats.faults
    planted_failures = sum(
        1 for p in clean_world.ground_truth()["planted"] if p["discrepancy_type"] == "sync_failed"
    )
    assert clean_retries == 6 * planted_failures  # a clean run only retries the planted failures
    assert faulty_retries > clean_retries + 20
    assert {
        FaultKind.LIST_DRIFT,
        FaultKind.STALL,
        FaultKind.DISCONNECT,
        FaultKind.TRUNCATED_JSON,
    } <= set(served)
    assert faulty == clean
    truth = clean_world.ground_truth()
    assert len(clean["esimtrade"]) == truth["counts"]["esimtrade_list_orders"]
    assert len(clean["pressone"]) == truth["counts"]["pressone_orders"]
    failed_syncs = {no for no, (status, _) in clean["syncs"].items() if status == 500}
    planted = {
        p["order_no"]
        for p in truth["planted"]
        if p["discrepancy_type"] == "sync_failed" and p["provider"] == "esimtrade"
    }
    assert failed_syncs == planted


def test_faults_limited_to_some_endpoints_leave_the_others_alone(dataset):
    faults = FaultConfig(
        rates={FaultKind.HTTP_503: 1.0},
        max_consecutive=5,
        endpoints=frozenset({"esimtrade.list"}),
    )
    with (
        serve(dataset, rate_limits=RateLimits.unlimited(), faults=faults) as sim,
        httpx.Client() as client,
    ):
        statuses = [_list(sim, client, page=1).status_code for _ in range(7)]
        order_no = dataset.esimtrade[0].order_no
        sync = client.get(
            sim.esimtrade_base_url + "/portal/orders",
            params={"orderno": order_no},
            headers=ET_HEADERS,
        )
    # Five faults in a row at most, then the answer; the sync endpoint never faulted.
    assert statuses == [503] * 5 + [200, 503]
    assert sync.status_code == 200
    assert sim.stats.faults[FaultKind.HTTP_503] == 6


def test_usage_limited_to_one_request_per_sim_per_fifteen_minutes(dataset):
    limits = RateLimits(None, None, Limit(1, 900.0), None)
    iccids = [i for i, record in dataset.pressone_usage.items() if not record.poisoned][:2]
    with serve(dataset, rate_limits=limits) as sim, httpx.Client() as client:
        bearer = {"Authorization": f"Bearer {token(client, sim)}"}
        url = sim.pressone_base_url + "/customer/v2/sims/{}/usage"
        first = client.get(url.format(iccids[0]), headers=bearer)
        again = client.get(url.format(iccids[0]), headers=bearer)
        other = client.get(url.format(iccids[1]), headers=bearer)
    assert first.status_code == 200 and other.status_code == 200
    assert again.status_code == 429
    assert again.json() == {"message": "Too Many Attempts."}
    # Laravel's throttle: wait the rest of the 15 minutes, nothing left until the reset.
    assert 890 <= int(again.headers["Retry-After"]) <= 900
    assert again.headers["X-RateLimit-Limit"] == "1"
    assert again.headers["X-RateLimit-Remaining"] == "0"


# --- spoiled answers --------------------------------------------------------------------------


def _spoiled(dataset, *spoils):
    return serve(dataset, rate_limits=RateLimits.unlimited(), faults=FaultConfig(spoils=spoils))


def _sync(sim, client, order_no):
    return client.get(
        sim.esimtrade_base_url + "/portal/orders", params={"orderno": order_no}, headers=ET_HEADERS
    )


def test_spoils_hit_the_requests_they_name_as_often_as_told(dataset):
    order_no = next(e.order_no for e in dataset.esimtrade if not e.poisoned)
    other = next(e.order_no for e in dataset.esimtrade if not e.poisoned and e.order_no != order_no)
    spoil = Spoil(SpoilKind.HUGE_INTEGER, "esimtrade.sync", match=f"orderno={order_no}", times=2)
    with _spoiled(dataset, spoil) as sim, httpx.Client() as client:
        first, second, third = (_sync(sim, client, order_no) for _ in range(3))
        assert first.json()["data"]["orderUsage"] == 10**20 == second.json()["data"]["orderUsage"]
        assert third.json()["data"]["orderUsage"] != 10**20
        assert _sync(sim, client, other).json()["data"]["orderNo"] == other
        assert sim.stats.faults["spoil:huge_integer"] == 2


def test_each_spoil_kind_changes_the_answer_as_documented(dataset):
    order_no = next(e.order_no for e in dataset.esimtrade if not e.poisoned)
    spoils = (
        Spoil(SpoilKind.DEEP_NESTING, "esimtrade.sync", depth=5000),
        Spoil(SpoilKind.NOT_JSON, "esimtrade.sync"),
        Spoil(SpoilKind.HUGE_BODY, "esimtrade.sync", size=100_000),
        Spoil(SpoilKind.CONTROL_CHARACTERS, "esimtrade.sync"),
        Spoil(SpoilKind.HUGE_AMOUNT, "esimtrade.list"),
        Spoil(SpoilKind.ABSURD_ECHO, "esimtrade.list", echo=-7),
        Spoil(SpoilKind.ABSURD_ECHO, "pressone.orders"),
    )
    with _spoiled(dataset, *spoils) as sim, httpx.Client() as client:
        deep = _sync(sim, client, order_no)
        assert deep.content.startswith(b'{"data":' + b"[" * 5000)
        page = _sync(sim, client, order_no)
        assert page.status_code == 200 and page.headers["content-type"] == "text/html"
        huge = _sync(sim, client, order_no)
        assert len(huge.content) >= 100_000 and huge.json()["data"]["orderNo"] == order_no
        assert "\x00" in _sync(sim, client, order_no).json()["data"]["iccid"]
        listed = _list(sim, client).json()
        assert listed["orders"][0]["costPrice"] == "100000000000000000000.00"
        echoed = _list(sim, client).json()
        assert echoed["page"] == echoed["pageSize"] == -7 and echoed["orders"]
        orders = client.get(
            sim.pressone_base_url + "/customer/v2/orders",
            params={"page": 2, "limit": 10},
            headers={"Authorization": f"Bearer {token(client, sim)}"},
        ).json()
        assert orders["meta"]["current_page"] == orders["meta"]["per_page"] == 10**18


def test_a_spoil_for_an_endpoint_it_cannot_spoil_is_refused():
    with pytest.raises(ValueError, match="cannot spoil"):
        Spoil(SpoilKind.HUGE_AMOUNT, "esimtrade.sync")
    with pytest.raises(ValueError, match="list pages only"):
        Spoil(SpoilKind.ABSURD_ECHO, "pressone.usage")
