"""Paging of the provider list endpoints, safe against lists that change while paged.

Paginators are small declarative classes: they build the page query and read a decoded body
into a :class:`PageInfo` (raw items plus whatever the body says about the list's length). The
request loop lives apart, in :class:`Listing`.

Why the loop is more than "follow next": both lists are newest first, and new orders are
inserted at the head while we page, so every later page shifts. A naive walk then sees some rows
twice (harmless once de-duplicated) and misses the new head rows; when pages are fetched in
parallel and complete out of order, a row can also slip from a page not yet read into one
already read. A filtered list (``status=``/``filter[order_status]``) can also lose rows while
paged, which shifts rows towards the head. And servers misbehave (ignore ``page``, repeat a
page, report a wrong total).

The scheme:

* **Pass 1** reads page 1, learns the length (``total``/``pageSize``, ``meta.last_page``,
  ``links.next``), then fetches the remaining pages concurrently, at most ``window`` in
  flight (the client's semaphore and rate limiter still apply), yielding pages as they
  complete. Without any length information it walks sequentially.
* **De-duplication**: one set of keys (``providerOrderNo``, PressOne ``id``) per listing; a
  yielded :class:`Page` holds only records not yielded before, so a consumer writing batches
  never writes a duplicate within one listing. Records that cannot be parsed are dropped and
  counted.
* **Stop rules** for a pass, besides reaching the last page: an empty page; a page past the last
  page, recomputed from the latest response (so a growing total extends the walk); a repeated
  page (its key sequence equals the previous or next page's: the server ignores ``page``);
  a short page when the length is unknown; two unreadable pages in a row when the length is
  unknown; and the walk's limits (``max_pages`` page requests and ``max_seconds``, all passes
  counted), which leave the listing incomplete.
* **Trust what was asked**: the page number and page size of the request, the rows received
  and the list's total decide the walk; a body's echo of the page or page size is ignored.
* **Unreadable pages** (answers refused until the retries ran out: too large, too deep, not
  JSON) are skipped and counted; the completeness passes ask for them again.
* **Completeness passes** (at most ``max_passes`` walks in all): if the total grew during a
  pass, or fewer unique rows were seen than the latest total, the head is re-read from page 1
  until a page holds only rows already seen (the new head rows). If still short of the total,
  or if the total shrank during a pass (rows moved towards the head), a full pass follows.
  A listing that is still short when the passes run out ends with a warning, and
  ``stats.complete`` is ``False``. (An insert and a removal in the same pass cancel out in the
  total and cannot be detected from the list alone.)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, Protocol, TypeVar

from ._errors import PayloadShapeError, ProviderError
from ._payload import unwrap_envelope
from ._records import Page
from ._scalars import as_int

__all__ = [
    "FetchedPage",
    "LaravelPaginator",
    "Listing",
    "ListingStats",
    "PageInfo",
    "Paginator",
    "TotalPageSizePaginator",
]

T = TypeVar("T")
logger = logging.getLogger("esim_recon.providers")

# Page requests one walk over a list may make (every pass counted): 2,000,000 orders at 100 a
# page, or three passes over 660,000.
DEFAULT_MAX_PAGES = 20_000
DEFAULT_MAX_PASSES = 3
# Seconds one walk over a list may take (every pass counted); no page is asked for after it.
DEFAULT_MAX_WALK_SECONDS = 3600.0
# Unreadable pages in a row after which a pass that does not know the list's length gives up.
MAX_UNREADABLE_IN_A_ROW = 2
NO_FILTERS: Mapping[str, str] = {}


@dataclass(frozen=True, slots=True)
class PageInfo:
    """What one list response says: raw items, and the list length where given.
    ``has_next`` is ``None`` when the body has no links. ``per_page`` is the page size the
    request asked for: the page and size a body echoes back are not trusted (a provider bug or
    a proxy can make them absurd, and the client knows what it asked)."""

    items: tuple[Any, ...]
    total: int | None = None
    last_page: int | None = None
    per_page: int | None = None
    has_next: bool | None = None

    def last_page_estimate(self, number: int) -> int | None:
        """Last page number as this response (page ``number``) sees it, or ``None``."""
        if self.has_next is False:
            return number
        estimate: int | None = None
        size = self._size_served(number)
        if self.total is not None and size:
            estimate = math.ceil(self.total / size)
        elif self.last_page is not None and self.last_page >= 0:
            estimate = self.last_page
        if self.has_next is True:
            estimate = max(estimate or 0, number + 1)
        return estimate

    def _size_served(self, number: int) -> int | None:
        """Rows per page: the size asked for, unless this page is short of it while rows are
        left after it (by the asked size and the total): the server then serves fewer rows per
        page than asked, and the rows it sent are the measure."""
        size, rows = self.per_page, len(self.items)
        short = bool(size) and 0 < rows < size
        if short and self.total is not None and (number - 1) * size + rows < self.total:
            return rows
        return size


def _non_negative(value: Any) -> int | None:
    number = as_int(value)
    return number if number is not None and number >= 0 else None


class TotalPageSizePaginator:
    """eSIMTrade ``/reseller/orders``: ``?page=&pageSize=&status=&q=`` answered by
    ``{"page", "pageSize", "total", "orders"}``; page count ``ceil(total / pageSize)``."""

    MAX_PAGE_SIZE = 100

    def __init__(self, page_size: int = 100) -> None:
        if not 1 <= page_size <= self.MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {self.MAX_PAGE_SIZE}")
        self.page_size = page_size

    def params(self, number: int, filters: Mapping[str, str] = NO_FILTERS) -> dict[str, str]:
        """Query of page ``number``: paging first, then the filters."""
        return {"page": str(number), "pageSize": str(self.page_size), **filters}

    def parse(self, body: Any) -> PageInfo:
        if not isinstance(body, dict):
            raise PayloadShapeError("list body is not a JSON object")
        items = body.get("orders")
        if items is None and isinstance(body.get("data"), list):
            items = body["data"]
        if not isinstance(items, list):
            raise PayloadShapeError("list body without an 'orders' array")
        # The echoed "page" and "pageSize" are ignored: the request's own are known.
        return PageInfo(
            items=tuple(items), total=_non_negative(body.get("total")), per_page=self.page_size
        )


class LaravelPaginator:
    """PressOne (Laravel): ``?limit=&page=`` answered by ``{"data": [...], "links": {...},
    "meta": {...}}``, possibly inside the success envelope, whose ``data`` may be that whole
    body or only its array. ``meta.per_page``/``total``/``last_page`` may be strings."""

    def __init__(self, page_size: int = 50) -> None:
        if page_size < 1:
            raise ValueError("page_size must be positive")
        self.page_size = page_size

    def params(self, number: int, filters: Mapping[str, str] = NO_FILTERS) -> dict[str, str]:
        """Query of page ``number``: the filters first, then paging."""
        return {**filters, "limit": str(self.page_size), "page": str(number)}

    def parse(self, body: Any) -> PageInfo:
        inner, envelope = unwrap_envelope(body)
        outer = envelope or {}
        if isinstance(inner, list):
            items, container = inner, outer
        elif isinstance(inner, dict) and isinstance(inner.get("data"), list):
            items, container = inner["data"], inner
        else:
            raise PayloadShapeError("list body without a data array")
        links = container.get("links", outer.get("links"))
        meta = container.get("meta", outer.get("meta"))
        has_next: bool | None = None
        if isinstance(links, dict) and "next" in links:
            has_next = bool(links["next"])
        total = last_page = None
        if isinstance(meta, dict):
            total = _non_negative(meta.get("total"))
            last_page = _non_negative(meta.get("last_page"))
        # meta.current_page and meta.per_page echo the request: the request's own are used.
        return PageInfo(
            items=tuple(items),
            total=total,
            last_page=last_page,
            per_page=self.page_size,
            has_next=has_next,
        )


class Paginator(Protocol):
    """What :class:`Listing`'s callers need of a paginator."""

    page_size: int

    def params(self, number: int, filters: Mapping[str, str] = ...) -> dict[str, str]: ...

    def parse(self, body: Any) -> PageInfo: ...


