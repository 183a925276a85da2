from __future__ import annotations

import dataclasses
import json
import logging
import pickle
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import pytest
from providers_fakes import USAGE, esimtrade_esim, esimtrade_order, pressone_order

from pipelines.providers import (
    ESIMTradeEsim,
    ESIMTradeListedOrder,
    PressOneOrder,
    PressOneUsage,
    ProviderError,
    RateLimitedError,
    RetryPolicy,
    parse_retry_after,
    redact,
    register_secret,
)
from pipelines.providers._errors import PayloadShapeError, excerpt
from pipelines.providers._payload import quarantine_record
from pipelines.providers._scalars import as_datetime


def test_listed_order_parses_prices_and_keeps_unknown_fields() -> None:
    raw = esimtrade_order(1, costPrice="1.20", sellPrice=2.5, totalSellPrice=None, newField=[1])
    order = ESIMTradeListedOrder.from_json(raw)
    assert order.provider_order_no == "B26022703140001"
    assert order.cost_price == Decimal("1.20")
    assert order.sell_price == Decimal("2.5")
    assert order.total_sell_price is None
    assert order.status == "got_resource"
    assert order.raw["newField"] == [1]
    assert order.raw is raw


def test_listed_order_without_key_is_rejected() -> None:
    with pytest.raises(PayloadShapeError):
        ESIMTradeListedOrder.from_json({"status": "in_use"})


def test_esim_tolerates_allocating_profile_with_nulls_and_missing_fields() -> None:
    raw = {
        "esimTranNo": "26022703140001",
        "orderNo": "B26022703140001",
        "iccid": None,
        "imsi": None,
        "smdpStatus": None,
        "esimStatus": "GETTING_RESOURCE",
        "totalVolume": None,
        "packageList": None,
        "brandNewField": {"x": 1},
    }
    esim = ESIMTradeEsim.from_json(raw)
    assert esim.esim_status == "GETTING_RESOURCE"
    assert esim.iccid is None and esim.total_volume is None and esim.order_usage is None
    assert esim.package_code is None and esim.package_codes == ()
    assert esim.raw["brandNewField"] == {"x": 1}


def test_esim_full_payload_and_all_package_codes() -> None:
    raw = esimtrade_esim(
        "B26022703140001",
        packageList=[
            {"packageName": "Base", "packageCode": "P1", "slug": "s1"},
            {"packageName": "Top-up", "packageCode": "P2", "slug": "s2"},
        ],
        totalVolume="524288000",
    )
    esim = ESIMTradeEsim.from_json(raw)
    assert esim.esim_tran_no == "26022703140001"
    assert esim.total_volume == 524_288_000
    assert esim.package_code == "P1" and esim.package_slug == "s1"
    assert esim.package_codes == ("P1", "P2")


def test_pressone_order_dates_status_and_sims() -> None:
    order = PressOneOrder.from_json(pressone_order(7))
    assert order.id == 7 and order.code == "20230227-000007"
    assert order.created_at == datetime(2026, 2, 27, 3, 14, 1, tzinfo=UTC)
    assert order.status_slug == "completed" and order.status_name == "Completed"
    assert order.price == Decimal("1.50")
    assert order.sims[0].iccid == "8985200000000000007"
    assert order.sims[0].created_at is not None
    assert order.raw["user"] == {"id": 1, "name": "Reseller"}


def test_pressone_order_tolerates_plain_status_and_iso_dates() -> None:
    raw = pressone_order(8, status="Partially Refunded", created_at="2026-02-27T04:14:01+01:00")
    raw["sims"] = None
    order = PressOneOrder.from_json(raw)
    assert order.status_slug == "partially_refunded"
    assert order.status_name == "Partially Refunded"
    assert order.created_at == datetime(2026, 2, 27, 3, 14, 1, tzinfo=UTC)
    assert order.sims == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01 00:00:00", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T00:00:00Z", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T00:00:00.000000Z", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01", datetime(2026, 1, 1, tzinfo=UTC)),
        ("0000-00-00 00:00:00", None),
        ("", None),
        (None, None),
    ],
)
def test_datetime_forms(text: str | None, expected: datetime | None) -> None:
    assert as_datetime(text) == expected


def test_usage_parsing_and_recycled_zeros() -> None:
    usage = PressOneUsage.from_json(
        "8948010000095399804",
        {
            "remaining": "767",
            "total": 2048,
            "is_unlimited": False,
            "status": "ACTIVE",
            "expired_at": "2026-01-01 00:00:00",
            "remaining_voice": 0,
            "remaining_text": 0,
            "total_voice": 0,
            "total_text": 0,
            "extra": True,
        },
    )
    assert usage.remaining == 767.0 and usage.total == 2048.0
    assert usage.is_unlimited is False
    assert usage.expired_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert usage.raw["extra"] is True
    recycled = PressOneUsage.from_json("89", {"remaining": None, "total": 0, "status": "RECYCLED"})
    assert recycled.remaining is None and recycled.expired_at is None


