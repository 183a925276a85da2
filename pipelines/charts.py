"""Charts of the reports, written beside the CSV exports: PNG files and one HTML page.

- `usage_daily.png`: bytes used per UTC day per package (reports.usage_daily), stacked bars; the
  packages with the most bytes overall are drawn, the rest are one "other" band.
- `discrepancy_trend.png`: open findings per discrepancy type at each run time
  (reports.discrepancy_history).
- `money_trend.png`: open money at risk per money_direction (and currency) at each run time
  (reports.discrepancy_history; each episode counts with its amount as last seen).
- `charts.html`: the images embedded (base64) with the data tables they are drawn from; it needs
  nothing else and opens offline.

The data behind each chart comes from one query (`usage_by_package`, `open_findings_by_run`,
`open_money_by_run`),
so what is drawn is exactly what SQL says. A database without the reports, or with empty
reports, gets charts saying there is no data yet. Rendering uses matplotlib's Agg canvas
directly: no display, no pyplot state.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import polars as pl

from pipelines.exports import atomic_write

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

TOP_PACKAGES = 8
MAX_RUNS_DRAWN = 40
OTHER = "other"
USAGE_PNG = "usage_daily.png"
TREND_PNG = "discrepancy_trend.png"
MONEY_PNG = "money_trend.png"
CHARTS_HTML = "charts.html"
_DPI = 100
_SIZE = (11.0, 5.5)

_USAGE_SCHEMA = {"usage_date": pl.Date(), "package": pl.String(), "used_bytes": pl.Int64()}
_TREND_SCHEMA = {
    "run_at": pl.Datetime("us", "UTC"),
    "discrepancy_type": pl.String(),
    "open_findings": pl.Int64(),
}

_MONEY_SCHEMA = {
    "run_at": pl.Datetime("us", "UTC"),
    "money_direction": pl.String(),
    "open_amount": pl.Decimal(18, 2),
}

# One band per package: "<provider> · <package_code>", the top packages by total bytes kept.
USAGE_SQL = """
with daily as (
    select
        usage_date,
        provider || ' · ' || coalesce(nullif(package_code, ''), '(unknown)') as package,
        used_bytes
    from reports.usage_daily
),
ranked as (
    select package, row_number() over (order by sum(used_bytes) desc, package) as package_rank
    from daily
    group by package
)
select
    daily.usage_date,
    case when ranked.package_rank <= $top then daily.package else $other end as package,
    cast(sum(daily.used_bytes) as bigint) as used_bytes
from daily
join ranked using (package)
group by all
order by usage_date, package
"""

# Run times are every time the history was stamped; an episode is open at a run time from its
# first detection until (not including) the run that resolved it.
TREND_SQL = """
with episodes as (
    select discrepancy_type, first_detected_at, last_seen_at, resolved_at
    from reports.discrepancy_history
),
run_times as (
    select first_detected_at as run_at from episodes
    union
    select last_seen_at from episodes
    union
    select resolved_at from episodes where resolved_at is not null
),
types as (
    select distinct discrepancy_type from episodes
)
select
    run_times.run_at,
    types.discrepancy_type,
    cast(count(episodes.discrepancy_type) as bigint) as open_findings
from run_times
cross join types
left join episodes
    on episodes.discrepancy_type = types.discrepancy_type
    and episodes.first_detected_at <= run_times.run_at
    and (episodes.resolved_at is null or episodes.resolved_at > run_times.run_at)
group by all
order by run_at, discrepancy_type
"""


# Open money per direction at each run time: the run times are those of TREND_SQL; the episodes
# are those that move money (directions other than none; none on episodes older than the money
# rules), each counted with its amount as last seen. A currency other than USD is its own series.
MONEY_SQL = """
with all_episodes as (
    select first_detected_at, last_seen_at, resolved_at, money_direction, currency,
        amount_at_risk
    from reports.discrepancy_history
),
run_times as (
    select first_detected_at as run_at from all_episodes
    union
    select last_seen_at from all_episodes
    union
    select resolved_at from all_episodes where resolved_at is not null
),
episodes as (
    select
        case when currency = 'USD' then money_direction
            else money_direction || ' (' || currency || ')' end as money_direction,
        first_detected_at, resolved_at, amount_at_risk
    from all_episodes
    where money_direction is not null and money_direction <> 'none'
),
directions as (
    select distinct money_direction from episodes
)
select
    run_times.run_at,
    directions.money_direction,
    cast(coalesce(sum(episodes.amount_at_risk), 0) as decimal(18, 2)) as open_amount
from run_times
cross join directions
left join episodes
    on episodes.money_direction = directions.money_direction
    and episodes.first_detected_at <= run_times.run_at
    and (episodes.resolved_at is null or episodes.resolved_at > run_times.run_at)
