"""Matching (rules section 2), the two sides' staging (section 1) and what cannot be judged."""

from __future__ import annotations

from datetime import timedelta

from .helpers import (
    MB,
    T0,
    build,
    build_all,
    finding_keys,
    findings,
    list_row,
    local_row,
    query,
    sync_row,
    verdicts,
)

O1 = "B26011012000001"
O2 = "B26011012000002"
ICCID_1 = "8944000000000000001"
ICCID_2 = "8944000000000000002"
ICCID_3 = "8944000000000000003"


def _esimtrade_order(raw, order_no, esims, *, cost="1.0000", run_id="run-1", at=T0, qty=None):
    raw.esimtrade_orders(
        [list_row(order_no, cost_price=cost, quantity=qty or max(len(esims), 1))],
        run_id=run_id,
        at=at,
    )
    raw.esimtrade_syncs(
        [
            sync_row(
                order_no, tran, iccid, total_volume=500 * MB, order_usage=0, package_code="PK1"
            )
            for tran, iccid in esims
        ],
        run_id=run_id,
        at=at,
    )


def _pairs(con):
    return {
        (r["local_line_no"], r["provider_esim_key"], r["match_method"])
        for r in query(
            con,
            "select * from reports.reconciliation where local_line_no is not null "
            "and provider_esim_key is not null",
        )
    }


def test_quantity_two_order_matches_per_esim_by_iccid(con, raw):
    # File order is the reverse of the provider's key order: the ICCIDs decide.
    raw.local_orders([local_row(O1, ICCID_2), local_row(O1, ICCID_1)])
    _esimtrade_order(raw, O1, [("t1", ICCID_1), ("t2", ICCID_2)])
    build_all(con)
    assert _pairs(con) == {(2, "t2", "order_and_iccid"), (3, "t1", "order_and_iccid")}
    assert set(verdicts(con).values()) == {"matched"}
    assert findings(con) == []


def test_quantity_two_order_with_empty_local_iccids_pairs_in_order(con, raw):
    raw.local_orders([local_row(O1), local_row(O1, "  ")])
    _esimtrade_order(raw, O1, [("t2", ICCID_2), ("t1", ICCID_1)])
    build_all(con)
    # Provider eSIMs are paired by ICCID (nulls last) then key; local rows by file line.
    assert _pairs(con) == {(2, "t1", "order_position"), (3, "t2", "order_position")}
    rows = query(con, "select iccid, local_iccid from reports.reconciliation order by row_id")
    assert [r["local_iccid"] for r in rows] == [None, None]
    assert {r["iccid"] for r in rows} == {ICCID_1, ICCID_2}
    assert findings(con) == []


def test_exact_iccid_first_then_the_rest_of_the_order(con, raw):
    raw.local_orders([local_row(O1), local_row(O1, ICCID_2)])
    _esimtrade_order(raw, O1, [("t1", ICCID_1), ("t2", ICCID_2)])
    build_all(con)
    assert _pairs(con) == {(3, "t2", "order_and_iccid"), (2, "t1", "order_position")}


def test_an_iccid_repeated_within_an_order_pairs_one_to_one_in_order(con, raw):
    # O1: the ICCID twice on each side, the n-th local row with the n-th eSIM (by key).
    # O2: twice locally, once at the provider: the second local row is paired by position.
    raw.local_orders(
        [
            local_row(O1, ICCID_1),
            local_row(O1, ICCID_1),
            local_row(O1, ICCID_2),
            local_row(O2, ICCID_3),
            local_row(O2, ICCID_3),
        ]
    )
    _esimtrade_order(raw, O1, [("t2", ICCID_1), ("t1", ICCID_1), ("t3", ICCID_2)])
    _esimtrade_order(raw, O2, [("u1", ICCID_3), ("u2", "8944000000000000004")])
    build_all(con)
    assert _pairs(con) == {
        (2, "t1", "order_and_iccid"),
        (3, "t2", "order_and_iccid"),
        (4, "t3", "order_and_iccid"),
        (5, "u1", "order_and_iccid"),
        (6, "u2", "order_position"),
    }


def test_extra_local_row_of_an_order_known_only_as_a_whole_is_not_checked(con, raw):
    raw.local_orders([local_row(O1, status="ready"), local_row(O1, status="ready")])
    raw.esimtrade_orders([list_row(O1, status="got_resource", quantity=2)])
    build_all(con)
    assert verdicts(con) == {"L2": "matched", "L3": "not_checked"}
    [row] = query(con, "select * from reports.reconciliation where row_id = 'L2'")
    assert row["provider_state"] == "ready"  # stored list status, upper-cased, mapped
    assert row["provider_esim_key"] == O1 and row["provider_iccid"] is None
    assert findings(con) == []


