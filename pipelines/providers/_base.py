"""What both provider clients share: the request engine and its lifecycle, the drift-safe
listing of a paged endpoint, and batches of per-key GETs whose per-key failures become
results instead of exceptions.

A client names its ``provider``, builds its paginator and says how it authenticates a
request (:meth:`ProviderClient._authenticate`); the rest lives here once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeVar

import httpx

from ._errors import (
    AuthError,
    BadPayloadError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    excerpt,
)
from ._http import ClientStats, HttpEngine, PauseScope, RateLimitWait, describe_endpoint
from ._paging import DEFAULT_MAX_WALK_SECONDS, FetchedPage, Listing, PageInfo, Paginator
from ._payload import PayloadLimits, QuarantineBox, quarantine_record
from ._ratelimit import BatchStream, RequestGate
from ._records import Outcome
from ._retry import RetryPolicy
from ._scalars import utc_now

__all__ = ["KeyFetch", "ProviderClient"]

R = TypeVar("R")
T = TypeVar("T")

# Length of the redacted error description a per-key result carries.
ERROR_CHARS = 300


@dataclass(frozen=True, slots=True)
class KeyFetch(Generic[R]):
    """One key's GET: ``value`` when ``outcome`` is ``"ok"``; otherwise a short redacted
    ``error`` and, for a 404, its redacted JSON ``error_body``."""

    outcome: Outcome
    http_status: int | None
    value: R | None = None
    error: str | None = None
    error_body: dict[str, Any] | None = None


class ProviderClient(ABC):
    """Base of the provider clients; use a client as ``async with Client(...) as client``.

    Requests share one connection pool, at most ``max_concurrency`` in flight, paced to
    ``requests_per_minute`` (``None``: unpaced). ``secrets`` are masked in every error and
    log line.
    """

    provider: ClassVar[str]

    def __init__(
        self,
        base_url: str,
        *,
        paginator: Paginator,
        secrets: tuple[str, ...],
        timeout: float,
        retry: RetryPolicy | None,
        max_concurrency: int,
        requests_per_minute: float | None,
        max_pages: int,
        max_passes: int,
        transport: httpx.AsyncBaseTransport | None,
        limits: PayloadLimits | None = None,
        max_walk_seconds: float = DEFAULT_MAX_WALK_SECONDS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._paginator = paginator
        self._max_pages = max_pages
        self._max_passes = max_passes
        self._max_walk_seconds = max_walk_seconds
        self._engine = HttpEngine(
            provider=self.provider,
            base_url=self.base_url,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            gate=RequestGate(
                max_concurrency=max_concurrency, requests_per_minute=requests_per_minute
            ),
            transport=transport,
            secrets=secrets,
            limits=limits,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._engine.aclose()

    def on_rate_limit_wait(self, listener: Callable[[RateLimitWait], None] | None) -> None:
        """Call ``listener`` each time a request waits on the provider's rate limit (for a
        "waiting for a rate limit" progress line); ``None`` stops it."""
        self._engine.on_wait = listener

    @property
    def pace(self) -> float | None:
        """Requests per minute the client paces itself to now, as learned from the provider's
        429s (``None``: unpaced)."""
        return self._engine.gate.requests_per_minute

    def on_pacing_wait(self, callback: Callable[[float], None]) -> None:
        """Call ``callback(seconds)`` whenever the rate limit (pacing to
        ``requests_per_minute`` or a pause the provider asked for) holds a request back
        for a second or more."""
        self._engine.gate.on_wait = callback

    @property
    def stats(self) -> ClientStats:
        """Counters: ``requests`` (retries included), ``retries``, ``rate_limited`` (429s)
        and, for PressOne, ``token_requests``."""
        return self._engine.stats

    @property
    def quarantine(self) -> QuarantineBox:
        """Answers and records this client refused (too large, too deep, not JSON, values
        beyond their column), kept as received with the reason; the caller drains them."""
        return self._engine.quarantine

    @abstractmethod
    async def _authenticate(self, send: Callable[[Mapping[str, str]], Awaitable[R]]) -> R:
        """``await send(headers)`` with this provider's credentials in ``headers``."""

    async def _get(
        self,
        path: str,
        *,
        parse: Callable[[Any], R],
        params: Mapping[str, str] | None = None,
        pause_scope: PauseScope = "client",
        deadline: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> R:
        """An authenticated GET through the engine (see :meth:`HttpEngine.request`)."""

        async def send(headers: Mapping[str, str]) -> R:
            return await self._engine.request(
                "GET",
                path,
                parse=parse,
                params=params,
                headers=headers,
                pause_scope=pause_scope,
                deadline=deadline,
                retry=retry,
            )

        return await self._authenticate(send)

    def _listing(
        self,
        path: str,
        filters: Mapping[str, str],
        *,
        parse_item: Callable[[Any], T],
        key: Callable[[T], Hashable],
    ) -> Listing[T]:
        """The drift-safe :class:`Listing` of the paged endpoint ``path``; each page gets the
        list patience (:meth:`RetryPolicy.for_lists`)."""
        patient = self._engine.retry.for_lists()

        async def fetch(number: int) -> FetchedPage:
            params = self._paginator.params(number, filters)
            endpoint = describe_endpoint(path, params)
            try:
                info = await self._get(
                    path, parse=self._paginator.parse, params=params, retry=patient
                )
            except BadPayloadError as exc:
                # Its answers are in quarantine; the walk goes on without the page.
                return FetchedPage(number, PageInfo(items=()), utc_now(), endpoint, error=exc)
            return FetchedPage(number, info, utc_now(), endpoint)

        def reject(page: FetchedPage, item: Any, error: Exception) -> None:
            self._engine.quarantine.add(
                quarantine_record(
                    item,
                    provider=self.provider,
                    source_endpoint=page.source_endpoint,
                    http_status=200,
                    kind=getattr(error, "kind", "bad_shape"),
                    reason=excerpt(str(error), self._engine.secrets, ERROR_CHARS),
                    fetched_at=page.fetched_at,
                    secrets=self._engine.secrets,
                    page=page.number,
                )
            )

        return Listing(
            fetch,
            parse_item=parse_item,
            key=key,
            page_size=self._paginator.page_size,
            window=self._engine.gate.max_concurrency,
            max_pages=self._max_pages,
            max_passes=self._max_passes,
            max_seconds=self._max_walk_seconds,
            label=f"{self.provider} {path}",
            on_reject=reject,
        )

    async def _for_key(self, request: Awaitable[R]) -> KeyFetch[R]:
        """Await the request of one key of a batch (a :meth:`_get`): a 404, or a failure
        that outlasted the retries, is returned as a :class:`KeyFetch`; :class:`AuthError`
        still raises (it concerns every key), and so does :class:`RateLimitedError`: the
        provider still limits the key when the time is up, which is not a failure of the key
        (a batch leaves it for the next run)."""
        try:
            value = await request
        except (AuthError, RateLimitedError):
            raise
        except ProviderError as exc:
            return KeyFetch(
                outcome="not_found" if exc.status_code == 404 else "failed",
                http_status=exc.status_code,
                error=excerpt(str(exc), self._engine.secrets, ERROR_CHARS),
                error_body=exc.body if isinstance(exc, NotFoundError) else None,
            )
        return KeyFetch(outcome="ok", http_status=200, value=value)

    def _batch(
        self,
        keys: Iterable[str],
        worker: Callable[[str, float | None], Coroutine[Any, Any, R]],
        *,
        budget_requests: int | None,
        deadline: float | None,
        start_by: float | None = None,
    ) -> BatchStream[R]:
        """``worker(key, deadline)`` over ``keys`` within the client's concurrency, the
        request budget counted on this client's requests. Waiting on the provider's rate limit
        ends at ``start_by`` (or ``deadline``): keys still limited then are deferred."""
        self._engine.patience = start_by if start_by is not None else deadline
        return BatchStream(
            keys,
            worker,
            window=self._engine.gate.max_concurrency,
            deadline=deadline,
            start_by=start_by,
            budget_requests=budget_requests,
            requests_used=lambda: self._engine.stats.requests,
            deferrable=RateLimitedError,
            parking=self._engine.parking,
        )