group by all
order by run_at, money_direction
"""


def _frame(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    sql: str,
    params: dict[str, object],
    schema: dict[str, pl.DataType],
) -> pl.DataFrame:
    schema_name, table_name = relation.split(".")
    found = con.execute(
        "select 1 from duckdb_tables() where schema_name = ? and table_name = ? "
        "union all select 1 from duckdb_views() where schema_name = ? and view_name = ?",
        [schema_name, table_name, schema_name, table_name],
    ).fetchall()
    if not found:
        return pl.DataFrame(schema=schema)
    frame = pl.from_arrow(con.sql(sql, params=params).to_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    return frame.cast(schema) if frame.height else pl.DataFrame(schema=schema)


def usage_by_package(con: duckdb.DuckDBPyConnection, top: int = TOP_PACKAGES) -> pl.DataFrame:
    """Bytes per day per package as drawn: usage_date, package, used_bytes (long form)."""
    params: dict[str, object] = {"top": top, "other": OTHER}
    return _frame(con, "reports.usage_daily", USAGE_SQL, params, _USAGE_SCHEMA)


def open_findings_by_run(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Open findings per type at each run time: run_at, discrepancy_type, open_findings."""
    return _frame(con, "reports.discrepancy_history", TREND_SQL, {}, _TREND_SCHEMA)