def test_extra_local_row_in_an_order_the_provider_knows_is_not_judged(con, raw):
    # Rules 2.3: missing_at_provider only when the provider does not know the order.
    raw.local_orders([local_row(O1, ICCID_1), local_row(O1), local_row(O2, ICCID_2)])
    _esimtrade_order(raw, O1, [("t1", ICCID_1)])
    raw.esimtrade_syncs([{"requested_order_no": O2, "outcome": "not_found", "http_status": 404}])
    build_all(con)
    assert verdicts(con) == {"L2": "matched", "L3": "not_checked", "L4": "missing_at_provider"}
    assert finding_keys(con) == {("esimtrade", O2, ICCID_2, "missing_at_provider")}


def test_a_failed_sync_of_a_list_only_order_lands_on_its_provider_row(con, raw):
    raw.local_orders(
        [local_row(O1, ICCID_1, status="ready"), local_row(O1, ICCID_2, status="ready")]
    )
    raw.esimtrade_orders([list_row(O1, status="got_resource", quantity=2)])
    raw.esimtrade_syncs([{"requested_order_no": O1, "outcome": "failed", "http_status": 502}])
    build_all(con)
    assert verdicts(con) == {"L2": "matched", "L3": "not_checked"}
    assert finding_keys(con) == {("esimtrade", O1, ICCID_1, "sync_failed")}


def test_a_local_row_naming_a_pressone_topup_order_is_not_missing(con, raw):
    raw.local_orders(
        [
            {
                "provider": "pressone",
                "order_no": "T-1",
                "iccid": ICCID_1,
                "package_code": "pk",
                "amount": "2.0000",
            }
        ]
    )
    raw.pressone_orders(
        [{"order_id": 1, "order_code": "T-1", "order_type": "topup", "sim_id": 1, "iccid": ICCID_1}]
    )
    build_all(con)
    assert verdicts(con) == {"L2": "not_checked"}
    assert findings(con) == []


def test_provider_never_ingested_is_not_checked(con, raw):
    raw.local_orders(
        [
            local_row(O1, ICCID_1),
            {"provider": "pressone", "order_no": "20260110-000001", "iccid": ICCID_2},
        ]
    )
    # eSIMTrade syncs exist but no stored-list load ever completed; PressOne never ran.
    raw.esimtrade_syncs([sync_row(O1, "t1", ICCID_1)])
    raw.esimtrade_orders(
        [{"provider_order_no": O1, "status": "in_use"}], run_id="crashed", status="failed"
    )
    build_all(con)
    assert verdicts(con) == {
        "L2": "not_checked",
        "L3": "not_checked",
        f"P:esimtrade:{O1}:t1": "not_checked",
    }
    assert findings(con) == []


def test_no_local_load_means_provider_esims_are_not_checked(con, raw):
    _esimtrade_order(raw, O1, [("t1", ICCID_1)])
    raw.local_orders([local_row(O2, ICCID_2)], status=None)  # crashed load: no ingest_log row
    build_all(con)
    assert verdicts(con) == {f"P:esimtrade:{O1}:t1": "not_checked"}
    assert findings(con) == []


def test_crashed_and_partial_list_loads_are_ignored(con, raw):
    raw.local_orders([local_row(O1, ICCID_1)])
    _esimtrade_order(raw, O1, [("t1", ICCID_1)])
    raw.esimtrade_orders(
        [{"provider_order_no": O2, "status": "in_use"}], run_id="run-2", at=T0, status=None
    )
    raw.pressone_orders(
        [{"order_id": 7, "order_code": "P-7", "iccid": ICCID_3, "sim_id": 70}],
        run_id="run-2",
        status="partial",
    )
    build_all(con)
    assert verdicts(con) == {"L2": "matched"}
    assert findings(con) == []


def test_latest_complete_local_load_wins(con, raw):
    raw.local_orders([local_row(O1, ICCID_1, amount="9.0000")], run_id="run-1", at=T0)
    raw.local_orders([local_row(O1, ICCID_1)], run_id="run-2", at=T0 + timedelta(hours=1))
    raw.local_orders(
        [local_row(O1, ICCID_1, amount="7.0000")],
        run_id="run-3",
        at=T0 + timedelta(hours=2),
        status=None,
    )
    _esimtrade_order(raw, O1, [("t1", ICCID_1)])
    build_all(con)
    [row] = query(con, "select * from staging.stg_local_orders")
    assert (row["run_id"], str(row["amount"])) == ("run-2", "1.0000")
    assert findings(con) == []


