from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.providers import Listing
from pipelines.providers._errors import EnvelopeFailure, PayloadShapeError
from pipelines.providers._paging import (
    FetchedPage,
    LaravelPaginator,
    PageInfo,
    TotalPageSizePaginator,
)


class ListServer:
    """A newest-first list of integer keys served page by page, with scripted drift.

    ``delays[c]`` event-loop turns pass before the c-th fetch call (0-based) is served, so
    parallel pages are served out of order. ``inserts[s]`` new keys are put at the head just
    before the s-th page served; ``removals[s]`` keys are taken out of the list at that moment
    (from the head, like a filtered list losing rows).
    """

    def __init__(
        self,
        size: int,
        page_size: int,
        *,
        inserts: dict[int, int] | None = None,
        removals: dict[int, int] | None = None,
        delays: list[int] | None = None,
        style: str = "total",
        ignore_page: bool = False,
    ) -> None:
        self.keys = list(range(size, 0, -1))
        self.next_key = size + 1
        self.page_size = page_size
        self.inserts = inserts or {}
        self.removals = removals or {}
        self.delays = delays or []
        self.style = style
        self.ignore_page = ignore_page
        self.calls = 0
        self.served = 0
        self.removed: set[int] = set()

    def _mutate(self, call: int) -> None:
        for _ in range(self.inserts.get(call, 0)):
            self.keys.insert(0, self.next_key)
            self.next_key += 1
        for _ in range(self.removals.get(call, 0)):
            if self.keys:
                self.removed.add(self.keys.pop(0))

    async def fetch(self, number: int) -> FetchedPage:
        call = self.calls
        self.calls += 1
        for _ in range(self.delays[call] if call < len(self.delays) else 0):
            await asyncio.sleep(0)
        self._mutate(self.served)
        self.served += 1
        page = 1 if self.ignore_page else number
        rows = [{"k": k} for k in self.keys[(page - 1) * self.page_size : page * self.page_size]]
        total = len(self.keys)
        if self.style == "total":
            info = PageInfo(items=tuple(rows), total=total, per_page=self.page_size)
        elif self.style == "links":  # links.next only, no meta
            info = PageInfo(items=tuple(rows), has_next=number * self.page_size < total)
        else:  # nothing at all about the length
            info = PageInfo(items=tuple(rows))
        return FetchedPage(number, info, datetime.now(UTC), f"/list?page={number}")


def parse_item(raw: Any) -> int:
    if not isinstance(raw, dict) or not isinstance(raw.get("k"), int):
        raise ValueError("bad item")
    return int(raw["k"])


def listing(server: ListServer, **kw: Any) -> Listing[int]:
    kw.setdefault("window", 4)
    return Listing(
        server.fetch, parse_item=parse_item, key=lambda k: k, page_size=server.page_size, **kw
    )


async def collect(lst: Listing[int]) -> list[int]:
    out: list[int] = []
    async for page in lst:
        assert page.items, "pages without new records are not yielded"
        out.extend(page.items)
    return out


@pytest.mark.parametrize(("size", "page_size"), [(0, 10), (1, 10), (10, 10), (25, 10), (99, 7)])
async def test_stable_list_is_read_once_in_one_pass(size: int, page_size: int) -> None:
    server = ListServer(size, page_size)
    lst = listing(server)
    keys = await collect(lst)
    assert sorted(keys) == list(range(1, size + 1))
    assert lst.stats.passes == 1
    assert lst.stats.pages_requested == max(math.ceil(size / page_size), 1)
    assert lst.stats.complete is True
    assert lst.stats.duplicates_dropped == 0


async def test_head_inserts_while_paging_are_picked_up_without_duplicates() -> None:
    # 3 new orders arrive before page 2 is answered, 2 more before page 3.
    server = ListServer(25, 10, inserts={1: 3, 2: 2}, delays=[0, 0, 0])
    lst = listing(server, window=1)
    keys = await collect(lst)
    assert len(keys) == len(set(keys))
    assert set(keys) == set(server.keys)
    assert lst.stats.duplicates_dropped >= 5
    assert lst.stats.passes == 2  # the head re-read finds the 5 new rows
    assert lst.stats.final_total == 30 and lst.stats.complete


async def test_out_of_order_parallel_pages_under_drift_are_completed_by_a_full_pass() -> None:
    # Page 4 is served before page 3 and a row is inserted in between: the row at the
    # boundary slips from page 3 (not yet read) into page 4 (already read).
    server = ListServer(40, 10, inserts={3: 1}, delays=[0, 0, 20, 0, 0])
    lst = listing(server, window=4)
    keys = await collect(lst)
    assert len(keys) == len(set(keys))
    assert set(keys) == set(server.keys)
    assert lst.stats.complete
    assert lst.stats.passes == 3
    assert [r.split(":")[0] for r in lst.stats.stop_reasons] == [
        "pass 1 (full)",
        "pass 2 (head)",
        "pass 3 (full)",
    ]


