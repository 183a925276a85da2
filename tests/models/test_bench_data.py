"""The models benchmark's synthetic data: the models find exactly what the generator plants."""

from __future__ import annotations

import duckdb

from bench._models_data import BARE_SQL, generate
from pipelines.warehouse import Warehouse

from .helpers import T0, build

ROWS = 3000


def _planted(con: duckdb.DuckDBPyConnection, where: str, table: str = "provider_rows") -> int:
    row = con.execute(f"select count(*) from bench.{table} where {where}").fetchone()
    return int(row[0]) if row else 0


def test_models_find_the_planted_disagreements(con: duckdb.DuckDBPyConnection) -> None:
    generate(con, ROWS)
    build(con, run_at=T0)
    found = dict(
        con.execute(
            "select discrepancy_type, count(*) from reports.discrepancies group by 1"
        ).fetchall()
    )
    expected = {
        "missing_at_provider": _planted(con, "r < 10", "local_rows"),
        "missing_locally": _planted(con, "r >= 10 and r < 20"),
        "status_mismatch": _planted(con, "r >= 20 and r < 40"),
        "amount_mismatch": _planted(con, "r >= 40 and r < 50"),
        "iccid_mismatch": _planted(con, "r >= 50 and r < 60"),
        "package_mismatch": _planted(con, "r >= 60 and r < 70"),
        "duplicate_iccid": _planted(con, "r >= 70 and r < 75"),
        "usage_exceeds_volume": _planted(con, "r >= 75 and r < 80"),
        "sync_failed": _planted(con, "r >= 80 and r < 83"),
        # An earlier `expired` observation, left for whatever the eSIM is in now.
        "invalid_transition": _planted(con, "r >= 83 and r < 85 and state <> 'expired'"),
        "usage_regression": _planted(con, "r >= 85 and r < 88"),
    }
    assert all(count > 0 for count in expected.values()), expected
    assert found == expected
    rows = con.execute("select match_verdict, count(*) from reports.reconciliation group by 1")
    verdicts = dict(rows.fetchall())
    assert verdicts["missing_at_provider"] == expected["missing_at_provider"]
    assert verdicts["missing_locally"] == expected["missing_locally"]
    # The second line of a duplicated order has no provider eSIM left to pair with.
    assert verdicts["not_checked"] == expected["duplicate_iccid"]


def test_bare_reference_query_classifies_the_same_row_findings(
    con: duckdb.DuckDBPyConnection,
) -> None:
    generate(con, ROWS)
    con.execute(BARE_SQL)
    bare = dict(
        con.execute(
            "select discrepancy_type, count(distinct (provider, order_no, iccid)) "
            "from bare_findings group by 1"
        ).fetchall()
    )
    build(con, run_at=T0)
    models = dict(
        con.execute(
            "select discrepancy_type, count(*) from reports.discrepancies "
            "where discrepancy_type in (select distinct discrepancy_type from bare_findings) "
            "group by 1"
        ).fetchall()
    )
    assert bare == models


def test_warehouse_connections_cap_duckdb_memory(tmp_path) -> None:
    warehouse = Warehouse(tmp_path / "w.duckdb", memory_limit="256MB")
    with warehouse.connect() as con:
        row = con.execute("select current_setting('memory_limit')").fetchone()
    assert row is not None
    assert row[0].replace(" ", "") in {"256.0MiB", "244.1MiB", "256MB", "244.1MB"}


def test_bench_report_table_is_replaced_between_markers_only(tmp_path) -> None:
    from bench.run import BEGIN, END, figures_table, update_report

    report = tmp_path / "REPORT.md"
    report.write_text(f"# Title\n\nprose before\n\n{BEGIN}\nold table\n{END}\n\nprose after\n")
    results = [
        {
            "file": "bench_x.json",
            "benchmark": "bench_x",
            "finished_at": "2026-01-01T00:00:00+00:00",
            "figures": [
                {"name": "speed", "value": 2.5, "unit": "x", "target": ">= 2", "met": True},
                {"name": "rss", "value": 900.0, "unit": "MB", "target": "<= 800", "met": False},
            ],
        }
    ]
    update_report(figures_table(results), report)
    text = report.read_text()
    assert "old table" not in text
    assert text.startswith("# Title\n\nprose before\n\n")
    assert text.endswith("\n\nprose after\n")
    assert "| bench_x | speed | 2.5 x | >= 2 | met |" in text
    assert "| bench_x | rss | 900 MB | <= 800 | **missed** |" in text
