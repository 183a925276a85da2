"""Async client of the eSIMTrade reseller API (provider-apis.md §1)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, ClassVar, Literal, TypeVar

import httpx

from ._base import ProviderClient
from ._errors import PayloadShapeError
from ._paging import (
    DEFAULT_MAX_PAGES,
    DEFAULT_MAX_PASSES,
    DEFAULT_MAX_WALK_SECONDS,
    Listing,
    TotalPageSizePaginator,
)
from ._payload import PayloadLimits
from ._ratelimit import BatchStream
from ._records import ESIMTradeEsim, ESIMTradeListedOrder, ESIMTradeSyncResult
from ._retry import RetryPolicy
from ._scalars import utc_now

__all__ = ["ESIMTradeClient"]

R = TypeVar("R")

SYNC_PATH = "/portal/orders"
LIST_PATH = "/reseller/orders"


def _parse_esims(body: Any) -> tuple[ESIMTradeEsim, ...]:
    if not isinstance(body, dict) or "data" not in body:
        raise PayloadShapeError("sync body without 'data'")
    data = body["data"]
    if data is None:
        return ()
    if isinstance(data, dict):
        return (ESIMTradeEsim.from_json(data),)
    if isinstance(data, list):
        return tuple(ESIMTradeEsim.from_json(item) for item in data)
    raise PayloadShapeError("sync 'data' is neither an object nor a list")


class ESIMTradeClient(ProviderClient):
    """eSIMTrade reseller API client; use as ``async with ESIMTradeClient(...) as client``.

    ``base_url`` includes ``/api/v1``. Every request carries ``x-access-code`` and
    ``x-secret-key``. Requests share one connection pool, at most ``max_concurrency`` in
    flight, paced to ``requests_per_minute`` (``None``: unpaced), and a 429 pauses them all.
    """

    provider: ClassVar[str] = "esimtrade"

    def __init__(
        self,
        base_url: str,
        access_code: str,
        secret_key: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_concurrency: int = 8,
        requests_per_minute: float | None = 120,
        page_size: int = 100,
        max_pages: int = DEFAULT_MAX_PAGES,
        max_passes: int = DEFAULT_MAX_PASSES,
        max_walk_seconds: float = DEFAULT_MAX_WALK_SECONDS,
        limits: PayloadLimits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url,
            paginator=TotalPageSizePaginator(page_size),
            secrets=(secret_key, access_code),
            timeout=timeout,
            retry=retry,
            max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute,
            max_pages=max_pages,
            max_passes=max_passes,
            transport=transport,
            limits=limits,
            max_walk_seconds=max_walk_seconds,
        )
        self._headers = {
            "Accept": "application/json",
            "x-access-code": access_code,
            "x-secret-key": secret_key,
        }

    async def _authenticate(self, send: Callable[[Mapping[str, str]], Awaitable[R]]) -> R:
        return await send(self._headers)

    # --- stored order list -------------------------------------------------------------------

    def iter_orders(
        self, *, status: str | None = None, q: str | None = None
    ) -> Listing[ESIMTradeListedOrder]:
        """Pages of ``GET /reseller/orders`` (newest first), drift-safe and de-duplicated by
        ``providerOrderNo`` (see ``_paging``); ``.stats`` describes the walk. Raises
        :class:`ProviderError` subclasses when a page cannot be fetched after retries."""
        filters = {
            name: value for name, value in (("status", status), ("q", q)) if value is not None
        }
        return self._listing(
            LIST_PATH,
            filters,
            parse_item=ESIMTradeListedOrder.from_json,
            key=lambda order: order.provider_order_no,
        )

    # --- per-order sync ----------------------------------------------------------------------

    async def sync_order(
        self, order_no: str, *, deadline: float | None = None
    ) -> ESIMTradeSyncResult:
        """Live status of one order (``GET /portal/orders?orderno=``). Never raises for a
        per-order failure: 404 gives ``"not_found"``, anything still failing after retries
        ``"failed"``. Raises :class:`AuthError` (credentials rejected)."""
        return await self._sync("orderno", order_no, deadline)

    async def sync_iccid(self, iccid: str, *, deadline: float | None = None) -> ESIMTradeSyncResult:
        """Like :meth:`sync_order`, by ICCID (``GET /portal/orders?iccid=``)."""
        return await self._sync("iccid", iccid, deadline)

    def sync_many(
        self,
        order_nos: Iterable[str],
        *,
        budget_requests: int | None = None,
        deadline: float | None = None,
        start_by: float | None = None,
    ) -> BatchStream[ESIMTradeSyncResult]:
        """Sync many orders concurrently (within the client's concurrency and rate limit),
        yielding results as they complete. Duplicate order numbers are synced once.

        No new sync starts once ``deadline`` (``time.monotonic()`` seconds) has passed or the
        syncs have used ``budget_requests`` HTTP requests (checked before each start, so
        retries of syncs in flight can exceed it slightly); retries never run past the
        deadline. ``start_by`` only stops new syncs from starting: those in flight finish
        with their usual retries (a graceful stop for a per-run time budget). Keys never
        started are listed in ``.stats.skipped``. :class:`AuthError` aborts the batch.
        """
        return self._batch(
            order_nos,
            lambda order_no, limit: self._sync("orderno", order_no, limit),
            budget_requests=budget_requests,
            deadline=deadline,
            start_by=start_by,
        )

    async def _sync(
        self, by: Literal["orderno", "iccid"], value: str, deadline: float | None
    ) -> ESIMTradeSyncResult:
        fetched = await self._for_key(
            self._get(SYNC_PATH, parse=_parse_esims, params={by: value}, deadline=deadline)
        )
        return ESIMTradeSyncResult(
            requested_by=by,
            requested=value,
            outcome=fetched.outcome,
            http_status=fetched.http_status,
            esims=fetched.value or (),
            error=fetched.error,
            error_body=fetched.error_body,
            fetched_at=utc_now(),
        )