@pytest.mark.parametrize(
    "record",
    [
        ESIMTradeListedOrder.from_json(esimtrade_order(1)),
        ESIMTradeEsim.from_json(esimtrade_esim("B26022703140001")),
        PressOneOrder.from_json(pressone_order(1)),
        PressOneOrder.from_json(pressone_order(1)).sims[0],
        PressOneUsage.from_json("8948010000095399804", USAGE),
    ],
    ids=lambda record: type(record).__name__,
)
def test_a_full_payload_fills_every_field(record: Any) -> None:
    # Plain fields are read from the key their name gives (camelCase for eSIMTrade): a
    # field whose key is not derived right would stay None.
    empty = [f.name for f in dataclasses.fields(record) if getattr(record, f.name) is None]
    assert empty == []


def test_records_repr_is_short_and_hashable() -> None:
    order = ESIMTradeListedOrder.from_json(esimtrade_order(1))
    assert "raw" not in repr(order)
    assert hash(order) == hash(ESIMTradeListedOrder.from_json(esimtrade_order(1)))


def test_redact_masks_given_registered_and_credential_fragments() -> None:
    text = 'key sk-abc123 and "access_token": "eyJhbGciOi.xyz" and Bearer abc.def-ghi'
    out = redact(text, ["sk-abc123"])
    assert "sk-abc123" not in out
    assert "eyJhbGciOi" not in out
    assert "abc.def-ghi" not in out


def test_a_quarantined_record_is_masked_value_by_value_and_stays_json() -> None:
    # A secret as short as "b" must not cut through the "\u001b" escape of a control character.
    record = {
        "providerOrderNo": "B1",
        "status": "89\x00\x1b[2J",
        "note": "paid by card sk-abc123",
        "access_token": "eyJhbGciOi.xyz",
    }
    item = quarantine_record(
        record,
        provider="esimtrade",
        source_endpoint="/reseller/orders?page=1&pageSize=5",
        http_status=200,
        kind="control_characters",
        reason="status holds control characters",
        fetched_at=datetime(2026, 1, 1, tzinfo=UTC),
        secrets=("b", "sk-abc123"),
    )
    kept = json.loads(item.raw)
    assert kept["providerOrderNo"] == "B1" and kept["status"] == "89\x00\x1b[2J"
    assert kept["note"] == "paid ***y card ***" and kept["access_token"] == "***"


def test_excerpt_redacts_before_truncating() -> None:
    secret = "s3cr3t-value-that-is-long"
    text = "x" * 190 + secret
    out = excerpt(text, [secret], limit=200)
    assert "s3cr3t" not in out and len(out) <= 200


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0", 0.0),
        ("3", 3.0),
        ("1.5", 1.5),
        (" 2 ", 2.0),
        ("-4", 0.0),
        ("soon", None),
        (None, None),
        ("", None),
        ("nan", None),
    ],
)
def test_parse_retry_after_numbers(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_dates() -> None:
    now = datetime(2026, 2, 27, 3, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    earlier = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now) == pytest.approx(30.0)
    assert parse_retry_after(earlier, now=now) == 0.0


def test_backoff_is_positive_bounded_and_grows() -> None:
    policy = RetryPolicy(initial_wait=0.5, max_wait=30.0, jitter=0.5)
    assert policy.backoff(1, rng=lambda: 0.999999) > 0
    assert policy.backoff(1, rng=lambda: 0.0) == 0.5
    assert policy.backoff(4, rng=lambda: 0.0) == 4.0
    assert policy.backoff(20, rng=lambda: 0.0) == 30.0
    with pytest.raises(ValueError):
        RetryPolicy(jitter=1.0)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_errors_survive_pickling_with_their_attributes() -> None:
    error = RateLimitedError(
        "esimtrade GET /portal/orders: HTTP 429",
        provider="esimtrade",
        endpoint="/portal/orders?orderno=B1",
        status_code=429,
        retry_after=2.5,
        retryable=True,
    )
    error.attempts = 6
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is RateLimitedError
    assert (copy.provider, copy.endpoint, copy.status_code, copy.retry_after) == (
        "esimtrade",
        "/portal/orders?orderno=B1",
        429,
        2.5,
    )
    assert str(copy) == str(error) and str(copy).endswith("(after 6 attempts)")
    assert isinstance(copy, ProviderError)


def test_providers_logger_masks_registered_secrets(caplog: pytest.LogCaptureFixture) -> None:
    register_secret("reg-secret-5566")
    caplog.set_level(logging.INFO, "esim_recon.providers")
    logging.getLogger("esim_recon.providers").info("oops %s", "reg-secret-5566")
    assert "reg-secret-5566" not in caplog.text and "oops ***" in caplog.text