async def test_rows_leaving_a_filtered_list_trigger_a_full_pass() -> None:
    # Two rows drop out of the list before page 2: rows shift towards the head.
    server = ListServer(30, 10, removals={1: 2})
    lst = listing(server, window=1)
    keys = await collect(lst)
    assert set(server.keys) <= set(keys)
    assert lst.stats.passes == 2
    assert "(full)" in lst.stats.stop_reasons[1]


async def test_server_ignoring_page_param_stops_on_repeated_page() -> None:
    server = ListServer(50, 10, ignore_page=True)
    lst = listing(server, window=1, max_passes=3)
    keys = await collect(lst)
    assert sorted(keys) == list(range(41, 51))
    assert any("repeats" in reason for reason in lst.stats.stop_reasons)
    # Each pass stops after two pages instead of walking all five.
    assert lst.stats.pages_requested <= 2 * lst.stats.passes
    assert lst.stats.complete is False


async def test_max_pages_guard_stops_an_endless_list() -> None:
    class Endless:
        async def fetch(self, number: int) -> FetchedPage:
            rows = tuple({"k": number * 100 + i} for i in range(3))
            info = PageInfo(items=rows, has_next=True)
            return FetchedPage(number, info, datetime.now(UTC), "/endless")

    lst: Listing[int] = Listing(
        Endless().fetch, parse_item=parse_item, key=lambda k: k, page_size=3, max_pages=7
    )
    keys = await collect(lst)
    assert len(keys) == 21
    assert lst.stats.pages_requested == 7
    assert "max_pages" in lst.stats.stop_reasons[0]


@pytest.mark.parametrize("style", ["links", "none"])
async def test_unknown_length_walks_sequentially_until_short_or_empty_page(style: str) -> None:
    server = ListServer(23, 10, style=style)
    lst = listing(server)
    keys = await collect(lst)
    assert sorted(keys) == list(range(1, 24))
    assert lst.stats.pages_requested == 3
    assert lst.stats.complete is None


async def test_unknown_length_with_exact_multiple_stops_on_empty_page() -> None:
    server = ListServer(20, 10, style="none")
    lst = listing(server)
    assert len(await collect(lst)) == 20
    assert lst.stats.pages_requested == 3
    assert "empty page 3" in lst.stats.stop_reasons[0]


async def test_unreadable_items_are_dropped_and_counted_once() -> None:
    async def fetch(number: int) -> FetchedPage:
        rows: tuple[Any, ...] = ({"k": 1}, {"k": "broken"}, "junk") if number == 1 else ()
        return FetchedPage(
            number, PageInfo(items=rows, total=3, per_page=10), datetime.now(UTC), "/"
        )

    lst: Listing[int] = Listing(fetch, parse_item=parse_item, key=lambda k: k, page_size=10)
    assert await collect(lst) == [1]
    assert lst.stats.invalid_dropped == 2
    assert lst.stats.passes == 1 and lst.stats.complete


async def test_breaking_out_early_cancels_pages_in_flight() -> None:
    started: list[int] = []
    cancelled: list[int] = []
    release = asyncio.Event()  # never set: pages after the second wait until cancelled

    async def fetch(number: int) -> FetchedPage:
        started.append(number)
        if number > 2:
            try:
                await release.wait()
            except asyncio.CancelledError:
                cancelled.append(number)
                raise
        rows = tuple({"k": number * 10 + i} for i in range(10))
        return FetchedPage(
            number, PageInfo(items=rows, total=100, per_page=10), datetime.now(UTC), "/"
        )

    lst: Listing[int] = Listing(
        fetch, parse_item=parse_item, key=lambda k: k, page_size=10, window=3
    )
    async for page in lst:
        if page.number == 2:  # pages 3 and 4 are in flight now
            break
    await lst.aclose()
    assert len(started) <= 4  # page 1 and at most one window
    in_flight = [number for number in started if number > 2]
    assert in_flight and sorted(cancelled) == in_flight


def test_total_pagesize_paginator_shapes() -> None:
    paginator = TotalPageSizePaginator(100)
    assert paginator.params(3) == {"page": "3", "pageSize": "100"}
    info = paginator.parse({"page": 1, "pageSize": 100, "total": 2345, "orders": [{}] * 100})
    assert info.last_page_estimate(1) == 24
    assert paginator.parse({"orders": []}).total is None
    with pytest.raises(PayloadShapeError):
        paginator.parse({"error": "boom"})
    with pytest.raises(ValueError):
        TotalPageSizePaginator(101)