@dataclass(frozen=True, slots=True)
class FetchedPage:
    """One list response as the request layer hands it to :class:`Listing`. ``error`` is set
    (and ``info`` empty) for a page whose answers were refused until the retries ran out: the
    walk goes on without it (see :class:`Listing`)."""

    number: int
    info: PageInfo
    fetched_at: datetime
    source_endpoint: str
    error: ProviderError | None = None


@dataclass(slots=True)
class ListingStats:
    """What a listing did. ``unique`` counts records yielded; ``invalid_dropped`` counts
    distinct unparseable items (each quarantined); ``unreadable_pages`` counts page answers
    refused until the retries ran out, ``pages_unread`` the page numbers never read in any
    pass; ``limit_reached`` says which walk limit stopped the listing. ``complete`` is
    ``None`` when no total was ever given and nothing went wrong."""

    pages_requested: int = 0
    pages_yielded: int = 0
    duplicates_dropped: int = 0
    invalid_dropped: int = 0
    passes: int = 0
    first_total: int | None = None
    final_total: int | None = None
    unique: int = 0
    unreadable_pages: int = 0
    pages_unread: list[int] = field(default_factory=list)
    limit_reached: str | None = None
    stop_reasons: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool | None:
        if self.limit_reached is not None:
            return False
        if self.final_total is None:
            return False if self.pages_unread else None
        return self.unique + self.invalid_dropped >= self.final_total


