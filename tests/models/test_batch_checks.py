"""The unique-key checks of a build on the touched orders: they test the rows the build wrote to
the models maintained by touched orders (each model's batch copy, `order_batches.<model>`), and
still catch a duplicate there, a written row of an order that was not touched, and a key shared
with an untouched order when the key does not hold the order."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from pipelines.incremental import ORDER_BATCH_ENV
from pipelines.sql_project import build, run_dbt
from tests.pipeline.helpers import query

from .helpers import MB, T0, RawLayer, list_row, local_row, sync_row

CHECK = "int_provider_esims_unique_key"
# keyed by row_id alone: a key may be shared across orders
ROW_CHECK = "int_reconciliation_rows_unique_key"


@pytest.fixture(scope="module")
def batch_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse whose last build was an order batch touching B1 only."""
    db = tmp_path_factory.mktemp("batch") / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    raw = RawLayer(con)
    raw.local_orders(
        [local_row("B1", "8944000000000000001"), local_row("B2", "8944000000000000002")]
    )
    raw.esimtrade_orders([list_row("B1"), list_row("B2")])
    raw.esimtrade_syncs(
        [
            sync_row("B1", "t1", "8944000000000000001", total_volume=100 * MB),
            sync_row("B2", "t2", "8944000000000000002", total_volume=100 * MB),
        ]
    )
    con.close()
    build(db, run_at=T0 + timedelta(minutes=5), incremental=True)
    con = duckdb.connect(str(db))
    RawLayer(con).esimtrade_syncs(
        [sync_row("B1", "t1", "8944000000000000001", total_volume=100 * MB, order_usage=MB)],
        run_id="run-2",
        at=T0 + timedelta(hours=1),
    )
    con.close()
    build(db, run_at=T0 + timedelta(hours=1, minutes=5), incremental=True)
    touched = query(db, "select provider, order_no, is_all from reconciliation.int_touched_orders")
    assert touched == [("esimtrade", "B1", False)]
    return db


def _check_status(
    batch_built: Path,
    tmp_path: Path,
    check: str,
    spoil: list[str],
    params: dict[str, str],
    batch: bool,
) -> str:
    """`check`'s status on a copy of the warehouse after the `spoil` statements ran on it."""
    db = tmp_path / "copy.duckdb"
    shutil.copy(batch_built, db)
    con = duckdb.connect(str(db))
    for statement in spoil:
        con.execute(statement, params)
    con.close()
    outcome = run_dbt(
        db, ["test", "--select", check], environ={ORDER_BATCH_ENV: "1" if batch else "0"}
    )
    return outcome.statuses[check]


# a second copy of the order's eSIM rows, as a model writing them twice leaves it: in the model
# and, for a touched order, in the rows the batch wrote
_DUPLICATE_ESIMS = (
    "insert into reconciliation.int_provider_esims "
    "select * from reconciliation.int_provider_esims where order_no = $order_no"
)
_DUPLICATE_WRITTEN_ESIMS = (
    "insert into order_batches.int_provider_esims "
    "select * from order_batches.int_provider_esims where order_no = $order_no"
)
# the batch wrote a row of an order it did not touch (so that order's old rows were kept)
_WRITE_UNTOUCHED_ESIMS = (
    "insert into order_batches.int_provider_esims "
    "select * from reconciliation.int_provider_esims where order_no = $order_no"
)
# the batch wrote a row of an order it did not touch, under that row's own row_id
_WRITE_UNTOUCHED_ROWS = (
    "insert into order_batches.int_reconciliation_rows "
    "select * from reconciliation.int_reconciliation_rows where order_no = $order_no"
)
# B2's row takes the row_id of the order's row
_SHARE_ROW_ID = (
    "update reconciliation.int_reconciliation_rows set row_id = ("
    "  select row_id from reconciliation.int_reconciliation_rows where order_no = $order_no"
    ") where order_no = 'B2'"
)
_DUPLICATE_ROWS = (
    "insert into reconciliation.int_reconciliation_rows "
    "select * from reconciliation.int_reconciliation_rows where order_no = $order_no"
)


def _check_after_duplicating(batch_built: Path, tmp_path: Path, order_no: str, batch: bool) -> str:
    spoil = [_DUPLICATE_ESIMS] + ([_DUPLICATE_WRITTEN_ESIMS] if order_no == "B1" else [])
    return _check_status(batch_built, tmp_path, CHECK, spoil, {"order_no": order_no}, batch)


def test_a_duplicate_in_a_touched_order_fails_the_check(batch_built, tmp_path):
    assert _check_after_duplicating(batch_built, tmp_path, "B1", batch=True) == "warn"


def test_a_written_row_of_an_untouched_order_fails_the_check(batch_built, tmp_path):
    spoil = [_WRITE_UNTOUCHED_ESIMS]
    assert _check_status(batch_built, tmp_path, CHECK, spoil, {"order_no": "B2"}, True) == "warn"
    assert _check_status(batch_built, tmp_path, CHECK, [], {}, True) == "pass"


def test_a_written_row_of_an_untouched_order_fails_a_check_keyed_without_the_order(
    batch_built, tmp_path
):
    spoil = [_WRITE_UNTOUCHED_ROWS]
    params = {"order_no": "B2"}
    assert _check_status(batch_built, tmp_path, ROW_CHECK, spoil, params, True) == "warn"
    assert _check_status(batch_built, tmp_path, ROW_CHECK, [], {}, True) == "pass"


def test_an_untouched_order_is_left_to_the_builds_that_test_it_whole(batch_built, tmp_path):
    # the order batch does not read B2's rows; a whole build's test does
    assert _check_after_duplicating(batch_built, tmp_path, "B2", batch=True) == "pass"
    assert _check_after_duplicating(batch_built, tmp_path, "B2", batch=False) == "warn"


def _row_check_after_sharing(batch_built: Path, tmp_path: Path, row_of: str, batch: bool) -> str:
    """ROW_CHECK after B2's row shares its row_id with `row_of`'s row (a second B2 row when
    `row_of` is B2 itself)."""
    spoil = [_SHARE_ROW_ID] if row_of != "B2" else [_DUPLICATE_ROWS]
    return _check_status(batch_built, tmp_path, ROW_CHECK, spoil, {"order_no": row_of}, batch)


def test_a_key_shared_by_a_touched_and_an_untouched_order_fails_the_check(batch_built, tmp_path):
    assert _row_check_after_sharing(batch_built, tmp_path, "B1", batch=True) == "warn"


def test_a_key_shared_within_untouched_orders_is_left_to_whole_builds(batch_built, tmp_path):
    assert _row_check_after_sharing(batch_built, tmp_path, "B2", batch=True) == "pass"
    assert _row_check_after_sharing(batch_built, tmp_path, "B2", batch=False) == "warn"
