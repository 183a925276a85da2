"""Property tests: the paging stop rules, and the CSV escaping of the exports."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.exports import ExportSpec, _export_queries, _write_csv
from pipelines.providers import Listing
from pipelines.providers._paging import FetchedPage, PageInfo

FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60)


# --- paging ---------------------------------------------------------------------------------


def _walk(
    serve: Callable[[int], PageInfo], *, page_size: int, window: int, **options: Any
) -> tuple[list[int], Listing[int]]:
    """Run a listing over `serve(page number)`; return the page numbers asked for, in order."""
    asked: list[int] = []

    async def fetch(number: int) -> FetchedPage:
        asked.append(number)
        await asyncio.sleep(0)
        return FetchedPage(number, serve(number), datetime.now(UTC), f"/list?page={number}")

    async def run() -> Listing[int]:
        listing: Listing[int] = Listing(
            fetch,
            parse_item=lambda raw: int(raw["k"]),
            key=lambda k: k,
            page_size=page_size,
            window=window,
            **options,
        )
        async for _ in listing:
            pass
        return listing

    return asked, asyncio.run(run())


def _rows(keys: list[int]) -> tuple[dict[str, int], ...]:
    return tuple({"k": key} for key in keys)


@FAST
@given(
    size=st.integers(1, 80),
    page_size=st.integers(1, 10),
    window=st.integers(1, 4),
    data=st.data(),
)
def test_an_empty_page_ends_the_walk(size: int, page_size: int, window: int, data) -> None:
    """The server claims `size` rows but answers page `empty` (and beyond) with no rows: no
    pass asks for more than `window - 1` pages past it."""
    keys = list(range(size, 0, -1))
    last = -(-size // page_size)
    empty = data.draw(st.integers(1, last), label="empty")

    def serve(number: int) -> PageInfo:
        rows = [] if number >= empty else keys[(number - 1) * page_size : number * page_size]
        return PageInfo(items=_rows(rows), total=size, per_page=page_size)

    asked, listing = _walk(serve, page_size=page_size, window=window)
    assert max(asked) <= empty + window - 1
    assert any(f"empty page {empty}" in reason for reason in listing.stats.stop_reasons)
    assert listing.stats.passes <= 3
    assert listing.stats.unique == min(size, (empty - 1) * page_size)


@FAST
@given(
    size=st.integers(0, 80),
    page_size=st.integers(1, 10),
    window=st.integers(1, 5),
    style=st.sampled_from(["total", "last_page", "links"]),
)
def test_no_page_past_the_last_is_asked_for(
    size: int, page_size: int, window: int, style: str
) -> None:
    """A server that would answer any page with rows (say, it repeats its last one) is never
    asked past the last page the list's own length gives."""
    keys = list(range(size, 0, -1))
    last = max(-(-size // page_size), 1)

    def serve(number: int) -> PageInfo:
        start = (min(number, last) - 1) * page_size
        rows = _rows(keys[start : start + page_size])
        if style == "total":
            return PageInfo(items=rows, total=size, per_page=page_size)
        if style == "last_page":
            return PageInfo(items=rows, last_page=last, per_page=page_size)
        return PageInfo(items=rows, has_next=number < last)

    asked, listing = _walk(serve, page_size=page_size, window=window)
    assert max(asked) <= last
    assert sorted(set(asked)) == list(range(1, last + 1))
    assert listing.stats.unique == size


@FAST
@given(max_pages=st.integers(1, 30), window=st.integers(1, 5), page_size=st.integers(1, 5))
def test_the_page_guard_stops_an_endless_list(max_pages: int, window: int, page_size: int) -> None:
    """Fresh rows and a `next` link on every page, forever: exactly `max_pages` pages."""

    def serve(number: int) -> PageInfo:
        rows = [number * 100 + i for i in range(page_size)]
        return PageInfo(items=_rows(rows), has_next=True)

    asked, listing = _walk(serve, page_size=page_size, window=window, max_pages=max_pages)
    assert sorted(asked) == list(range(1, max_pages + 1))
    assert listing.stats.unique == max_pages * page_size


@FAST
@given(
    size=st.integers(2, 80),
    page_size=st.integers(1, 10),
    window=st.integers(1, 5),
    max_passes=st.integers(1, 4),
)
def test_a_server_repeating_one_page_is_caught(
    size: int, page_size: int, window: int, max_passes: int
) -> None:
    """The server ignores `page` and always answers page 1: each pass stops at the repeat
    instead of walking the whole announced length, and only page 1's rows are yielded."""
    keys = list(range(size, 0, -1))
    first = _rows(keys[:page_size])

    def serve(number: int) -> PageInfo:
        return PageInfo(items=first, total=size, per_page=page_size)

    asked, listing = _walk(serve, page_size=page_size, window=window, max_passes=max_passes)
    last = -(-size // page_size)
    assert listing.stats.unique == min(size, page_size)
    if last > 1:
        assert any("repeats" in reason for reason in listing.stats.stop_reasons)
        assert listing.stats.complete is False
    assert len(asked) <= listing.stats.passes * min(window + 1, last)


# --- CSV escaping ---------------------------------------------------------------------------

FORMULA_START = re.compile(r"[=+\-@\t\r]")
PLAIN_NEGATIVE = re.compile(r"-[0-9]+([.][0-9]+)?")


def expected_cell(value: str | None) -> str:
    """The export's policy: a text cell a spreadsheet would run as a formula gets a leading
    single quote, unless it is just a negative number."""
    if value is None:
        return ""
    if FORMULA_START.match(value) and not PLAIN_NEGATIVE.fullmatch(value):
        return "'" + value
    return value


TEXT = st.one_of(
    st.none(),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
    st.sampled_from(["=1+1", "+1", "-1", "-2.50", "-2.", "@SUM(A1)", "\tx", "\rx", '"', ",", "\n"]),
    st.builds(
        lambda a, b: a + b,
        st.sampled_from(["=", "+", "-", "@", ",", '"', "\n", "é", "😀"]),
        st.text(max_size=8),
    ),
)


def _export(values: list[str | None]) -> tuple[bytes, list[list[str]]]:
    con = duckdb.connect()
    try:
        con.execute("CREATE SCHEMA reports")
        con.execute("CREATE TABLE reports.cells (id INTEGER, txt VARCHAR)")
        con.executemany(
            "INSERT INTO reports.cells VALUES (?, ?)", [[i, v] for i, v in enumerate(values)]
        )
        query, _ = _export_queries(con, ExportSpec("reports.cells", ("id",)))
        handle = io.BytesIO()
        _write_csv(con, query, handle)
    finally:
        con.close()
    data = handle.getvalue()
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    return data, rows


@FAST
@given(values=st.lists(TEXT, min_size=1, max_size=12))
def test_any_text_round_trips_through_the_csv_with_formulas_defused(
    values: list[str | None],
) -> None:
    data, rows = _export(values)
    assert rows[0] == ["id", "txt"]
    assert len(rows) == len(values) + 1  # embedded line breaks stay inside their quoted cell
    for index, (value, row) in enumerate(zip(values, rows[1:], strict=True)):
        assert row == [str(index), expected_cell(value)], (value, row)
    assert data.decode("utf-8").endswith("\n")


def test_null_and_empty_text_stay_apart() -> None:
    data, _ = _export([None, ""])
    assert data.decode("utf-8").splitlines()[1:] == ["0,", '1,""']
