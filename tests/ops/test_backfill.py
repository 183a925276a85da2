"""Day-partitioned list ingestion against the simulator: a backfill range in one run, windowed
loads that never change the verdicts of orders outside their window."""

from __future__ import annotations

from datetime import UTC, date
from pathlib import Path

import dagster as dg
import pytest

from assets.partitions import range_tags
from pipelines.definitions import runnable
from pipelines.runner import materialize_all
from pipelines.simulator import RateLimits, generate_dataset, serve
from tests.pipeline.helpers import findings, query, simulator_resources

FIRST, LAST = date(2026, 1, 5), date(2026, 1, 24)
# Small pages, so that a walk for a past window has pages to leave unread.
PAGE_SIZE = 10


@pytest.fixture
def world(tmp_path: Path):
    dataset = generate_dataset(seed=11, orders=300)
    local = tmp_path / "local_orders.csv"
    dataset.write_local_orders(local)
    return dataset, local, tmp_path / "recon.duckdb"


def _in_window(moment) -> bool:
    return FIRST <= moment.astimezone(UTC).date() <= LAST


def _run(simulator, db: Path, local: Path, tags: dict[str, str] | None = None):
    outcome = materialize_all(
        runnable,
        simulator_resources(simulator, db, local, page_size=PAGE_SIZE),
        db_path=db,
        tags=tags,
    )
    assert outcome.success, outcome.failures
    return outcome


def _verdicts(db: Path) -> dict[tuple[str, str, str], str]:
    rows = query(
        db,
        "SELECT provider, order_no, row_id, match_verdict FROM reports.reconciliation",
    )
    return {(provider, order_no, row_id): verdict for provider, order_no, row_id, verdict in rows}


def test_a_backfill_range_is_one_run_holding_exactly_the_orders_of_its_days(world) -> None:
    dataset, local, db = world
    with serve(dataset, rate_limits=RateLimits.unlimited()) as simulator:
        outcome = _run(simulator, db, local, range_tags(FIRST, LAST))

    expected_esimtrade = {e.order_no for e in dataset.esimtrade if _in_window(e.created_at)}
    expected_pressone = {o.id for o in dataset.pressone if _in_window(o.created_at)}
    assert len(expected_esimtrade) > 10 and len(expected_pressone) > 10
    esimtrade = {no for (no,) in query(db, "SELECT provider_order_no FROM raw.esimtrade_orders")}
    pressone = {order_id for (order_id,) in query(db, "SELECT order_id FROM raw.pressone_orders")}
    assert esimtrade == expected_esimtrade
    assert pressone == expected_pressone

    # The window is on the ingest log, and the walk of the undated eSIMTrade list stopped
    # before its end (the orders are spread over 180 days; the window is 20 of them).
    logged = query(
        db,
        "SELECT asset, window_from, window_to FROM raw.ingest_log "
        "WHERE asset IN ('esimtrade_orders', 'pressone_orders') ORDER BY asset",
    )
    assert logged == [("esimtrade_orders", FIRST, LAST), ("pressone_orders", FIRST, LAST)]

    with dg.DagsterInstance.get() as instance:
        assert len(instance.get_run_records()) == 1
        days = {f"2026-01-{day:02d}" for day in range(5, 25)}
        for asset in ("esimtrade_orders", "pressone_orders"):
            key = dg.AssetKey(asset)
            records = instance.fetch_materializations(key, limit=100).records
            assert {r.partition_key for r in records} == days
            assert {r.run_id for r in records} == {outcome.run_id}
            assert instance.get_materialized_partitions(key) == days
        [esimtrade_record] = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("esimtrade_orders"), asset_partitions=["2026-01-05"]
            ),
            limit=1,
        ).records
        metadata = esimtrade_record.asset_materialization.metadata
        assert metadata["stopped_early"].value is True
        paging = metadata["paging"].value
        assert paging["pages_requested"] < len(dataset.esimtrade) / PAGE_SIZE


def test_a_windowed_load_alone_never_says_an_order_is_missing(world) -> None:
    dataset, local, db = world
    with serve(dataset, rate_limits=RateLimits.unlimited()) as simulator:
        _run(simulator, db, local, range_tags(FIRST, LAST))
    # Without a full list load nothing can be missing at the provider: older orders are
    # simply not looked at yet.
    assert not [f for f in findings(db) if f[3] == "missing_at_provider"]
    verdicts = _verdicts(db)
    assert "missing_at_provider" not in set(verdicts.values())
    [(pressone_not_checked,)] = query(
        db,
        "SELECT count(*) FROM reports.reconciliation "
        "WHERE provider = 'pressone' AND match_verdict = 'not_checked'",
    )
    assert pressone_not_checked > 0


def test_windowed_loads_after_a_full_load_change_no_verdict(world) -> None:
    dataset, local, db = world
    with serve(dataset, rate_limits=RateLimits.unlimited()) as simulator:
        _run(simulator, db, local)
        before_verdicts, before_findings = _verdicts(db), findings(db)
        assert "missing_at_provider" in set(before_verdicts.values())
        _run(simulator, db, local, range_tags(FIRST, LAST))
        _run(simulator, db, local, range_tags(date(2026, 2, 20), date(2026, 2, 27)))
    assert _verdicts(db) == before_verdicts
    assert findings(db) == before_findings
    # The windowed loads wrote only their days, and the full load's snapshots of every other
    # order are still the latest: staging still lists every order.
    [(listed,)] = query(db, "SELECT count(*) FROM staging.stg_esimtrade_list_orders")
    assert listed == len(dataset.esimtrade)
