"""Every write connection of the warehouse resource finds the raw schema whole: a file made
before a column or a comment existed is brought up to date, and nothing stored is lost."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.resources import WarehouseResource


def _raw_state(db: Path) -> tuple[int, int, int, str | None]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        [(tables,)] = con.execute(
            "select count(*) from duckdb_tables() where schema_name = 'raw'"
        ).fetchall()
        [(row_key,)] = con.execute(
            "select count(*) from duckdb_columns() where schema_name = 'raw' "
            "and table_name = 'local_orders_rejected' and column_name = 'row_key'"
        ).fetchall()
        [(kept,)] = con.execute("select count(*) from raw.local_orders_rejected").fetchall()
        [(comment,)] = con.execute(
            "select comment from duckdb_tables() where schema_name = 'raw' "
            "and table_name = 'ingest_log'"
        ).fetchall()
    finally:
        con.close()
    return tables, row_key, kept, comment


def test_a_missing_column_or_comment_is_restored_and_rows_are_kept(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    resource = WarehouseResource(database=str(db))
    with resource.connect():
        pass
    tables, row_key, _kept, comment = _raw_state(db)
    assert tables == 8 and row_key == 1 and comment

    # as an older version left it: no row_key column, a table without its comment, a row kept
    con = duckdb.connect(str(db))
    con.execute(
        "insert into raw.local_orders_rejected (run_id, loaded_at, source_file, line_no, reason) "
        "values ('run-1', now(), 'local_orders.csv', 7, 'bad amount')"
    )
    con.execute("alter table raw.local_orders_rejected drop column row_key")
    con.execute("comment on table raw.ingest_log is null")
    con.close()
    assert _raw_state(db)[1:] == (0, 1, None)

    with resource.connect():
        pass
    assert _raw_state(db) == (tables, 1, 1, comment)