def test_latest_snapshot_per_order_and_per_esim(con, raw):
    raw.local_orders([local_row(O1, ICCID_1, amount="1.5000", status="depleted")])
    _esimtrade_order(raw, O1, [("t1", ICCID_1)], cost="1.0000", run_id="run-1", at=T0)
    later = T0 + timedelta(hours=3)
    raw.esimtrade_orders(
        [list_row(O1, status="used_up", cost_price="1.5000")], run_id="run-2", at=later
    )
    raw.esimtrade_syncs(
        [
            sync_row(
                O1,
                "t1",
                ICCID_1,
                esim_status="USED_UP",
                total_volume=500 * MB,
                order_usage=500 * MB,
            )
        ],
        run_id="run-2",
        at=later,
    )
    build_all(con, later)
    [row] = query(con, "select * from reports.reconciliation")
    assert row["provider_state"] == "depleted"
    assert str(row["provider_amount"]) == "1.5000"
    assert row["provider_used_bytes"] == 500 * MB
    assert row["match_verdict"] == "matched"
    assert query(con, "select count(*) as n from staging.stg_esimtrade_esims")[0]["n"] == 1


def test_pressone_topups_are_not_esims(con, raw):
    code = "20260110-000001"
    raw.local_orders(
        [
            {
                "provider": "pressone",
                "order_no": code,
                "iccid": ICCID_1,
                "package_code": "pk",
                "amount": "4.0000",
                "status": "ready",
            }
        ]
    )
    raw.pressone_orders(
        [
            {
                "order_id": 1,
                "order_code": code,
                "package_id": "pk",
                "price": "4.0000",
                "sim_id": 10,
                "iccid": ICCID_1,
            },
            {
                "order_id": 2,
                "order_code": "20260111-000002",
                "order_type": "topup",
                "package_id": "pk-topup",
                "price": "2.0000",
                "sim_id": 10,
                "iccid": ICCID_1,
            },
        ]
    )
    build_all(con)
    assert verdicts(con) == {"L2": "matched"}
    assert findings(con) == []


def test_pressone_megabytes_become_exact_bytes(con, raw):
    code = "20260110-000001"
    raw.pressone_orders(
        [
            {"order_id": 1, "order_code": code, "package_id": "pk", "sim_id": 1, "iccid": ICCID_1},
            {"order_id": 1, "order_code": code, "package_id": "pk", "sim_id": 2, "iccid": ICCID_2},
        ]
    )
    raw.pressone_usage(
        [
            {
                "iccid": ICCID_1,
                "order_code": code,
                "usage_status": "ACTIVE",
                "total_mb": 2048.0,
                "remaining_mb": 767.0,
            },
            {
                "iccid": ICCID_2,
                "order_code": code,
                "usage_status": "ACTIVE",
                "total_mb": 10_485_760.0,
                "remaining_mb": 0.5,
            },
        ]
    )
    build_all(con)
    rows = {r["iccid"]: r for r in query(con, "select * from reports.usage")}
    assert rows[ICCID_1]["total_bytes"] == 2048 * 1_048_576 == 2_147_483_648
    assert rows[ICCID_1]["used_bytes"] == (2048 - 767) * 1_048_576
    assert rows[ICCID_1]["remaining_bytes"] == 767 * 1_048_576
    assert str(rows[ICCID_1]["pct_used"]) == "62.55"
    assert rows[ICCID_2]["total_bytes"] == 10_485_760 * 1_048_576
    assert rows[ICCID_2]["used_bytes"] == 10_485_760 * 1_048_576 - 524_288
    types = {
        r["column_name"]: r["data_type"]
        for r in query(
            con,
            "select column_name, data_type from duckdb_columns() "
            "where schema_name = 'reports' and table_name = 'usage'",
        )
    }
    assert types["total_bytes"] == types["used_bytes"] == types["remaining_bytes"] == "BIGINT"