def open_money_by_run(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Open money at risk per direction at each run time: run_at, money_direction, open_amount."""
    return _frame(con, "reports.discrepancy_history", MONEY_SQL, {}, _MONEY_SCHEMA)


# --- drawing --------------------------------------------------------------------------------

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def _byte_unit(largest: float) -> tuple[str, float]:
    scale = 1.0
    for unit in _UNITS:
        if largest < scale * 1024 or unit == _UNITS[-1]:
            return unit, scale
        scale *= 1024
    return _UNITS[-1], scale


def _figure() -> tuple[Figure, Axes]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=_SIZE, dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)
    return figure, axes


def _no_data(axes: Axes, title: str, hint: str) -> None:
    axes.set_title(title, loc="left", fontsize=13, fontweight="bold")
    axes.text(
        0.5,
        0.55,
        "No data yet",
        ha="center",
        va="center",
        fontsize=22,
        color="#666666",
        transform=axes.transAxes,
    )
    axes.text(
        0.5, 0.4, hint, ha="center", va="center", fontsize=11, color="#888888",
        transform=axes.transAxes,
    )  # fmt: skip
    axes.set_xticks([])
    axes.set_yticks([])
    axes.grid(False)
    for spine in axes.spines.values():
        spine.set_visible(False)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _package_order(data: pl.DataFrame) -> list[str]:
    totals = (
        data.group_by("package")
        .agg(pl.col("used_bytes").sum())
        .sort(["used_bytes", "package"], descending=[True, False])
    )
    names = [name for name in totals["package"].to_list() if name != OTHER]
    return names + ([OTHER] if OTHER in totals["package"].to_list() else [])


def usage_chart_png(data: pl.DataFrame) -> bytes:
    """Stacked bars: one bar per day, one band per package."""
    figure, axes = _figure()
    title = "Data used per day, by package"
    if data.height == 0:
        _no_data(axes, title, "no usage observed yet (reports.usage_daily is empty or not built)")
        return _png(figure)
    days: list[date] = sorted(set(data["usage_date"].to_list()))
    packages = _package_order(data)
    per_day = data.group_by("usage_date").agg(pl.col("used_bytes").sum())
    unit, scale = _byte_unit(float(per_day["used_bytes"].max() or 0))
    colours = _colours(len(packages))
    positions = list(range(len(days)))
    bottoms = [0.0] * len(days)
    for package, colour in zip(packages, colours, strict=True):
        rows = dict(
            data.filter(pl.col("package") == package).select("usage_date", "used_bytes").iter_rows()
        )
        heights = [rows.get(day, 0) / scale for day in days]
        colour_of = "#bbbbbb" if package == OTHER else colour
        axes.bar(positions, heights, bottom=bottoms, label=package, color=colour_of, width=0.7)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    step = max(1, len(days) // 15)
    axes.set_xticks(positions[::step], [day.isoformat() for day in days[::step]])
    if len(days) > 7:
        axes.tick_params(axis="x", labelrotation=45)
    axes.set_xlim(-0.6, len(days) - 0.4)
    axes.set_ylabel(f"used ({unit})")
    axes.set_xlabel("UTC day")
    axes.set_title(title, loc="left", fontsize=13, fontweight="bold")
    _legend(
        axes,
        title=f"package (top {TOP_PACKAGES} by bytes)",
    )
    return _png(figure)


def _runs_drawn(data: pl.DataFrame, title: str) -> tuple[list[datetime], str]:
    """The run times a chart over runs draws (the latest `MAX_RUNS_DRAWN`), and its title
    saying so when some were left out."""
    runs: list[datetime] = sorted(set(data["run_at"].to_list()))
    if len(runs) > MAX_RUNS_DRAWN:
        return runs[-MAX_RUNS_DRAWN:], f"{title} (latest {MAX_RUNS_DRAWN} runs)"
    return runs, title


def trend_chart_png(data: pl.DataFrame) -> bytes:
    """Stacked bars: one bar per run time (the latest `MAX_RUNS_DRAWN`), one band per type."""
    figure, axes = _figure()
    title = "Open findings per type, by run"
    if data.height == 0:
        _no_data(
            axes,
            title,
            "no findings recorded yet (reports.discrepancy_history is empty or not built)",
        )
        return _png(figure)
    runs, title = _runs_drawn(data, title)
    latest = data.filter(pl.col("run_at") == runs[-1])
    types = latest.sort(["open_findings", "discrepancy_type"], descending=[True, False])[
        "discrepancy_type"
    ].to_list()
    positions = list(range(len(runs)))
    bottoms = [0] * len(runs)
    for kind, colour in zip(types, _colours(len(types)), strict=True):
        counts = dict(
            data.filter(pl.col("discrepancy_type") == kind)
            .select("run_at", "open_findings")
            .iter_rows()
        )
        heights = [counts.get(run, 0) for run in runs]
        axes.bar(positions, heights, bottom=bottoms, label=kind, color=colour, width=0.7)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    for position, total in zip(positions, bottoms, strict=True):
        axes.annotate(
            str(total),
            (position, total),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            fontsize=8,
            color="#444444",
        )
    step = max(1, len(runs) // 15)
    labels = [run.astimezone(UTC).strftime("%m-%d %H:%M:%S") for run in runs]
    axes.set_xticks(positions[::step], labels[::step])
    if len(runs) > 6:
        axes.tick_params(axis="x", labelrotation=45)
    axes.set_xlim(-0.6, len(runs) - 0.4)
    axes.set_ylabel("open findings")
    axes.set_xlabel("run time (UTC)")
    axes.set_title(title, loc="left", fontsize=13, fontweight="bold")
    _legend(
        axes,
        title="discrepancy type",
    )
    return _png(figure)


def money_chart_png(data: pl.DataFrame) -> bytes:
    """One line per money direction over the run times (the latest `MAX_RUNS_DRAWN`)."""
    figure, axes = _figure()
    title = "Open money at risk per direction, by run"
    if data.height == 0:
        _no_data(
            axes,
            title,
            "no finding moves money yet (reports.discrepancy_history is empty or not built)",
        )
        return _png(figure)
    runs, title = _runs_drawn(data, title)
    latest = data.filter(pl.col("run_at") == runs[-1])
    directions = latest.sort(["open_amount", "money_direction"], descending=[False, True])[
        "money_direction"
    ].to_list()
    positions = list(range(len(runs)))
    for direction, colour in zip(directions, _colours(len(directions)), strict=True):
        amounts = dict(
            data.filter(pl.col("money_direction") == direction)
            .select("run_at", "open_amount")
            .iter_rows()
        )
        values = [float(amounts.get(run) or 0) for run in runs]
        axes.plot(positions, values, marker="o", label=direction, color=colour, linewidth=2)
    step = max(1, len(runs) // 15)
    labels = [run.astimezone(UTC).strftime("%m-%d %H:%M:%S") for run in runs]
    axes.set_xticks(positions[::step], labels[::step])
    if len(runs) > 6:
        axes.tick_params(axis="x", labelrotation=45)
    axes.set_xlim(-0.4, len(runs) - 0.6 if len(runs) > 1 else 0.4)
    axes.set_ylim(bottom=0)
    axes.set_ylabel("open amount at risk (USD)")
    axes.set_xlabel("run time (UTC)")
    axes.set_title(title, loc="left", fontsize=13, fontweight="bold")
    _legend(axes, title="money direction")
    return _png(figure)


def _legend(axes: Axes, *, title: str) -> None:
    """Legend beside the plot, top entry = top band of the stacked bars."""
    handles, labels = axes.get_legend_handles_labels()
    axes.legend(
        handles[::-1],
        labels[::-1],
        title=title,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        fontsize=9,
    )


def _colours(count: int) -> list[str]:
    from matplotlib import colormaps

    if count <= 10:
        palette = colormaps["tab10"]
        return [palette(index) for index in range(count)]
    # tab20 holds ten dark and ten light shades in pairs: all dark ones first, then the light.
    palette = colormaps["tab20"]
    order = [*range(0, 20, 2), *range(1, 20, 2)]
    return [palette(order[index % 20]) for index in range(count)]


# --- the HTML page --------------------------------------------------------------------------


def _html_table(frame: pl.DataFrame) -> str:
    if frame.height == 0:
        return "<p><em>No rows yet.</em></p>"
    head = "".join(f"<th>{html.escape(name)}</th>" for name in frame.columns)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(value))}</td>" for value in row) + "</tr>"
        for row in frame.iter_rows()
    )
    return (
        f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{body}\n</tbody>\n</table></div>"
    )


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _wide(frame: pl.DataFrame, index: str, on: str, values: str) -> pl.DataFrame:
    if frame.height == 0:
        return frame
    return frame.pivot(on=on, index=index, values=values, sort_columns=True).fill_null(0)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1200px; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2.5rem; }
img { max-width: 100%; border: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; margin-top: 1rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; white-space: nowrap; }
.scroll { overflow-x: auto; }
thead th { background: #f4f4f4; position: sticky; top: 0; }
details { margin-top: 0.5rem; }
"""


def charts_html(
    usage: pl.DataFrame,
    trend: pl.DataFrame,
    usage_png: bytes,
    trend_png: bytes,
    money: pl.DataFrame | None = None,
    money_png: bytes | None = None,
) -> str:
    """The self-contained page: the charts and the data tables they are drawn from."""

    def image(png: bytes, alt: str) -> str:
        encoded = base64.b64encode(png).decode("ascii")
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'

    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    usage_table = _wide(usage, "usage_date", "package", "used_bytes")
    trend_table = _wide(trend, "run_at", "discrepancy_type", "open_findings")
    money_section = ""
    if money is not None and money_png is not None:
        money_table = _wide(money, "run_at", "money_direction", "open_amount")
        money_section = f"""<h2>Open money at risk per direction, by run</h2>
<p>From <code>reports.discrepancy_history</code>: the amount at risk of the findings open at each
run time, per money direction (findings that move no money left out; each finding with its amount
as last seen).</p>
{image(money_png, "Open money at risk per direction, by run")}
<details open><summary>Data (amount at risk)</summary>
{_html_table(money_table)}
</details>
"""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>esim-recon charts</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>esim-recon charts</h1>
<p>Generated {generated} from the DuckDB reports. The CSV and Parquet files beside this page hold
every row.</p>
<h2>Data used per day, by package</h2>
<p>From <code>reports.usage_daily</code>: bytes of new usage per UTC day; the {TOP_PACKAGES}
packages with the most bytes are shown, the rest are <code>{OTHER}</code>.</p>
{image(usage_png, "Data used per day, by package")}
<details open><summary>Data (bytes)</summary>
{_html_table(usage_table)}
</details>
<h2>Open findings per type, by run</h2>
<p>From <code>reports.discrepancy_history</code>: findings open at each run time, per
discrepancy type.</p>
{image(trend_png, "Open findings per type, by run")}
<details open><summary>Data (open findings)</summary>
{_html_table(trend_table)}
</details>
{money_section}</body>
</html>
"""


@dataclass(frozen=True)
class ChartFiles:
    usage_png: Path
    trend_png: Path
    html: Path
    usage_rows: int
    trend_rows: int
    money_png: Path
    money_rows: int

    def as_dict(self) -> dict[str, Path]:
        return {
            USAGE_PNG: self.usage_png,
            TREND_PNG: self.trend_png,
            MONEY_PNG: self.money_png,
            CHARTS_HTML: self.html,
        }


def write_charts(con: duckdb.DuckDBPyConnection, out_dir: str | Path) -> ChartFiles:
    """Draw the charts from the reports and write the PNGs and the HTML page atomically."""
    folder = Path(out_dir)
    usage = usage_by_package(con)
    trend = open_findings_by_run(con)
    money = open_money_by_run(con)
    usage_png = usage_chart_png(usage)
    trend_png = trend_chart_png(trend)
    money_png = money_chart_png(money)
    page = charts_html(usage, trend, usage_png, trend_png, money, money_png).encode("utf-8")
    return ChartFiles(
        usage_png=atomic_write(folder / USAGE_PNG, lambda handle: handle.write(usage_png)),
        trend_png=atomic_write(folder / TREND_PNG, lambda handle: handle.write(trend_png)),
        money_png=atomic_write(folder / MONEY_PNG, lambda handle: handle.write(money_png)),
        html=atomic_write(folder / CHARTS_HTML, lambda handle: handle.write(page)),
        usage_rows=usage.height,
        trend_rows=trend.height,
        money_rows=money.height,
    )
