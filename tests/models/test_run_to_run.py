"""Transitions are judged run to run, and a failed fetch never changes the state judged.

Each test writes two runs into a real DuckDB file the way ingestion does (the order list first,
then the usage fetches or syncs a minute later), builds the models after each run, and reads the
reports. An eSIM's state in a run is what that run saw last of it; a fresh order status joined
with the previous run's usage status is a state the eSIM was never in (contract.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb

from .helpers import MB, T0, RawLayer, build_all, findings, list_row, local_row, query, sync_row

DAY = timedelta(days=1)
LATER = timedelta(minutes=1)  # a run fetches usage or syncs after it has read the order list
RUN_1, RUN_2 = T0, T0 + DAY

PRESSONE_ORDER = "20260110-000001"
PRESSONE_ICCID = "8944000000000000002"
ESIMTRADE_ORDER = "B26011012000001"
ESIMTRADE_ICCID = "8944000000000000001"


def _pressone_local(raw: RawLayer, status: str) -> None:
    raw.local_orders(
        [
            {
                "provider": "pressone",
                "order_no": PRESSONE_ORDER,
                "iccid": PRESSONE_ICCID,
                "package_code": "pk-1gb",
                "amount": "4.0000",
                "status": status,
            }
        ]
    )


def _pressone_run(
    raw: RawLayer, run_id: str, at: datetime, order_status: str, usage: dict[str, Any]
) -> None:
    """One run: the order list at `at`, then one usage fetch of the sim a minute later."""
    raw.pressone_orders(
        [
            {
                "order_id": 1,
                "order_code": PRESSONE_ORDER,
                "order_status": order_status,
                "package_id": "pk-1gb",
                "price": "4.0000",
                "sim_id": 1,
                "iccid": PRESSONE_ICCID,
            }
        ],
        run_id=run_id,
        at=at,
    )
    raw.pressone_usage(
        [{"iccid": PRESSONE_ICCID, "order_code": PRESSONE_ORDER, **usage}],
        run_id=run_id,
        at=at + LATER,
    )


def _usage(status: str, remaining_mb: float) -> dict[str, Any]:
    return {"usage_status": status, "total_mb": 1024.0, "remaining_mb": remaining_mb}


FAILED_FETCH = {"outcome": "failed", "http_status": 503, "error": "HTTP 503"}


def _esimtrade_run(
    raw: RawLayer, run_id: str, at: datetime, list_status: str, sync: dict[str, Any]
) -> None:
    """One run: the stored list at `at` (refreshed first), then the order's sync a minute later."""
    raw.esimtrade_orders([list_row(ESIMTRADE_ORDER, status=list_status)], run_id=run_id, at=at)
    if sync.get("outcome") == "failed":
        row = {"requested_order_no": ESIMTRADE_ORDER, **sync}
    else:
        row = sync_row(
            ESIMTRADE_ORDER,
            "t1",
            ESIMTRADE_ICCID,
            total_volume=1024 * MB,
            package_code="PK1",
            **sync,
        )
    raw.esimtrade_syncs([row], run_id=run_id, at=at + LATER)


def _transitions(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str, bool]]:
    return [
        (t["provider"], t["from_state"], t["to_state"], t["is_invalid"])
        for t in query(
            con,
            "select * from reports.status_transitions order by provider, first_seen_at",
        )
    ]


def _types(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str | None, str | None]]:
    return [
        (f["provider"], f["discrepancy_type"], f["local_value"], f["provider_value"])
        for f in findings(con)
    ]