PassMode = Literal["full", "head"]


@dataclass(slots=True)
class _Pass:
    number: int
    mode: PassMode
    reference_total: int | None
    estimate: int | None = None
    stopped: str | None = None
    unreadable_in_a_row: int = 0
    grew: bool = False
    shrank: bool = False
    keys_by_page: dict[int, tuple[Hashable, ...]] = field(default_factory=dict)

    def stop(self, reason: str) -> None:
        if self.stopped is None:
            self.stopped = reason


class Listing(Generic[T]):
    """Async iterator of :class:`Page` objects over one list (scheme in module docstring).

    ``fetch(n)`` returns page ``n`` (the request layer retries and raises
    :class:`ProviderError` when it cannot, or returns a page with ``error`` set when its answers
    were refused); ``parse_item`` turns a raw item into a record or raises ``ValueError``, and
    ``on_reject(page, item, error)`` is told of each distinct such item; ``key`` gives the
    record's identity. ``stats`` is filled as the listing proceeds. Breaking out early is fine;
    ``aclose()`` cancels fetches in flight.

    An unreadable page does not end the walk: the later passes ask for it again when rows are
    missing, and the listing ends incomplete if they never get it (its last error is raised
    only when no page at all could be read). ``max_pages`` page requests and ``max_seconds``
    bound the whole walk, every pass counted: reaching either stops it with
    ``stats.limit_reached`` set and ``stats.complete`` false.
    """

    def __init__(
        self,
        fetch: Callable[[int], Awaitable[FetchedPage]],
        *,
        parse_item: Callable[[Any], T],
        key: Callable[[T], Hashable],
        page_size: int,
        window: int = 8,
        max_pages: int = DEFAULT_MAX_PAGES,
        max_passes: int = DEFAULT_MAX_PASSES,
        max_seconds: float = DEFAULT_MAX_WALK_SECONDS,
        label: str = "listing",
        on_reject: Callable[[FetchedPage, Any, Exception], None] | None = None,
    ) -> None:
        if max_pages < 1 or max_passes < 1 or window < 1:
            raise ValueError("max_pages, max_passes and window must be at least 1")
        if max_seconds <= 0:
            raise ValueError("max_seconds must be positive")
        self.stats = ListingStats()
        self._fetch = fetch
        self._parse_item = parse_item
        self._key = key
        self._page_size = page_size
        self._window = window
        self._max_pages = max_pages
        self._max_passes = max_passes
        self._max_seconds = max_seconds
        self._deadline: float | None = None
        self._pages_started = 0
        self._pages_read = 0
        self._unread: set[int] = set()
        self._last_error: ProviderError | None = None
        self._on_reject = on_reject
        self._label = label
        self._seen: set[Hashable] = set()
        self._invalid_seen: set[str] = set()
        self._latest_total: int | None = None
        self._gen = self._walk()

    def __aiter__(self) -> Listing[T]:
        return self

    async def __anext__(self) -> Page[T]:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        await self._gen.aclose()

    # --- passes -----------------------------------------------------------------------------

    def _may_start(self, state: _Pass) -> bool:
        """Whether another page may be asked for within the walk's limits; stops the pass
        (and records the limit) when not."""
        assert self._deadline is not None
        reached = None
        if self._pages_started >= self._max_pages:
            reached = f"max_pages ({self._max_pages}) reached"
        elif time.monotonic() >= self._deadline:
            reached = (
                f"walk time limit ({self._max_seconds:g} s) reached after "
                f"{self._pages_started} page requests"
            )
        if reached is None:
            return True
        state.stop(reached)
        if self.stats.limit_reached is None:
            self.stats.limit_reached = reached
            logger.warning("%s: stopped: %s", self._label, reached)
        return False

    async def _walk(self) -> AsyncGenerator[Page[T], None]:
        self._deadline = time.monotonic() + self._max_seconds
        mode: PassMode | None = "full"
        while mode is not None and self.stats.limit_reached is None:
            self.stats.passes += 1
            state = _Pass(self.stats.passes, mode, reference_total=self._latest_total)
            # Closing the listing must close the pass at once, cancelling its fetches.
            async with aclosing(self._run_pass(state)) as pages:
                async for page in pages:
                    yield page
            self.stats.stop_reasons.append(
                f"pass {state.number} ({mode}): {state.stopped or 'last page reached'}"
            )
            if self.stats.passes >= self._max_passes or self.stats.limit_reached is not None:
                mode = None
            else:
                mode = self._next_mode(state)
            if mode is not None:
                logger.info(
                    "%s: %d unique of %s after pass %d (total grew=%s, shrank=%s); "
                    "starting a %s pass",
                    self._label,
                    self.stats.unique,
                    self._latest_total,
                    state.number,
                    state.grew,
                    state.shrank,
                    mode,
                )
        self.stats.pages_unread = sorted(self._unread)
        if self._pages_read == 0 and self._last_error is not None:
            raise self._last_error
        if self.stats.complete is False:
            logger.warning(
                "%s: incomplete after %d passes: %d unique records, provider total %s",
                self._label,
                self.stats.passes,
                self.stats.unique,
                self._latest_total,
            )

    def _next_mode(self, state: _Pass) -> PassMode | None:
        total = self._latest_total
        if total is None:
            return None
        short = self.stats.unique + self.stats.invalid_dropped < total
        if state.shrank or (state.mode == "head" and short):
            return "full"
        if state.grew or short:
            return "head"
        return None

    async def _run_pass(self, state: _Pass) -> AsyncGenerator[Page[T], None]:
        if not self._may_start(state):
            return
        self._pages_started += 1
        page = self._absorb(state, await self._fetch_counted(1))
        if page is not None:
            yield page
        window = self._window if state.mode == "full" else 1
        next_number = 2
        tasks: dict[asyncio.Task[FetchedPage], int] = {}
        try:
            while True:
                while state.stopped is None and len(tasks) < window:
                    if state.estimate is None:
                        if tasks:  # unknown length: one page at a time
                            break
                    elif next_number > state.estimate:
                        break
                    if not self._may_start(state):
                        break
                    self._pages_started += 1
                    task = asyncio.create_task(self._fetch_counted(next_number))
                    tasks[task] = next_number
                    next_number += 1
                if not tasks:
                    break
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=lambda t: tasks[t]):
                    del tasks[task]
                    page = self._absorb(state, task.result())
                    if page is not None:
                        yield page
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _fetch_counted(self, number: int) -> FetchedPage:
        self.stats.pages_requested += 1
        return await self._fetch(number)

    # --- one page ---------------------------------------------------------------------------

    def _observe_total(self, state: _Pass, total: int | None) -> None:
        if total is None:
            return
        if self.stats.first_total is None:
            self.stats.first_total = total
        if state.reference_total is None:
            state.reference_total = total
        elif total > state.reference_total:
            state.grew = True
        elif total < state.reference_total:
            state.shrank = True
        self._latest_total = total
        self.stats.final_total = total

    def _unreadable(self, state: _Pass, fetched: FetchedPage) -> None:
        number = fetched.number
        self.stats.unreadable_pages += 1
        self._unread.add(number)
        self._last_error = fetched.error
        state.unreadable_in_a_row += 1
        logger.warning(
            "%s: page %d could not be read; going on without it: %s",
            self._label,
            number,
            fetched.error,
        )
        if state.estimate is None and state.unreadable_in_a_row >= MAX_UNREADABLE_IN_A_ROW:
            state.stop(f"{state.unreadable_in_a_row} unreadable pages in a row")

    def _absorb(self, state: _Pass, fetched: FetchedPage) -> Page[T] | None:
        info, number = fetched.info, fetched.number
        if fetched.error is not None:
            self._unreadable(state, fetched)
            return None
        state.unreadable_in_a_row = 0
        self._pages_read += 1
        self._unread.discard(number)
        self._observe_total(state, info.total)
        estimate = info.last_page_estimate(number)
        if estimate is not None:
            state.estimate = estimate

        keys: list[Hashable] = []
        fresh: list[T] = []
        for raw in info.items:
            try:
                record = self._parse_item(raw)
                key = self._key(record)
            except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
                digest = _content_digest(raw)
                keys.append(("invalid", digest))
                if digest not in self._invalid_seen:
                    self._invalid_seen.add(digest)
                    self.stats.invalid_dropped += 1
                    if self._on_reject is not None:
                        self._on_reject(fetched, raw, exc)
                    logger.warning(
                        "%s: dropped an unreadable item on page %d: %s", self._label, number, exc
                    )
                continue
            keys.append(key)
            if key in self._seen:
                self.stats.duplicates_dropped += 1
                continue
            self._seen.add(key)
            fresh.append(record)
        sequence = tuple(keys)
        state.keys_by_page[number] = sequence

        if not info.items:
            state.stop(f"empty page {number}")
        elif sequence in (
            state.keys_by_page.get(number - 1),
            state.keys_by_page.get(number + 1),
        ):
            state.stop(f"page {number} repeats a neighbouring page")
            logger.warning(
                "%s: page %d repeats a neighbouring page; stopping this pass", self._label, number
            )
        elif state.mode == "head" and not fresh:
            state.stop(f"page {number} holds only known rows")
        elif state.estimate is None and len(info.items) < (info.per_page or self._page_size):
            state.stop(f"short page {number}")

        if not fresh:
            return None
        self.stats.unique += len(fresh)
        self.stats.pages_yielded += 1
        return Page(
            number=number,
            items=tuple(fresh),
            fetched_at=fetched.fetched_at,
            source_endpoint=fetched.source_endpoint,
            total=info.total,
            pass_number=state.number,
        )


def _content_digest(raw: Any) -> str:
    text = json.dumps(raw, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