def test_pressone_state_combines_order_status_and_usage_status(con, raw):
    rows = [
        # completed, no usage yet -> ready
        {"order_id": 1, "order_code": "C-1", "sim_id": 1, "iccid": ICCID_1},
        # partially refunded: usage status where known, else unknown
        {
            "order_id": 2,
            "order_code": "C-2",
            "order_status": "partially_refunded",
            "sim_id": 2,
            "iccid": ICCID_2,
        },
        {
            "order_id": 2,
            "order_code": "C-2",
            "order_status": "partially_refunded",
            "sim_id": 3,
            "iccid": ICCID_3,
        },
        # failed order without sims: one order-level row
        {"order_id": 3, "order_code": "C-3", "order_status": "failed"},
        # refunded beats the usage status
        {
            "order_id": 4,
            "order_code": "C-4",
            "order_status": "refunded",
            "sim_id": 4,
            "iccid": "8944000000000000004",
        },
    ]
    raw.pressone_orders(rows)
    raw.pressone_usage(
        [
            {
                "iccid": ICCID_2,
                "order_code": "C-2",
                "usage_status": "FINISHED",
                "total_mb": 1.0,
                "remaining_mb": 0.0,
            },
            {
                "iccid": "8944000000000000004",
                "order_code": "C-4",
                "usage_status": "ACTIVE",
                "total_mb": 1.0,
                "remaining_mb": 1.0,
            },
        ]
    )
    build_all(con)
    states = {
        (r["order_no"], r["esim_key"]): r["canonical_state"]
        for r in query(con, "select * from staging.stg_pressone_esims")
    }
    assert states == {
        ("C-1", ICCID_1): "ready",
        ("C-2", ICCID_2): "depleted",
        ("C-2", ICCID_3): "unknown",
        ("C-3", "C-3"): "failed",
        ("C-4", "8944000000000000004"): "cancelled",
    }


def test_recycled_iccid_usage_goes_to_the_newest_order(con, raw):
    raw.pressone_orders(
        [
            {
                "order_id": 1,
                "order_code": "OLD",
                "sim_id": 1,
                "iccid": ICCID_1,
                "created_at": T0 - timedelta(days=90),
            },
            {
                "order_id": 2,
                "order_code": "NEW",
                "sim_id": 2,
                "iccid": ICCID_1,
                "created_at": T0 - timedelta(days=1),
            },
        ]
    )
    raw.pressone_usage(
        [{"iccid": ICCID_1, "usage_status": "ACTIVE", "total_mb": 100.0, "remaining_mb": 40.0}]
    )
    build_all(con)
    usage = query(con, "select order_no, used_bytes from reports.usage")
    assert usage == [{"order_no": "NEW", "used_bytes": 60 * MB}]
    keys = query(con, "select order_no, esim_key from staging.stg_pressone_esims order by 1")
    assert [k["order_no"] for k in keys] == ["NEW", "OLD"]


def test_local_status_map_override(con, raw, tmp_path):
    mapping = tmp_path / "statuses.csv"
    mapping.write_text("local_status,canonical_state\nActivated,active\nready,pending\n")
    raw.local_orders(
        [local_row(O1, ICCID_1, status=" ACTIVATED "), local_row(O2, ICCID_2, status="ready")]
    )
    build(con, environ={"ESIM_RECON_LOCAL_STATUS_MAP": str(mapping)}, run_at=T0)
    states = {
        r["order_no"]: r["local_state"]
        for r in query(con, "select order_no, local_state from staging.stg_local_orders")
    }
    # The file decides; canonical names it does not mention still map to themselves.
    assert states == {O1: "active", O2: "pending"}
    unmapped = query(
        con,
        "select canonical_state from staging.stg_local_status_map where local_status = 'expired'",
    )
    assert unmapped == [{"canonical_state": "expired"}]


def test_an_empty_raw_layer_builds_empty_reports(con, raw):
    build_all(con)
    for relation in (
        "reconciliation",
        "discrepancies",
        "usage",
        "usage_daily",
        "status_transitions",
        "discrepancy_history",
    ):
        assert query(con, f"select count(*) as n from reports.{relation}") == [{"n": 0}]


def test_usage_report_needs_a_usage_observation(con, raw):
    raw.esimtrade_orders([{"provider_order_no": O1, "status": "got_resource"}])
    raw.esimtrade_orders([{"provider_order_no": O2, "status": "in_use"}], run_id="run-2")
    # O1 is still being allocated: the sync has no volume yet; O2 has both byte counts.
    raw.esimtrade_syncs(
        [
            {"requested_order_no": O1, "esim_status": "GETTING_RESOURCE"},
            sync_row(O2, "t2", ICCID_2, total_volume=10 * MB, order_usage=MB),
        ]
    )
    build_all(con)
    rows = query(con, "select order_no, esim_key, iccid, used_bytes from reports.usage")
    assert rows == [{"order_no": O2, "esim_key": "t2", "iccid": ICCID_2, "used_bytes": MB}]
