"""Async HTTP clients of the eSIM providers (eSIMTrade, PressOne).

The clients speak the APIs described in ``provider-apis.md``: they retry transient failures
(:class:`RetryPolicy`), respect rate limits across concurrent workers, page lists safely while
they change (:class:`Listing`), and return typed, frozen records that keep the raw payload.
Failures surface as :class:`ProviderError` subclasses, whose messages never contain secrets.

    async with ESIMTradeClient(url, access_code, secret_key) as client:
        async for page in client.iter_orders():
            ...
        async for result in client.sync_many(order_numbers):
            ...
"""

from __future__ import annotations

from ._errors import (
    AuthError,
    BadPayloadError,
    ConflictError,
    NotFoundError,
    PaymentRequiredError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    ValidationError,
    redact,
    register_secret,
)
from ._http import ClientStats, RateLimitWait
from ._paging import DEFAULT_MAX_PAGES, DEFAULT_MAX_WALK_SECONDS, Listing, ListingStats
from ._payload import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_JSON_DEPTH,
    PayloadLimits,
    QuarantineBox,
)
from ._ratelimit import BatchStats, BatchStream, deadline_in
from ._records import (
    ESIMTradeEsim,
    ESIMTradeListedOrder,
    ESIMTradeSyncResult,
    Outcome,
    Page,
    PressOneOrder,
    PressOneSim,
    PressOneUsage,
    PressOneUsageResult,
    Quarantined,
)
from ._retry import RetryPolicy, parse_retry_after
from .esimtrade import ESIMTradeClient
from .pressone import PressOneClient

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_JSON_DEPTH",
    "DEFAULT_MAX_PAGES",
    "DEFAULT_MAX_WALK_SECONDS",
    "AuthError",
    "BadPayloadError",
    "BatchStats",
    "BatchStream",
    "ClientStats",
    "ConflictError",
    "ESIMTradeClient",
    "ESIMTradeEsim",
    "ESIMTradeListedOrder",
    "ESIMTradeSyncResult",
    "Listing",
    "ListingStats",
    "NotFoundError",
    "Outcome",
    "Page",
    "PayloadLimits",
    "PaymentRequiredError",
    "PressOneClient",
    "PressOneOrder",
    "PressOneSim",
    "PressOneUsage",
    "PressOneUsageResult",
    "ProviderError",
    "ProviderUnavailableError",
    "QuarantineBox",
    "Quarantined",
    "RateLimitWait",
    "RateLimitedError",
    "RetryPolicy",
    "ValidationError",
    "deadline_in",
    "parse_retry_after",
    "redact",
    "register_secret",
]