def laravel_body(rows: list[Any], *, page: int, last: int, per_page: Any = "50") -> dict[str, Any]:
    return {
        "data": rows,
        "links": {
            "first": "?page=1",
            "last": f"?page={last}",
            "prev": None,
            "next": None if page >= last else f"?page={page + 1}",
        },
        "meta": {
            "message": "success",
            "current_page": page,
            "last_page": last,
            "per_page": per_page,
            "total": 87,
        },
    }


def test_laravel_paginator_plain_and_both_envelopes() -> None:
    paginator = LaravelPaginator(50)
    plain = laravel_body([{"id": n} for n in range(50)], page=1, last=2)
    info = paginator.parse(plain)
    assert info.per_page == 50 and info.total == 87 and info.has_next is True
    assert info.last_page_estimate(1) == 2

    wrapped = {
        "success": True,
        "code": "200",
        "message": "ok",
        "data": plain,
        "timestamp": "2024-01-15T10:30:00.000Z",
    }
    assert paginator.parse(wrapped) == info

    data_only = {
        "success": True,
        "code": "200",
        "message": "ok",
        "data": [{"id": 1}],
        "timestamp": "2024-01-15T10:30:00.000Z",
    }
    bare = paginator.parse(data_only)
    assert bare.items == ({"id": 1},) and bare.total is None and bare.has_next is None

    last = paginator.parse(laravel_body([{"id": 2}], page=2, last=2, per_page=50))
    assert last.has_next is False and last.last_page_estimate(2) == 2

    with pytest.raises(EnvelopeFailure) as failure:
        paginator.parse(
            {
                "success": False,
                "code": "4008",
                "message": "Validation failed",
                "data": None,
                "timestamp": "t",
            }
        )
    assert failure.value.code == "4008"
    with pytest.raises(PayloadShapeError):
        paginator.parse({"data": {"id": 1}})


# Drift scenarios run whole listings: slow examples are expected, not a health problem.
DRIFT_SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def drain(server: ListServer, window: int) -> tuple[list[int], Listing[int]]:
    """Run a listing of ``server`` (up to six passes) to its end, outside any event loop."""

    async def run() -> tuple[list[int], Listing[int]]:
        lst = listing(server, window=window, max_passes=6)
        return await collect(lst), lst

    return asyncio.run(run())


@settings(DRIFT_SETTINGS, max_examples=120)
@given(
    size=st.integers(0, 60),
    page_size=st.integers(1, 12),
    window=st.integers(1, 5),
    inserts=st.dictionaries(st.integers(0, 2), st.integers(1, 15), max_size=3),
    delays=st.lists(st.integers(0, 6), max_size=12),
    style=st.sampled_from(["total", "links"]),
)
def test_property_drift_never_loses_or_duplicates(
    size: int,
    page_size: int,
    window: int,
    inserts: dict[int, int],
    delays: list[int],
    style: str,
) -> None:
    """Head inserts during the first fetches: every row present at the end is yielded
    exactly once (with a total to compare against), and nothing that never existed is."""

    server = ListServer(size, page_size, inserts=inserts, delays=delays, style=style)
    keys, lst = drain(server, window)
    assert len(keys) == len(set(keys))
    assert set(keys) <= set(range(1, server.next_key))
    if style == "total":
        assert set(keys) == set(server.keys)
        assert lst.stats.complete
    elif not inserts:
        # Without a total, only a stable list is guaranteed complete.
        assert set(keys) == set(server.keys)


@settings(DRIFT_SETTINGS, max_examples=80)
@given(
    size=st.integers(0, 50),
    page_size=st.integers(1, 10),
    window=st.integers(1, 5),
    removals=st.dictionaries(st.integers(0, 2), st.integers(1, 5), max_size=2),
    delays=st.lists(st.integers(0, 6), max_size=10),
)
def test_property_rows_leaving_the_list_are_not_missed(
    size: int, page_size: int, window: int, removals: dict[int, int], delays: list[int]
) -> None:
    """Rows removed from the head during the first fetches (a filtered list losing rows):
    every row still listed at the end is yielded exactly once."""
    server = ListServer(size, page_size, removals=removals, delays=delays)
    keys, _ = drain(server, window)
    assert len(keys) == len(set(keys))
    assert set(server.keys) <= set(keys) <= set(server.keys) | server.removed
