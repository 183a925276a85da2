"""One focused test per discrepancy type, on one hand-made raw layer built once.

Every order in the scenario plants exactly one situation; a test asserts what the reports say
about its order, and one test asserts that nothing else was found.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import duckdb
import pytest

from pipelines.sql_project import discrepancy_codes

from .helpers import MB, T0, RawLayer, build_all, findings, list_row, local_row, query


def iccid(n: int) -> str:
    return f"8944{n:015d}"


# eSIMTrade orders: (order_no, local row or None, list row or None, syncs)
E = "B2601100000{:04d}".format

ESIMTRADE: list[tuple[str, dict | None, dict | None, list[dict]]] = [
    # clean match
    (E(1), {"iccid": iccid(1)}, {}, [{"esim_status": "IN_USE"}]),
    # status_mismatch warning (active vs depleted) and critical (active vs cancelled)
    (E(2), {"iccid": iccid(2)}, {}, [{"esim_status": "USED_UP"}]),
    (E(3), {"iccid": iccid(3)}, {}, [{"esim_status": "CANCEL"}]),
    # iccid_mismatch: same order, different valid ICCIDs
    (E(4), {"iccid": iccid(4)}, {}, [{"iccid": iccid(40)}]),
    # package_mismatch
    (E(5), {"iccid": iccid(5), "package_code": "PKX"}, {}, [{}]),
    # amount_mismatch (1.25 vs 1.27); no finding at 0.005 and at exactly 0.01
    (E(6), {"iccid": iccid(6)}, {"cost_price": "1.2700"}, [{}]),
    (E(7), {"iccid": iccid(7)}, {"cost_price": "1.2550"}, [{}]),
    (E(8), {"iccid": iccid(8)}, {"cost_price": "1.2600"}, [{}]),
    # usage_exceeds_volume: 600 MiB used of 500 MiB
    (E(9), {"iccid": iccid(9)}, {}, [{"order_usage": 600 * MB}]),
    # missing_at_provider: not in the list, sync answered 404
    (E(10), {"iccid": iccid(10)}, None, [{"outcome": "not_found", "http_status": 404}]),
    # missing_locally: in the stored list, no local row, never synced
    (E(11), None, {}, []),
    # sync_failed: an older successful sync, then the latest attempt failed
    (
        E(12),
        {"iccid": iccid(12)},
        {},
        [{}, {"outcome": "failed", "error": "HTTP 503 after 5 tries"}],
    ),
    # no sync_failed: a failed attempt, then a successful one
    (E(13), {"iccid": iccid(13)}, {}, [{"outcome": "failed", "http_status": 500}, {}]),
    # REVOKE spelling maps to revoked
    (E(14), {"iccid": iccid(14), "status": "revoked"}, {}, [{"esim_status": "REVOKE"}]),
    # duplicate_iccid: two local rows share an ICCID (second order known only from the list)
    (E(15), {"iccid": iccid(15)}, {}, [{}]),
    (E(16), {"iccid": iccid(15)}, {}, []),
    # invalid_iccid: local ICCID of the wrong shape, provider ICCID different: no iccid_mismatch
    (E(17), {"iccid": "8944-12"}, {}, [{"iccid": iccid(17)}]),
]

P = "20260110-{:06d}".format
PRESSONE: list[tuple[str, dict | None, list[dict], list[dict]]] = [
    # (order code, local row or None, order rows (one per sim), usage rows)
    (P(1), {"iccid": iccid(101)}, [{"iccid": iccid(101)}], [{"usage_status": "ACTIVE"}]),
    # unlimited plan: zeros are meaningless, never usage_exceeds_volume
    (
        P(2),
        {"iccid": iccid(102)},
        [{"iccid": iccid(102)}],
        [{"usage_status": "ACTIVE", "is_unlimited": True, "total_mb": 0.0, "remaining_mb": 0.0}],
    ),
    # missing_locally: a sim the local file does not have
    (P(3), None, [{"iccid": iccid(103)}], [{"usage_status": "NOT_ACTIVE"}]),
    # sync_failed: the latest usage attempt failed
    (
        P(4),
        {"iccid": iccid(104)},
        [{"iccid": iccid(104)}],
        [{"usage_status": "ACTIVE"}, {"outcome": "failed", "http_status": 429}],
    ),
    # refunded order -> cancelled, matches a local cancelled row
    (
        P(5),
        {"iccid": iccid(105), "status": "cancelled"},
        [{"iccid": iccid(105), "order_status": "refunded"}],
        [],
    ),
]
PRESSONE_LOCAL_ONLY = P(9)  # missing_at_provider: in no completed list load


def _plant(raw: RawLayer) -> None:
    local_rows: list[dict] = []
    list_rows: list[dict] = []
    sync_rows: list[tuple[int, dict]] = []
    for n, (order_no, local, listed, syncs) in enumerate(ESIMTRADE, start=1):
        if local is not None:
            local_rows.append(local_row(order_no, **{"amount": "1.2500", **local}))
        if listed is not None:
            list_rows.append(list_row(order_no, **{"cost_price": "1.2500", **listed}))
        for attempt, sync in enumerate(syncs):
            row = {"requested_order_no": order_no, **sync}
            if row.get("outcome", "ok") == "ok":
                row = {
                    "esim_tran_no": f"tran-{n}",
                    "iccid": local["iccid"] if local else None,
                    "esim_status": "IN_USE",
                    "total_volume": 500 * MB,
                    "order_usage": 100 * MB,
                    "package_code": "PK1",
                    **row,
                }
            sync_rows.append((attempt, row))
    for order_no, local, _sims, _usage in PRESSONE:
        if local is not None:
            local_rows.append(
                {
                    "provider": "pressone",
                    "order_no": order_no,
                    "package_code": "pk-1gb",
                    "amount": "4.5000",
                    **local,
                }
            )
    local_rows.append(
        {
            "provider": "pressone",
            "order_no": PRESSONE_LOCAL_ONLY,
            "iccid": iccid(109),
            "package_code": "pk-1gb",
            "amount": "4.5000",
        }
    )
    raw.local_orders(local_rows)
    raw.esimtrade_orders(list_rows)
    # Attempt 0 of every order in one run, attempt 1 in a later run (the latest attempt).
    for attempt in (0, 1):
        rows = [row for a, row in sync_rows if a == attempt]
        raw.esimtrade_syncs(rows, run_id=f"sync-{attempt}", at=T0 + timedelta(minutes=1 + attempt))

    order_rows = []
    usage_by_attempt: dict[int, list[dict]] = {0: [], 1: []}
    for n, (order_no, _local, sims, usage) in enumerate(PRESSONE, start=1):
        for index, sim in enumerate(sims):
            order_rows.append(
                {
                    "order_id": n,
                    "order_code": order_no,
                    "package_id": "pk-1gb",
                    "price": "4.5000",
                    "sim_id": n * 10 + index,
                    "sim_index": index,
                    **sim,
                }
            )
            for attempt, fetch in enumerate(usage):
                row = {"iccid": sim["iccid"], "order_code": order_no, **fetch}
                if row.get("outcome", "ok") == "ok":
                    row = {"total_mb": 1024.0, "remaining_mb": 512.0, **row}
                usage_by_attempt[attempt].append(row)
    raw.pressone_orders(order_rows)
    for attempt, rows in usage_by_attempt.items():
        raw.pressone_usage(rows, run_id=f"usage-{attempt}", at=T0 + timedelta(minutes=1 + attempt))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(str(tmp_path_factory.mktemp("findings") / "warehouse.duckdb"))
    _plant(RawLayer(con))
    build_all(con, T0 + timedelta(minutes=2))
    yield con
    con.close()


def _on_order(con: duckdb.DuckDBPyConnection, order_no: str) -> list[tuple[str, str]]:
    return sorted(
        (f["discrepancy_type"], f["severity"]) for f in findings(con) if f["order_no"] == order_no
    )


def _verdicts(con: duckdb.DuckDBPyConnection, order_no: str) -> list[str]:
    return sorted(
        r["match_verdict"]
        for r in query(
            con, "select match_verdict from reports.reconciliation where order_no = ?", [order_no]
        )
    )


def test_clean_rows_match_without_findings(scenario):
    for order_no in (E(1), E(7), E(8), E(13), E(14), P(1), P(2), P(5)):
        assert _on_order(scenario, order_no) == [], order_no
        assert _verdicts(scenario, order_no) == ["matched"], order_no


def test_status_mismatch_severity_depends_on_money_side_exits(scenario):
    assert _on_order(scenario, E(2)) == [("status_mismatch", "warning")]
    assert _on_order(scenario, E(3)) == [("status_mismatch", "critical")]
    [finding] = [f for f in findings(scenario, "status_mismatch") if f["order_no"] == E(3)]
    assert (finding["local_value"], finding["provider_value"]) == ("active", "cancelled")
    assert _verdicts(scenario, E(3)) == ["mismatched"]


def test_iccid_mismatch(scenario):
    [finding] = findings(scenario, "iccid_mismatch")
    assert finding["order_no"] == E(4)
    assert finding["iccid"] == iccid(4)  # the local row's ICCID keys the finding
    assert (finding["local_value"], finding["provider_value"]) == (iccid(4), iccid(40))
    assert finding["severity"] == "warning"


def test_package_mismatch(scenario):
    [finding] = findings(scenario, "package_mismatch")
    assert (finding["order_no"], finding["local_value"], finding["provider_value"]) == (
        E(5),
        "PKX",
        "PK1",
    )


def test_amount_mismatch_only_beyond_one_cent(scenario):
    [finding] = findings(scenario, "amount_mismatch")
    assert finding["order_no"] == E(6)
    assert finding["severity"] == "critical"
    assert (finding["local_value"], finding["provider_value"]) == ("1.2500", "1.2700")


def test_usage_exceeds_volume_not_for_unlimited_plans(scenario):
    [finding] = findings(scenario, "usage_exceeds_volume")
    assert finding["order_no"] == E(9)
    assert finding["severity"] == "warning"
    [usage] = query(scenario, "select * from reports.usage where order_no = ?", [P(2)])
    assert usage["is_unlimited"] is True
    assert usage["total_bytes"] is None and usage["used_bytes"] is None


def test_missing_at_provider_for_both_providers(scenario):
    found = {
        (f["provider"], f["order_no"], f["iccid"])
        for f in findings(scenario, "missing_at_provider")
    }
    assert found == {("esimtrade", E(10), iccid(10)), ("pressone", PRESSONE_LOCAL_ONLY, iccid(109))}
    assert _verdicts(scenario, E(10)) == ["missing_at_provider"]
    assert all(f["severity"] == "critical" for f in findings(scenario, "missing_at_provider"))


def test_missing_locally_keys_on_the_provider_iccid(scenario):
    found = {
        (f["provider"], f["order_no"], f["iccid"]) for f in findings(scenario, "missing_locally")
    }
    # A list-only eSIMTrade order has no ICCID: the key holds the empty string.
    assert found == {("esimtrade", E(11), ""), ("pressone", P(3), iccid(103))}
    assert _verdicts(scenario, E(11)) == ["missing_locally"]


def test_sync_failed_uses_the_latest_attempt(scenario):
    found = {(f["provider"], f["order_no"], f["iccid"]) for f in findings(scenario, "sync_failed")}
    # A failed order sync lands on the order's provider eSIM (its ICCID from the earlier sync);
    # a failed usage fetch on that sim's eSIM.
    assert found == {("esimtrade", E(12), iccid(12)), ("pressone", P(4), iccid(104))}
    [esimtrade] = [f for f in findings(scenario, "sync_failed") if f["provider"] == "esimtrade"]
    assert esimtrade["provider_value"] == "HTTP 503 after 5 tries"
    # The eSIM is still known from the earlier successful sync, so the row is matched.
    assert _verdicts(scenario, E(12)) == ["matched"]


def test_duplicate_iccid_flags_every_local_row(scenario):
    found = {(f["order_no"], f["iccid"]) for f in findings(scenario, "duplicate_iccid")}
    assert found == {(E(15), iccid(15)), (E(16), iccid(15))}


def test_invalid_iccid_and_no_iccid_mismatch_for_a_malformed_local_iccid(scenario):
    assert _on_order(scenario, E(17)) == [("invalid_iccid", "warning")]


def test_nothing_else_is_found(scenario):
    expected = {
        (E(2), "status_mismatch"),
        (E(3), "status_mismatch"),
        (E(4), "iccid_mismatch"),
        (E(5), "package_mismatch"),
        (E(6), "amount_mismatch"),
        (E(9), "usage_exceeds_volume"),
        (E(10), "missing_at_provider"),
        (E(11), "missing_locally"),
        (E(12), "sync_failed"),
        (E(15), "duplicate_iccid"),
        (E(16), "duplicate_iccid"),
        (E(17), "invalid_iccid"),
        (P(3), "missing_locally"),
        (P(4), "sync_failed"),
        (PRESSONE_LOCAL_ONLY, "missing_at_provider"),
    }
    assert {(f["order_no"], f["discrepancy_type"]) for f in findings(scenario)} == expected
    assert {f["discrepancy_type"] for f in findings(scenario)} <= set(discrepancy_codes())
    # One row per finding, each with its detection time.
    assert len(findings(scenario)) == len(expected)
    assert all(f["detected_at"] is not None for f in findings(scenario))


def test_every_row_appears_once_in_reconciliation(scenario):
    [counts] = query(
        scenario,
        """
        select
            (select count(*) from staging.stg_local_orders) as local_rows,
            (select count(distinct local_line_no) from reports.reconciliation) as local_in_report,
            (select count(local_line_no) from reports.reconciliation) as local_report_rows,
            (select count(*) from reconciliation.int_provider_esims) as provider_esims,
            (select count(*) from reports.reconciliation where provider_esim_key is not null)
                as provider_in_report,
            (select count(distinct (provider, order_no, provider_esim_key))
                from reports.reconciliation where provider_esim_key is not null)
                as distinct_provider_in_report,
            (select count(*) from reports.reconciliation) as report_rows
        """,
    )
    assert counts["local_rows"] == counts["local_in_report"]
    assert counts["provider_esims"] == counts["provider_in_report"]
    # "once": no local row and no provider eSIM stands on two rows
    assert counts["local_report_rows"] == counts["local_in_report"]
    assert counts["distinct_provider_in_report"] == counts["provider_in_report"]
    matched = query(
        scenario,
        "select count(*) as n from reports.reconciliation "
        "where local_line_no is not null and provider_esim_key is not null",
    )[0]["n"]
    assert counts["report_rows"] == counts["local_rows"] + counts["provider_esims"] - matched
