"""Async client of the eSIMTrade reseller API (provider-apis.md §1)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import httpx

from ._errors import AuthError, PayloadShapeError, ProviderError, excerpt
from ._http import ClientStats, HttpEngine, describe_endpoint
from ._paging import (
    DEFAULT_MAX_PAGES,
    DEFAULT_MAX_PASSES,
    FetchedPage,
    Listing,
    TotalPageSizePaginator,
)
from ._ratelimit import BatchStream, RequestGate
from ._records import ESIMTradeEsim, ESIMTradeListedOrder, ESIMTradeSyncResult, utc_now
from ._retry import RetryPolicy

__all__ = ["ESIMTradeClient"]

PROVIDER = "esimtrade"
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


class ESIMTradeClient:
    """eSIMTrade reseller API client; use as ``async with ESIMTradeClient(...) as client``.

    ``base_url`` includes ``/api/v1``. Every request carries ``x-access-code`` and
    ``x-secret-key``. Requests share one connection pool, at most ``max_concurrency`` in
    flight, paced to ``requests_per_minute`` (``None``: unpaced), and a 429 pauses them all.
    """

    provider = PROVIDER

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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._paginator = TotalPageSizePaginator(page_size)
        self._max_pages = max_pages
        self._max_passes = max_passes
        self._headers = {
            "Accept": "application/json",
            "x-access-code": access_code,
            "x-secret-key": secret_key,
        }
        self._engine = HttpEngine(
            provider=PROVIDER,
            base_url=self.base_url,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            gate=RequestGate(
                max_concurrency=max_concurrency, requests_per_minute=requests_per_minute
            ),
            transport=transport,
            secrets=(secret_key, access_code),
        )

    def __repr__(self) -> str:
        return f"ESIMTradeClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> ESIMTradeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._engine.aclose()

    @property
    def stats(self) -> ClientStats:
        """Counters: ``requests`` (retries included), ``retries``, ``rate_limited`` (429s)."""
        return self._engine.stats

    # --- stored order list -------------------------------------------------------------------

    def iter_orders(
        self, *, status: str | None = None, q: str | None = None
    ) -> Listing[ESIMTradeListedOrder]:
        """Pages of ``GET /reseller/orders`` (newest first), drift-safe and de-duplicated by
        ``providerOrderNo`` (see ``_paging``); ``.stats`` describes the walk. Raises
        :class:`ProviderError` subclasses when a page cannot be fetched after retries."""
        filters: dict[str, str] = {}
        if status is not None:
            filters["status"] = status
        if q is not None:
            filters["q"] = q

        async def fetch(number: int) -> FetchedPage:
            params = {**self._paginator.params(number), **filters}
            info = await self._engine.request(
                "GET", LIST_PATH, parse=self._paginator.parse, params=params, headers=self._headers
            )
            return FetchedPage(number, info, utc_now(), describe_endpoint(LIST_PATH, params))

        return Listing(
            fetch,
            parse_item=ESIMTradeListedOrder.from_json,
            key=lambda order: order.provider_order_no,
            page_size=self._paginator.page_size,
            window=self._engine.gate.max_concurrency,
            max_pages=self._max_pages,
            max_passes=self._max_passes,
            label=f"{PROVIDER} {LIST_PATH}",
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
    ) -> BatchStream[ESIMTradeSyncResult]:
        """Sync many orders concurrently (within the client's concurrency and rate limit),
        yielding results as they complete. Duplicate order numbers are synced once.

        No new sync starts once ``deadline`` (``time.monotonic()`` seconds) has passed or the
        syncs have used ``budget_requests`` HTTP requests (checked before each start, so
        retries of syncs in flight can exceed it slightly); retries never run past the
        deadline. Keys never started are listed in ``.stats.skipped``. :class:`AuthError`
        aborts the batch.
        """
        return BatchStream(
            order_nos,
            lambda order_no, limit: self._sync("orderno", order_no, limit),
            window=self._engine.gate.max_concurrency,
            deadline=deadline,
            budget_requests=budget_requests,
            requests_used=lambda: self._engine.stats.requests,
        )

    async def _sync(
        self, by: Literal["orderno", "iccid"], value: str, deadline: float | None
    ) -> ESIMTradeSyncResult:
        params: dict[str, str] = {by: value}
        try:
            esims = await self._engine.request(
                "GET",
                SYNC_PATH,
                parse=_parse_esims,
                params=params,
                headers=self._headers,
                deadline=deadline,
            )
        except AuthError:
            raise
        except ProviderError as exc:
            body = getattr(exc, "body", None) if exc.status_code == 404 else None
            return ESIMTradeSyncResult(
                requested_by=by,
                requested=value,
                outcome="not_found" if exc.status_code == 404 else "failed",
                http_status=exc.status_code,
                esims=(),
                error=excerpt(str(exc), self._engine.secrets, 300),
                error_body=body,
                fetched_at=utc_now(),
            )
        return ESIMTradeSyncResult(
            requested_by=by,
            requested=value,
            outcome="ok",
            http_status=200,
            esims=esims,
            error=None,
            error_body=None,
            fetched_at=utc_now(),
        )
