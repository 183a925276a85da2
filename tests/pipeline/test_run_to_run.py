"""Two real pipeline runs against the simulator: transitions judged run to run, and a failed
fetch in run 2 leaving run 1's state standing.

Between the runs the simulated providers change: a refunded PressOne order comes back completed
with an ACTIVE sim, a cancelled eSIMTrade eSIM comes back IN_USE (its stored list status
refreshed too), and the usage endpoint of one PressOne sim and the sync of one eSIMTrade order
start failing. Each run reads the order lists before the usage and the syncs, as it always does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipelines.definitions import runnable
from pipelines.runner import materialize_all
from pipelines.simulator import RateLimits, generate_dataset, serve
from pipelines.simulator.model import PressOneUsage
from tests.pipeline.helpers import query, simulator_resources

ROW_COLUMNS = (
    "provider_state, provider_status, provider_used_bytes, provider_last_synced_at, "
    "provider_state_observed_at"
)


def _run(simulator: Any, db: Path, local: Path) -> None:
    outcome = materialize_all(runnable, simulator_resources(simulator, db, local), db_path=db)
    assert outcome.success, outcome.failures


def _findings(db: Path, provider: str, order_no: str) -> set[tuple[str, str | None, str | None]]:
    return set(
        query(
            db,
            "SELECT discrepancy_type, local_value, provider_value FROM reports.discrepancies "
            "WHERE provider = ? AND order_no = ?",
            [provider, order_no],
        )
    )


def _provider_rows(db: Path, provider: str, order_no: str) -> list[tuple[Any, ...]]:
    return query(
        db,
        f"SELECT {ROW_COLUMNS} FROM reports.reconciliation "
        "WHERE provider = ? AND order_no = ? ORDER BY provider_esim_key",
        [provider, order_no],
    )


def _transitions(db: Path, provider: str, order_no: str) -> list[tuple[str, str, bool]]:
    return query(
        db,
        "SELECT from_state, to_state, is_invalid FROM reports.status_transitions "
        "WHERE provider = ? AND order_no = ? ORDER BY first_seen_at",
        [provider, order_no],
    )


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("run_to_run")
    dataset = generate_dataset(seed=11, orders=300)
    local, db = tmp / "local_orders.csv", tmp / "recon.duckdb"
    dataset.write_local_orders(local)
    usage = dataset.pressone_usage

    def single_sim(order_status: str, usage_status: str | None):
        return [
            order
            for order in dataset.pressone
            if order.type == "sim"
            and order.status == order_status
            and len(order.sims) == 1
            and getattr(usage.get(order.sims[0].iccid), "status", None) == usage_status
            and not getattr(usage.get(order.sims[0].iccid), "poisoned", False)
        ]

    with serve(dataset, rate_limits=RateLimits.unlimited()) as simulator:
        _run(simulator, db, local)

        def quiet(provider: str, order_no: str) -> bool:
            return not _findings(db, provider, order_no)

        refunded = single_sim("refunded", "NOT_ACTIVE")[0]
        failing_sim = next(
            o for o in single_sim("completed", "ACTIVE") if quiet("pressone", o.code)
        )
        cancelled = next(e for e in dataset.esimtrade if e.esim_status == "CANCEL")
        failing_order = next(
            e
            for e in dataset.esimtrade
            if e.esim_status == "IN_USE" and not e.poisoned and quiet("esimtrade", e.order_no)
        )
        before = {
            "pressone": _provider_rows(db, "pressone", failing_sim.code),
            "esimtrade": _provider_rows(db, "esimtrade", failing_order.order_no),
        }

        refunded.status = "completed"
        usage[refunded.sims[0].iccid] = PressOneUsage(
            total_mb=1024, remaining_mb=500, status="ACTIVE", unlimited=False, expired_at=None
        )
        cancelled.esim_status, cancelled.stored_status = "IN_USE", "in_use"
        cancelled.smdp_status = "ENABLED"
        usage[failing_sim.sims[0].iccid].poisoned = True
        failing_order.poisoned = True
        failing_order.stored_status = "cancel"  # the refreshed list must not stand for the sync
        _run(simulator, db, local)

    return {
        "db": db,
        "refunded": refunded.code,
        "cancelled": cancelled.order_no,
        "failing_sim": failing_sim.code,
        "failing_order": failing_order.order_no,
        "before": before,
    }


def test_pressone_refunded_then_completed_and_active_is_cancelled_to_active(two_runs) -> None:
    db, order_no = two_runs["db"], two_runs["refunded"]
    assert _transitions(db, "pressone", order_no) == [("cancelled", "active", True)]
    assert ("invalid_transition", "cancelled", "active") in _findings(db, "pressone", order_no)


def test_esimtrade_cancel_then_in_use_is_cancelled_to_active(two_runs) -> None:
    db, order_no = two_runs["db"], two_runs["cancelled"]
    assert _transitions(db, "esimtrade", order_no) == [("cancelled", "active", True)]
    assert ("invalid_transition", "cancelled", "active") in _findings(db, "esimtrade", order_no)


@pytest.mark.parametrize(
    ("provider", "which"), [("pressone", "failing_sim"), ("esimtrade", "failing_order")]
)
def test_a_failed_fetch_in_run_2_keeps_run_1_and_is_only_sync_failed(
    two_runs, provider: str, which: str
) -> None:
    db, order_no = two_runs["db"], two_runs[which]
    assert _provider_rows(db, provider, order_no) == two_runs["before"][provider]
    assert {kind for kind, *_ in _findings(db, provider, order_no)} == {"sync_failed"}
    assert _transitions(db, provider, order_no) == []
