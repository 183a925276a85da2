"""Incremental builds against real pipeline runs: after every run, the warehouse built on the
touched orders only equals a full refresh of the same raw data, relation by relation (EXCEPT ALL
both ways), for every reports.* relation and every incrementally maintained model.

Between the runs the simulated world moves (statuses, usage), orders appear, one vanishes from
the eSIMTrade list, a sync and a usage fetch start failing, a local line is edited, another
removed (its order then yields no rows at all), and a local line takes an ICCID that another
order's line holds (a duplicate across orders: the other order is touched only through the
shared ICCID).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines import incremental
from pipelines.definitions import runnable
from pipelines.runner import materialize_all
from pipelines.simulator import RateLimits, generate_dataset, serve
from pipelines.sql_project import RUN_AT_ENV, build, environment
from tests.pipeline.helpers import compared_relations, differences, query, simulator_resources

START = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


def _compare_with_full_refresh(db: Path, run_at: datetime, name: str) -> dict[str, Any]:
    full = db.parent / f"{name}.duckdb"
    shutil.copy(db, full)
    build(full, full_refresh=True, run_at=run_at)
    return {"differences": differences(db, full), "rows": _row_counts(db)}


def _row_counts(db: Path) -> dict[str, int]:
    return {r: query(db, f"select count(*) from {r}")[0][0] for r in compared_relations(db)}


def _last_build(db: Path) -> dict[str, Any]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        recorded = incremental.last_build(con)
    finally:
        con.close()
    assert recorded is not None
    return recorded


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("incremental")
    dataset = generate_dataset(seed=23, orders=240)
    local, db = tmp / "local_orders.csv", tmp / "recon.duckdb"
    # Orders the providers only get later: the newest of each list.
    later_esimtrade = dataset.esimtrade[:3]
    later_pressone = [o for o in dataset.pressone if o.type == "sim"][:3]
    dataset.esimtrade = dataset.esimtrade[3:]
    dataset.pressone = [o for o in dataset.pressone if o not in later_pressone]
    dataset.reindex()
    dataset.write_local_orders(local)
    compared: list[dict[str, Any]] = []
    builds: list[dict[str, Any]] = []
    failed_checks: list[list[str]] = []

    def run(number: int, resources: dict[str, Any]) -> None:
        run_at = START + timedelta(hours=number)
        with environment({RUN_AT_ENV: run_at.isoformat()}):
            outcome = materialize_all(runnable, resources, db_path=db)
        assert outcome.success, outcome.failures
        failed_checks.append(list(outcome.failed_checks))
        builds.append(_last_build(db))
        compared.append(_compare_with_full_refresh(db, run_at, f"full_{number}"))

    with serve(dataset, rate_limits=RateLimits.unlimited()) as simulator:
        resources = simulator_resources(simulator, db, local, full_sync=False)
        run(1, resources)

        # Run 2: the world moves, new orders, a failing sync and usage fetch, an edited line.
        dataset.advance()
        dataset.esimtrade = later_esimtrade + dataset.esimtrade
        dataset.pressone = later_pressone + dataset.pressone
        dataset.reindex()
        next(e for e in dataset.esimtrade[5:] if e.esim_status == "IN_USE").poisoned = True
        next(u for u in dataset.pressone_usage.values() if u.status == "ACTIVE").poisoned = True
        edited = dataset.local_rows[10]
        edited.status = "cancelled" if edited.status != "cancelled" else "active"
        dataset.write_local_orders(local)
        run(2, resources)

        # Run 3: an order vanishes from the eSIMTrade list.
        vanished = dataset.esimtrade.pop(20)
        dataset.reindex()
        run(3, resources)

        # Run 4: the world moves again, nothing else.
        dataset.advance()
        run(4, resources)

        # Run 5, the local file only (no provider data, so nothing else touches an order): the
        # line of an order only it makes (missing_at_provider) is removed, the last such line so
        # that no line before it moves; a line takes the ICCID of the first line having one,
        # whose order is then touched only through the shared ICCID.
        missing = {
            order_no
            for (order_no,) in query(
                db,
                "select order_no from reports.discrepancies "
                "where discrepancy_type = 'missing_at_provider'",
            )
        }
        lines_per_order: dict[str, int] = {}
        for row in dataset.local_rows:
            lines_per_order[row.order_no] = lines_per_order.get(row.order_no, 0) + 1
        removed = next(
            r
            for r in reversed(dataset.local_rows)
            if r.order_no in missing and lines_per_order[r.order_no] == 1
        )
        holder = next(r for r in dataset.local_rows if r.iccid)
        taker = next(
            r
            for r in dataset.local_rows[dataset.local_rows.index(holder) + 1 :]
            if r.iccid and r.order_no != holder.order_no and r is not removed
        )
        taker.iccid = holder.iccid
        dataset.local_rows.remove(removed)
        dataset.write_local_orders(local)
        outcome = materialize_all(runnable, resources, db_path=db, selection="local_orders")
        assert outcome.success, outcome.failures
        run_at = START + timedelta(hours=5)
        built = build(db, incremental=True, run_at=run_at)
        failed_checks.append(
            [name for name, status in built.statuses.items() if status not in ("pass", "success")]
        )
        builds.append(_last_build(db))
        compared.append(_compare_with_full_refresh(db, run_at, "full_5"))

    return {
        "db": db,
        "compared": compared,
        "builds": builds,
        "failed_checks": failed_checks,
        "removed": removed,
        "holder": holder,
        "vanished": vanished.order_no,
    }


def test_the_first_run_is_a_full_refresh_and_the_next_ones_are_incremental(runs) -> None:
    kinds = [(b["kind"], b["rebuilt_all"]) for b in runs["builds"]]
    assert kinds[0] == ("full refresh", True)
    assert all(kind == ("touched orders", False) for kind in kinds[1:]), kinds
    assert all(b["touched_orders"] > 0 for b in runs["builds"][1:])


def test_the_reconciliation_coverage_checks_hold_on_every_build(runs) -> None:
    assert runs["failed_checks"][0] is not None
    for failed in runs["failed_checks"]:
        assert not [name for name in failed if "_coverage" in name], failed


@pytest.mark.parametrize("run_number", [1, 2, 3, 4, 5])
def test_every_run_equals_a_full_refresh_of_the_same_data(runs, run_number: int) -> None:
    compared = runs["compared"][run_number - 1]
    assert compared["differences"] == {}
    # not an empty comparison
    assert compared["rows"]["reports.reconciliation"] > 200
    assert compared["rows"]["reports.discrepancies"] > 0


def test_the_changes_are_in_the_reports(runs) -> None:
    db = runs["db"]
    removed = runs["removed"]
    assert not query(
        db,
        "select 1 from reports.reconciliation where provider = ? and order_no = ?",
        [removed.provider, removed.order_no],
    )
    shared = query(
        db,
        "select count(distinct order_no) from reports.discrepancies "
        "where discrepancy_type = 'duplicate_iccid' and iccid = ?",
        [runs["holder"].iccid],
    )
    assert shared[0][0] >= 2


def test_a_build_with_nothing_new_touches_no_orders(runs, tmp_path: Path) -> None:
    db = tmp_path / "again.duckdb"
    shutil.copy(runs["db"], db)
    run_at = START + timedelta(hours=6)
    build(db, incremental=True, run_at=run_at)
    recorded = _last_build(db)
    assert (recorded["kind"], recorded["rebuilt_all"], recorded["touched_orders"]) == (
        "touched orders",
        False,
        0,
    )
    compared = _compare_with_full_refresh(db, run_at, "full_again")
    assert compared["differences"] == {}


def test_the_kind_of_build_follows_the_record_and_the_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    con = duckdb.connect(str(tmp_path / "plan.duckdb"))
    try:

        def plan(requested: bool = False, whole: bool = True) -> tuple[bool, bool]:
            chosen = incremental.plan_build(
                con, full_refresh_requested=requested, whole_graph=whole
            )
            return chosen.full_refresh, chosen.order_batch

        assert plan() == (True, False)  # first build
        con.execute("create schema builds")
        con.execute(
            "create table builds.last_build as select cast($fingerprint as varchar) as fingerprint",
            {"fingerprint": incremental.fingerprint()},
        )
        assert plan() == (False, True)
        assert plan(requested=True) == (True, False)
        assert plan(whole=False) == (False, False)
        # the local status map the models read changed: a full refresh
        mapping = tmp_path / "status_map.csv"
        mapping.write_text("local_status,canonical_state\nshipped,active\n", encoding="utf-8")
        monkeypatch.setenv(incremental.LOCAL_STATUS_MAP_ENV, str(mapping))
        assert plan() == (True, False)
    finally:
        con.close()


def test_the_daily_job_is_a_full_refresh() -> None:
    from pipelines.automation import daily_full_refresh_job, hourly_sync_job

    assert daily_full_refresh_job.tags[incremental.KIND_TAG] == incremental.FULL_REFRESH_KIND
    assert hourly_sync_job.tags[incremental.KIND_TAG] != incremental.FULL_REFRESH_KIND


def test_a_build_of_part_of_the_graph_after_an_incremental_one_reads_every_order(
    runs, tmp_path: Path
) -> None:
    # The last build was on the touched orders: staging holds those only. A build selecting
    # part of the graph rebuilds staging whole first, then what it selects from every order.
    db = tmp_path / "part.duckdb"
    shutil.copy(runs["db"], db)
    run_at = START + timedelta(hours=7)
    build(db, select="stg_esimtrade_sync_attempts+", incremental=True, run_at=run_at)
    compared = _compare_with_full_refresh(db, run_at, "full_part")
    assert compared["differences"] == {}
    assert _last_build(db) == _last_build(runs["db"])  # a partial build records nothing