def _provider_row(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    [row] = query(
        con,
        "select provider_state, provider_status, provider_used_bytes, provider_last_synced_at, "
        "provider_state_observed_at, discrepancy_types from reports.reconciliation",
    )
    return row


def test_pressone_refunded_then_completed_and_active_is_cancelled_to_active(con, raw):
    _pressone_local(raw, "active")
    _pressone_run(raw, "run-1", RUN_1, "refunded", _usage("NOT_ACTIVE", 1024.0))
    build_all(con, RUN_1)
    # Run 2 reads the list (completed) before the usage (ACTIVE): completed with run 1's
    # NOT_ACTIVE (ready) was never the eSIM's state, and must not hide cancelled -> active.
    _pressone_run(raw, "run-2", RUN_2, "completed", _usage("ACTIVE", 524.0))
    build_all(con, RUN_2)

    assert _transitions(con) == [("pressone", "cancelled", "active", True)]
    [finding] = [f for f in findings(con) if f["discrepancy_type"] == "invalid_transition"]
    assert (finding["local_value"], finding["provider_value"]) == ("cancelled", "active")
    assert finding["iccid"] == PRESSONE_ICCID
    [transition] = query(con, "select * from reports.status_transitions")
    assert transition["previous_seen_at"] == RUN_1 + LATER
    assert transition["first_seen_at"] == RUN_2 + LATER


def test_pressone_first_run_is_one_state_not_ready_then_active(con, raw):
    _pressone_local(raw, "active")
    _pressone_run(raw, "run-1", RUN_1, "completed", _usage("ACTIVE", 524.0))
    build_all(con, RUN_1)

    # The list alone (completed, no usage yet) is not a state of run 1: the run saw it active.
    assert _transitions(con) == []
    assert query(con, "select canonical_state from staging.stg_esim_state_history") == [
        {"canonical_state": "active"}
    ]


def test_esimtrade_cancel_then_list_in_use_and_sync_in_use_is_cancelled_to_active(con, raw):
    raw.local_orders([local_row(ESIMTRADE_ORDER, ESIMTRADE_ICCID)])
    _esimtrade_run(raw, "run-1", RUN_1, "cancel", {"esim_status": "CANCEL", "order_usage": 0})
    build_all(con, RUN_1)
    _esimtrade_run(raw, "run-2", RUN_2, "in_use", {"esim_status": "IN_USE", "order_usage": 0})
    build_all(con, RUN_2)

    assert _transitions(con) == [("esimtrade", "cancelled", "active", True)]
    assert ("esimtrade", "invalid_transition", "cancelled", "active") in _types(con)


def test_esimtrade_cancel_listed_before_any_sync_then_in_use_is_cancelled_to_active(con, raw):
    raw.local_orders([local_row(ESIMTRADE_ORDER, ESIMTRADE_ICCID)])
    # Run 1's sync fails: the stored list (cancel) is the state run 1 judged.
    _esimtrade_run(raw, "run-1", RUN_1, "cancel", FAILED_FETCH)
    build_all(con, RUN_1)
    assert _provider_row(con)["provider_state"] == "cancelled"
    _esimtrade_run(raw, "run-2", RUN_2, "in_use", {"esim_status": "IN_USE", "order_usage": 0})
    build_all(con, RUN_2)

    assert _transitions(con) == [("esimtrade", "cancelled", "active", True)]
    assert _types(con) == [("esimtrade", "invalid_transition", "cancelled", "active")]


def test_pressone_failed_usage_fetch_keeps_the_last_state_and_usage(con, raw):
    _pressone_local(raw, "active")
    _pressone_run(raw, "run-1", RUN_1, "completed", _usage("ACTIVE", 524.0))
    build_all(con, RUN_1)
    before = _provider_row(con)
    _pressone_run(raw, "run-2", RUN_2, "completed", FAILED_FETCH)
    build_all(con, RUN_2)

    after = _provider_row(con)
    assert after["discrepancy_types"] == "sync_failed"
    assert {k: v for k, v in after.items() if k != "discrepancy_types"} == {
        k: v for k, v in before.items() if k != "discrepancy_types"
    }
    assert (after["provider_state"], after["provider_used_bytes"]) == ("active", 500 * MB)
    assert after["provider_state_observed_at"] == RUN_1 + LATER
    assert _types(con) == [("pressone", "sync_failed", None, "HTTP 503")]
    assert _transitions(con) == []


def test_pressone_failed_usage_fetch_after_a_refund_is_only_sync_failed(con, raw):
    _pressone_local(raw, "cancelled")
    _pressone_run(raw, "run-1", RUN_1, "refunded", _usage("NOT_ACTIVE", 1024.0))
    build_all(con, RUN_1)
    assert _types(con) == []
    # Run 2 lists the order completed but cannot fetch its usage: completed with run 1's
    # NOT_ACTIVE is not a state it was in, so nothing is judged and cancelled stands.
    _pressone_run(raw, "run-2", RUN_2, "completed", FAILED_FETCH)
    build_all(con, RUN_2)

    row = _provider_row(con)
    assert (row["provider_state"], row["provider_status"]) == ("cancelled", "refunded/NOT_ACTIVE")
    assert row["provider_state_observed_at"] == RUN_1 + LATER
    assert _types(con) == [("pressone", "sync_failed", None, "HTTP 503")]
    assert _transitions(con) == []


def test_pressone_never_fetched_completed_order_is_ready(con, raw):
    _pressone_local(raw, "ready")
    _pressone_run(raw, "run-1", RUN_1, "completed", FAILED_FETCH)
    build_all(con, RUN_1)

    # No successful usage ever: completed with no usage yet is ready (contract).
    row = _provider_row(con)
    assert (row["provider_state"], row["provider_used_bytes"]) == ("ready", None)
    assert row["provider_state_observed_at"] == RUN_1
    assert _types(con) == [("pressone", "sync_failed", None, "HTTP 503")]


def test_esimtrade_failed_sync_keeps_the_last_good_sync(con, raw):
    raw.local_orders([local_row(ESIMTRADE_ORDER, ESIMTRADE_ICCID)])
    _esimtrade_run(
        raw, "run-1", RUN_1, "in_use", {"esim_status": "IN_USE", "order_usage": 300 * MB}
    )
    build_all(con, RUN_1)
    before = _provider_row(con)
    # Run 2 refreshes the list (now saying cancel) and then its sync fails: the last good sync
    # stands, not the list.
    _esimtrade_run(raw, "run-2", RUN_2, "cancel", FAILED_FETCH)
    build_all(con, RUN_2)

    after = _provider_row(con)
    assert after["discrepancy_types"] == "sync_failed"
    assert {k: v for k, v in after.items() if k != "discrepancy_types"} == {
        k: v for k, v in before.items() if k != "discrepancy_types"
    }
    assert (after["provider_state"], after["provider_used_bytes"]) == ("active", 300 * MB)
    assert after["provider_state_observed_at"] == RUN_1 + LATER
    assert _types(con) == [("esimtrade", "sync_failed", None, "HTTP 503")]
    assert _transitions(con) == []


def test_two_runs_seeing_an_esim_at_the_same_instant_keep_the_later_run(con, raw):
    # Run 1 and run 2 each sync the eSIMTrade order at the same instant (run 2 re-read what a
    # slow run 1 was still writing); the PressOne sim is seen by run 2 only, once.
    raw.local_orders([local_row(ESIMTRADE_ORDER, ESIMTRADE_ICCID)])
    _pressone_local(raw, "active")
    _esimtrade_run(raw, "run-1", RUN_1, "in_use", {"esim_status": "IN_USE", "order_usage": 0})
    _esimtrade_run(raw, "run-2", RUN_1, "in_use", {"esim_status": "USED_UP", "order_usage": 0})
    _pressone_run(raw, "run-2", RUN_1, "completed", _usage("ACTIVE", 524.0))
    build_all(con, RUN_1)

    # (run 2's listing, a minute before run 1's sync, is an observation of its own)
    states = query(
        con,
        "select provider, run_id, observed_at, canonical_state "
        "from staging.stg_esim_state_history where observed_at = ? order by provider",
        [RUN_1 + LATER],
    )
    assert states == [
        {
            "provider": "esimtrade",
            "run_id": "run-2",
            "observed_at": RUN_1 + LATER,
            "canonical_state": "depleted",
        },
        {
            "provider": "pressone",
            "run_id": "run-2",
            "observed_at": RUN_1 + LATER,
            "canonical_state": "active",
        },
    ]


def test_two_fetches_of_an_esim_at_the_same_instant_keep_the_higher_usage(con, raw):
    raw.local_orders([local_row(ESIMTRADE_ORDER, ESIMTRADE_ICCID)])
    _esimtrade_run(raw, "run-1", RUN_1, "in_use", {"esim_status": "IN_USE", "order_usage": 300})
    _esimtrade_run(raw, "run-2", RUN_1, "in_use", {"esim_status": "IN_USE", "order_usage": 700})
    _esimtrade_run(raw, "run-3", RUN_2, "in_use", {"esim_status": "IN_USE", "order_usage": 900})
    build_all(con, RUN_2)

    assert query(
        con,
        "select observed_at, used_bytes from staging.stg_esim_usage_history order by observed_at",
    ) == [
        {"observed_at": RUN_1 + LATER, "used_bytes": 700},
        {"observed_at": RUN_2 + LATER, "used_bytes": 900},
    ]
