"""Async client of the PressOne eSIM API, a white label of Airalo Partner API v2
(provider-apis.md §2)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

import httpx
from tenacity import AsyncRetrying, RetryCallState

from ._base import KeyFetch, ProviderClient
from ._errors import AuthError, NotFoundError, PayloadShapeError, ValidationError
from ._paging import (
    DEFAULT_MAX_PAGES,
    DEFAULT_MAX_PASSES,
    DEFAULT_MAX_WALK_SECONDS,
    LaravelPaginator,
    Listing,
)
from ._payload import PayloadLimits, unwrap_resource
from ._ratelimit import BatchStream
from ._records import PressOneOrder, PressOneUsage, PressOneUsageResult
from ._retry import RetryPolicy
from ._scalars import as_float, utc_now

__all__ = ["PressOneClient"]

R = TypeVar("R")

API = "/customer/v2"
TOKEN_PATH = f"{API}/token"
ORDERS_PATH = f"{API}/orders"

# Used when the token response has no usable expires_in: the shorter of the documented lifetimes.
DEFAULT_TOKEN_LIFETIME = 24 * 3600.0
# Token requests one call may make after 401s, and 401s one call may meet
# (see PressOneClient._authenticate).
MAX_TOKEN_RENEWALS = 3
MAX_401_RETRIES = 10
# 401s one call may meet in all, counting tokens that had worked before (early expiries).
MAX_401_ATTEMPTS = 60
# Token renewals forced by 401s, client-wide, with no authorized success in between: beyond
# this the provider is taken to reject every token it issues (see _TokenCache).
MAX_FORCED_RENEWALS = 5
# The same once any token of this client has worked: the credentials are good, and fresh tokens
# that die before their first answer are early expiries racing concurrent requests.
MAX_FORCED_RENEWALS_AFTER_SUCCESS = 30
# The error of a usage answer whose ``data`` is empty (a "not_found" outcome).
NO_USAGE_DATA = "usage body holds no data"
# Earliest date used when only the end of a created_at range is given.
OPEN_RANGE_START = date(2000, 1, 1)


def _parse_token(body: Any) -> tuple[str, float | None]:
    inner = unwrap_resource(body)
    if (
        isinstance(inner, dict)
        and "access_token" not in inner
        and isinstance(inner.get("data"), dict)
    ):
        inner = inner["data"]
    if not isinstance(inner, dict):
        raise PayloadShapeError("token body without a data object")
    token = inner.get("access_token")
    if not isinstance(token, str) or not token:
        raise PayloadShapeError("token body without an access_token")
    lifetime = as_float(inner.get("expires_in"))
    return token, lifetime if lifetime is not None and lifetime > 0 else None


def _parse_order(body: Any) -> PressOneOrder:
    return PressOneOrder.from_json(unwrap_resource(body))


def _parse_usage(iccid: str, body: Any) -> PressOneUsage | None:
    """The usage of ``iccid``, or ``None`` for an empty ``data`` (how PressOne says
    "unknown")."""
    data = unwrap_resource(body)
    if isinstance(data, list):
        if not data:
            return None
        if len(data) != 1 or not isinstance(data[0], dict):
            raise PayloadShapeError("usage data is a list but not of exactly one object")
        data = data[0]
    if not isinstance(data, dict):
        raise PayloadShapeError("usage body without a data object")
    return PressOneUsage.from_json(iccid, data)


class _TokenCache:
    """One bearer token shared by all callers of a client.

    A lock makes concurrent callers share a single token request. The token is renewed
    ``margin`` seconds before ``expires_in`` elapses (10 % of the lifetime, at most 5 min),
    and after a 401 only if nobody renewed it since the rejected token was read.

    Renewals forced by 401s are counted until an authorized request succeeds; past
    ``max_forced`` in a row, :meth:`refresh` declines (returns ``None``): the provider issues
    tokens it then rejects, and asking for more would only exhaust the token endpoint's quota.
    A rejected token that was accepted before has expired early: that says nothing against the
    credentials, so it starts the count afresh; and once any token has worked, the cap is
    higher (``MAX_FORCED_RENEWALS_AFTER_SUCCESS``).
    """

    def __init__(
        self, fetch: Callable[[], Awaitable[tuple[str, float | None]]], *, max_forced: int
    ) -> None:
        self._fetch = fetch
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self._max_forced = max_forced
        self._forced_in_a_row = 0
        self._proven = False  # the current token has been accepted at least once
        self.worked = False  # some token of this client has been accepted: credentials are good

    def _current(self) -> str | None:
        """The cached token while it is not due for renewal."""
        return self._token if time.monotonic() < self._renew_at else None

    async def get(self) -> str:
        token = self._current()
        if token is not None:
            return token
        async with self._lock:
            return self._current() or await self._renew()

    async def refresh(self, rejected: str) -> tuple[str, bool] | None:
        """``(token, renewed)``: a token to try instead of ``rejected``, and whether this call
        had to ask for it; ``None`` when renewals keep being rejected."""
        async with self._lock:
            current = self._current()
            if current is not None and current != rejected:
                return current, False
            if rejected == self._token and self._proven:
                self._forced_in_a_row = 0
            cap = MAX_FORCED_RENEWALS_AFTER_SUCCESS if self.worked else self._max_forced
            if self._forced_in_a_row >= cap:
                return None
            self._forced_in_a_row += 1
            return await self._renew(), True

    async def current_if_replaced(self, rejected: str) -> str | None:
        """The current token if another caller already renewed ``rejected``, else ``None``."""
        async with self._lock:
            current = self._current()
            return current if current != rejected else None

    def accepted(self, token: str) -> None:
        """An authorized request with ``token`` succeeded: the credentials work."""
        self._forced_in_a_row = 0
        if token == self._token:
            self._proven = True
        self.worked = True

    async def _renew(self) -> str:
        token, lifetime = await self._fetch()
        lifetime = lifetime or DEFAULT_TOKEN_LIFETIME
        self._token = token
        self._proven = False
        self._renew_at = time.monotonic() + lifetime - min(lifetime * 0.1, 300.0)
        return token


class PressOneClient(ProviderClient):
    """PressOne API client; use as ``async with PressOneClient(...) as client``.

    Requests go to ``{base_url}/customer/v2/...`` with ``Accept: application/json`` and a
    cached bearer token (see :class:`_TokenCache`). At most ``max_concurrency`` requests are in
    flight; ``requests_per_minute=None`` leaves them unpaced (usage quotas are per ICCID, and a
    usage 429 only delays that ICCID).
    """

    provider: ClassVar[str] = "pressone"

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_concurrency: int = 8,
        requests_per_minute: float | None = None,
        page_size: int = 50,
        max_pages: int = DEFAULT_MAX_PAGES,
        max_passes: int = DEFAULT_MAX_PASSES,
        max_walk_seconds: float = DEFAULT_MAX_WALK_SECONDS,
        limits: PayloadLimits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url,
            paginator=LaravelPaginator(page_size),
            secrets=(client_secret,),
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
        self._client_id = client_id
        self._client_secret = client_secret
        self._tokens = _TokenCache(self._request_token, max_forced=MAX_FORCED_RENEWALS)

    # --- token -------------------------------------------------------------------------------

    async def _request_token(self) -> tuple[str, float | None]:
        form = {
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "grant_type": "client_credentials",
        }
        self._engine.stats.token_requests += 1
        try:
            token, lifetime = await self._engine.request(
                "POST",
                TOKEN_PATH,
                parse=_parse_token,
                headers={"Accept": "application/json"},
                form=form,
                pause_scope="request",
                # Every request needs the token: it gets a list page's patience.
                retry=self._engine.retry.for_lists(),
            )
        except ValidationError as exc:
            # 400/422 from the token endpoint means the credentials were refused.
            raise AuthError(
                exc.message,
                provider=exc.provider,
                endpoint=exc.endpoint,
                status_code=exc.status_code,
            ) from None
        self._engine.add_secret(token)
        return token, lifetime

    async def _authenticate(self, send: Callable[[Mapping[str, str]], Awaitable[R]]) -> R:
        """Send with the bearer token; a 401 renews the rejected token once and tries again.

        Each rejected token is renewed once for all concurrent callers, so a call that meets a
        401 usually just picks up the token another caller already renewed. A token can also
        expire early twice in a row, so a call may itself ask for up to ``MAX_TOKEN_RENEWALS``
        tokens (and meet at most ``MAX_401_RETRIES`` 401s). AuthError comes sooner when the
        provider keeps rejecting fresh tokens (the cache stops after ``MAX_FORCED_RENEWALS``
        renewals in a row without a success). Transient failures are retried inside each
        attempt by the engine.
        """
        token = await self._tokens.get()
        renewals = 0
        refusals = 0  # 401s before any token of this client ever worked

        async def send_with_token() -> R:
            return await send({"Accept": "application/json", "Authorization": f"Bearer {token}"})

        async def another_token_after_401(state: RetryCallState) -> bool:
            """Retry a 401 with a token other than the rejected one, if one can be had."""
            nonlocal token, renewals, refusals
            outcome = state.outcome
            exc = outcome.exception() if outcome is not None and outcome.failed else None
            if not isinstance(exc, AuthError) or exc.status_code != 401:
                return False
            # Once the credentials have worked, a 401 is an early expiry (tokens churn while
            # concurrent requests race them), not a refusal: only refusals count against the
            # call's small budget; the cache's cap on renewals without a success still holds.
            expired = self._tokens.worked
            refusals += not expired
            if refusals > MAX_401_RETRIES or state.attempt_number > MAX_401_ATTEMPTS:
                return False
            if expired or renewals < MAX_TOKEN_RENEWALS:
                fresh = await self._tokens.refresh(token)
                if fresh is None:
                    return False
                token, renewed = fresh
                renewals += renewed and not expired
                return True
            replacement = await self._tokens.current_if_replaced(token)
            if replacement is None:
                return False
            token = replacement
            return True

        result = await AsyncRetrying(
            retry=another_token_after_401, sleep=asyncio.sleep, reraise=True
        )(send_with_token)
        self._tokens.accepted(token)
        return result

    # --- orders ------------------------------------------------------------------------------

    def iter_orders(
        self,
        *,
        created_from: date | None = None,
        created_to: date | None = None,
        include: Sequence[str] = ("sims", "status"),
        order_status: str | None = None,
        code: str | None = None,
        iccid: str | None = None,
        description: str | None = None,
    ) -> Listing[PressOneOrder]:
        """Pages of ``GET /customer/v2/orders`` (newest first), drift-safe and de-duplicated
        by order ``id`` (see ``_paging``); ``.stats`` describes the walk.

        ``created_from``/``created_to`` become ``filter[created_at]=FROM - TO`` (inclusive);
        an open end is filled with 2000-01-01 or tomorrow (UTC), since the provider's own
        time zone is unknown. Raises :class:`ProviderError` subclasses when a page cannot be
        fetched after retries.
        """
        filters: dict[str, str] = {}
        if include:
            filters["include"] = ",".join(include)
        if created_from is not None or created_to is not None:
            start = created_from or OPEN_RANGE_START
            end = created_to or (datetime.now(UTC).date() + timedelta(days=1))
            if start > end:
                raise ValueError("created_from is after created_to")
            filters["filter[created_at]"] = f"{start.isoformat()} - {end.isoformat()}"
        for name, value in (
            ("order_status", order_status),
            ("code", code),
            ("iccid", iccid),
            ("description", description),
        ):
            if value is not None:
                filters[f"filter[{name}]"] = value
        return self._listing(
            ORDERS_PATH, filters, parse_item=PressOneOrder.from_json, key=lambda order: order.id
        )

    async def get_order(
        self, order_id: int, *, include: Sequence[str] = ("sims", "user", "status")
    ) -> PressOneOrder | None:
        """``GET /customer/v2/orders/{id}``; ``None`` on 404."""
        params = {"include": ",".join(include)} if include else None
        try:
            return await self._get(
                f"{ORDERS_PATH}/{int(order_id)}", parse=_parse_order, params=params
            )
        except NotFoundError:
            return None

    # --- usage -------------------------------------------------------------------------------

    async def get_usage(self, iccid: str, *, deadline: float | None = None) -> PressOneUsageResult:
        """``GET /customer/v2/sims/{iccid}/usage``. Never raises for a per-ICCID failure:
        404 (or an empty ``data``) gives ``"not_found"``, anything still failing after retries
        ``"failed"``. Raises :class:`AuthError` (credentials rejected)."""
        path = f"{API}/sims/{quote(iccid, safe='')}/usage"
        fetched = await self._for_key(
            self._get(
                path, parse=partial(_parse_usage, iccid), pause_scope="request", deadline=deadline
            )
        )
        if fetched.outcome == "ok" and fetched.value is None:
            fetched = KeyFetch(outcome="not_found", http_status=200, error=NO_USAGE_DATA)
        return PressOneUsageResult(
            iccid=iccid,
            outcome=fetched.outcome,
            http_status=fetched.http_status,
            usage=fetched.value,
            error=fetched.error,
            fetched_at=utc_now(),
        )

    def usage_many(
        self,
        iccids: Iterable[str],
        *,
        budget_requests: int | None = None,
        deadline: float | None = None,
        start_by: float | None = None,
    ) -> BatchStream[PressOneUsageResult]:
        """Usage of many ICCIDs concurrently, yielding results as they complete; same
        budget/deadline/start_by rules as :meth:`ESIMTradeClient.sync_many`."""
        return self._batch(
            iccids,
            lambda iccid, limit: self.get_usage(iccid, deadline=limit),
            budget_requests=budget_requests,
            deadline=deadline,
            start_by=start_by,
        )
