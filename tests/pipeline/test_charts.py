"""Charts beside the exports: drawn from exactly the SQL data, valid files, and a clear
"no data yet" on an empty database."""

from __future__ import annotations

import base64
import re
from collections import Counter
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import matplotlib.image
import polars as pl
import pytest

from pipelines.charts import (
    OTHER,
    open_findings_by_run,
    open_money_by_run,
    usage_by_package,
    write_charts,
)
from tests.demo_world import build_demo_db

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_db(tmp_path_factory.mktemp("charts_demo"))


@pytest.fixture
def con(demo_db: Path):
    connection = duckdb.connect(str(demo_db), read_only=True)
    try:
        yield connection
    finally:
        connection.close()


def test_usage_chart_data_is_the_usage_report_per_day_and_package(con) -> None:
    top = 3
    data = usage_by_package(con, top=top)
    assert data.height > 0
    per_package = con.execute(
        "SELECT provider || ' · ' || package_code, sum(used_bytes) AS total "
        "FROM reports.usage_daily GROUP BY 1 ORDER BY total DESC, 1"
    ).fetchall()
    kept = {name for name, _ in per_package[:top]}
    drawn = set(data["package"].to_list())
    assert drawn - {OTHER} == kept
    assert (OTHER in drawn) == (len(per_package) > top)

    per_day = dict(
        con.execute(
            "SELECT usage_date, sum(used_bytes)::BIGINT FROM reports.usage_daily GROUP BY 1"
        ).fetchall()
    )
    drawn_per_day = dict(data.group_by("usage_date").agg(pl.col("used_bytes").sum()).iter_rows())
    assert drawn_per_day == per_day

    for day, package, used in data.filter(pl.col("package") != OTHER).iter_rows():
        provider, package_code = package.split(" · ")
        [(expected,)] = con.execute(
            "SELECT sum(used_bytes)::BIGINT FROM reports.usage_daily "
            "WHERE usage_date = ? AND provider = ? AND package_code = ?",
            [day, provider, package_code],
        ).fetchall()
        assert used == expected


def test_trend_data_counts_open_episodes_and_ends_at_the_current_findings(con) -> None:
    data = open_findings_by_run(con)
    episodes = con.execute(
        "SELECT discrepancy_type, first_detected_at, last_seen_at, resolved_at "
        "FROM reports.discrepancy_history"
    ).fetchall()
    run_times = {t for _, first, last, resolved in episodes for t in (first, last, resolved) if t}
    assert set(data["run_at"].to_list()) == run_times
    assert len(run_times) >= 2  # two runs
    for run_at, kind, count in data.iter_rows():
        expected = sum(
            1
            for k, first, _, resolved in episodes
            if k == kind and first <= run_at and (resolved is None or resolved > run_at)
        )
        assert count == expected, (run_at, kind)

    latest = data.filter(pl.col("run_at") == data["run_at"].max())
    now = Counter(
        kind
        for (kind,) in con.execute("SELECT discrepancy_type FROM reports.discrepancies").fetchall()
    )
    drawn_now = {kind: count for _, kind, count in latest.iter_rows() if count}
    assert drawn_now == dict(now)


def test_money_trend_sums_open_amounts_per_direction_and_ends_at_the_current_money(con) -> None:
    data = open_money_by_run(con)
    assert data.height > 0
    episodes = con.execute(
        "SELECT money_direction, amount_at_risk, first_detected_at, resolved_at "
        "FROM reports.discrepancy_history WHERE money_direction <> 'none' AND currency = 'USD'"
    ).fetchall()
    for run_at, direction, amount in data.iter_rows():
        expected = sum(
            (
                value
                for d, value, first, resolved in episodes
                if d == direction and first <= run_at and (resolved is None or resolved > run_at)
            ),
            Decimal("0.00"),
        )
        assert amount == expected, (run_at, direction)
    latest = data.filter(pl.col("run_at") == data["run_at"].max())
    now = dict(
        con.execute(
            "SELECT money_direction, sum(amount) FROM reports.money_at_risk "
            "WHERE money_direction <> 'none' AND currency = 'USD' GROUP BY 1"
        ).fetchall()
    )
    drawn_now = {direction: amount for _, direction, amount in latest.iter_rows()}
    assert drawn_now == now
    assert "none" not in drawn_now


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs)["src"] or "")
        self._in_cell = tag in {"td", "th"}

    def handle_endtag(self, tag: str) -> None:
        self._in_cell = False

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.cells.append(data)


def _check_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] >= 400 and pixels.shape[1] >= 800


def test_write_charts_writes_pngs_and_a_self_contained_page(con, tmp_path: Path) -> None:
    files = write_charts(con, tmp_path / "exports")
    for path in (files.usage_png, files.trend_png, files.money_png):
        _check_png(path)
    page = _Page()
    text = files.html.read_text(encoding="utf-8")
    page.feed(text)
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)=["'](?!data:)""", text)  # nothing loaded from elsewhere
    embedded = [base64.b64decode(src.removeprefix("data:image/png;base64,")) for src in page.images]
    assert embedded == [
        files.usage_png.read_bytes(),
        files.trend_png.read_bytes(),
        files.money_png.read_bytes(),
    ]
    usage = usage_by_package(con)
    for package in usage["package"].unique().to_list():
        assert package in page.cells
    assert str(usage["used_bytes"].max()) in page.cells
    trend = open_findings_by_run(con)
    assert set(trend["discrepancy_type"].to_list()) <= set(page.cells)
    money = open_money_by_run(con)
    assert set(money["money_direction"].to_list()) <= set(page.cells)
    assert str(money["open_amount"].max()) in page.cells


def test_charts_on_an_empty_database_say_there_is_no_data(tmp_path: Path) -> None:
    connection = duckdb.connect(str(tmp_path / "empty.duckdb"))
    try:
        assert usage_by_package(connection).height == 0
        assert open_findings_by_run(connection).height == 0
        assert open_money_by_run(connection).height == 0
        files = write_charts(connection, tmp_path / "exports")
    finally:
        connection.close()
    for path in (files.usage_png, files.trend_png, files.money_png):
        _check_png(path)
    text = files.html.read_text(encoding="utf-8")
    assert text.count("No rows yet") == 3
    assert files.usage_rows == files.trend_rows == files.money_rows == 0
