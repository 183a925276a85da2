"""Successive runs: transitions, usage history, usage_daily and persisted findings.

One warehouse goes through five builds; each test looks at the reports as they were after a
given build.

  run 1 (day 1)  eSIMTrade IN_USE 300 MiB      PressOne ACTIVE 500 of 1024 MB
  crash (day 2)  eSIMTrade IN_USE 350 MiB      (a sync run that never logged completion)
  run 2 (day 2)  eSIMTrade GOT_RESOURCE 200    PressOne FINISHED 1024 of 1024
  run 3 (day 3)  eSIMTrade IN_USE 250          PressOne ACTIVE 1048 of 2048 (top-up)
  rebuild        nothing new
  run 5 (day 4)  eSIMTrade IN_USE 100          (usage goes down again)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import duckdb
import pytest

from .helpers import MB, T0, RawLayer, build, list_row, local_row, query, sync_row

O1 = "B26011012000001"
C1 = "20260110-000001"
LOST = "B26011012000099"  # a local order the provider never heard of: a lasting finding
ICCID_1 = "8944000000000000001"
ICCID_2 = "8944000000000000002"
DAY = timedelta(days=1)

REPORTS = ("reconciliation", "discrepancies", "usage", "usage_daily", "status_transitions")


def _sync(raw: RawLayer, status: str, used_mib: int, *, run_id: str, at, log="complete"):
    raw.esimtrade_syncs(
        [
            sync_row(
                O1,
                "t1",
                ICCID_1,
                esim_status=status,
                total_volume=1024 * MB,
                order_usage=used_mib * MB,
                package_code="PK1",
            )
        ],
        run_id=run_id,
        at=at,
        status=log,
    )


def _usage(raw: RawLayer, status: str, total: float, remaining: float, *, run_id: str, at):
    raw.pressone_usage(
        [
            {
                "iccid": ICCID_2,
                "order_code": C1,
                "usage_status": status,
                "total_mb": total,
                "remaining_mb": remaining,
            }
        ],
        run_id=run_id,
        at=at,
    )


def _lists(raw: RawLayer, *, run_id: str, at) -> None:
    raw.esimtrade_orders([list_row(O1, cost_price="2.0000")], run_id=run_id, at=at)
    raw.pressone_orders(
        [
            {
                "order_id": 1,
                "order_code": C1,
                "package_id": "pk-1gb",
                "price": "4.0000",
                "sim_id": 1,
                "iccid": ICCID_2,
            }
        ],
        run_id=run_id,
        at=at,
    )


def _snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, list[dict[str, Any]]]:
    return {
        name: query(con, f"select * from reports.{name} order by all")
        for name in (*REPORTS, "discrepancy_history")
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict]]:
    con = duckdb.connect(str(tmp_path_factory.mktemp("history") / "warehouse.duckdb"))
    raw = RawLayer(con)
    shots: dict[str, dict] = {}
    raw.local_orders(
        [
            local_row(O1, ICCID_1, amount="2.0000"),
            {
                "provider": "pressone",
                "order_no": C1,
                "iccid": ICCID_2,
                "package_code": "pk-1gb",
                "amount": "4.0000",
            },
            local_row(LOST, None, amount="2.0000"),
        ]
    )
    # run 1, day 1
    _lists(raw, run_id="run-1", at=T0)
    _sync(raw, "IN_USE", 300, run_id="run-1", at=T0)
    _usage(raw, "ACTIVE", 1024.0, 524.0, run_id="run-1", at=T0)
    build(con, run_at=T0 + timedelta(minutes=5))
    shots["run1"] = _snapshot(con)
    # a crashed sync run on day 2, then run 2
    _sync(raw, "IN_USE", 350, run_id="crash", at=T0 + DAY - timedelta(hours=2), log=None)
    _lists(raw, run_id="run-2", at=T0 + DAY)
    _sync(raw, "GOT_RESOURCE", 200, run_id="run-2", at=T0 + DAY)
    _usage(raw, "FINISHED", 1024.0, 0.0, run_id="run-2", at=T0 + DAY)
    build(con, run_at=T0 + DAY + timedelta(minutes=5))
    shots["run2"] = _snapshot(con)
    # run 3, day 3: back to active, usage up again; PressOne topped up
    _lists(raw, run_id="run-3", at=T0 + 2 * DAY)
    _sync(raw, "IN_USE", 250, run_id="run-3", at=T0 + 2 * DAY)
    _usage(raw, "ACTIVE", 2048.0, 1000.0, run_id="run-3", at=T0 + 2 * DAY)
    build(con, run_at=T0 + 2 * DAY + timedelta(minutes=5))
    shots["run3"] = _snapshot(con)
    # rebuild with nothing new
    build(con, run_at=T0 + 2 * DAY + timedelta(minutes=30))
    shots["rebuild"] = _snapshot(con)
    # run 5, day 4: usage drops again
    _sync(raw, "IN_USE", 100, run_id="run-5", at=T0 + 3 * DAY)
    build(con, run_at=T0 + 3 * DAY + timedelta(minutes=5))
    shots["run5"] = _snapshot(con)
    con.close()
    yield shots


def _find(shot: dict, discrepancy_type: str, order_no: str = O1) -> list[dict]:
    return [
        f
        for f in shot["discrepancies"]
        if f["discrepancy_type"] == discrepancy_type and f["order_no"] == order_no
    ]


def test_usage_regression_after_a_decrease(runs):
    assert _find(runs["run1"], "usage_regression") == []
    [finding] = _find(runs["run2"], "usage_regression")
    # the crashed run's 350 MiB is an ordinary observation: the drop is 350 -> 200
    assert (finding["local_value"], finding["provider_value"]) == (str(350 * MB), str(200 * MB))
    assert finding["severity"] == "warning"
    assert finding["iccid"] == ICCID_1


def test_invalid_transition_backwards_on_the_main_line(runs):
    [finding] = _find(runs["run2"], "invalid_transition")
    assert (finding["local_value"], finding["provider_value"]) == ("active", "ready")
    transitions = [t for t in runs["run2"]["status_transitions"] if t["order_no"] == O1]
    assert [(t["from_state"], t["to_state"], t["is_invalid"]) for t in transitions] == [
        ("active", "ready", True)
    ]
    assert transitions[0]["first_seen_at"] == T0 + DAY
    assert transitions[0]["previous_seen_at"] == T0 + DAY - timedelta(hours=2)


def test_topup_revives_depleted_without_a_finding(runs):
    pressone = [t for t in runs["run3"]["status_transitions"] if t["order_no"] == C1]
    assert [(t["from_state"], t["to_state"], t["is_invalid"]) for t in pressone] == [
        ("active", "depleted", False),
        ("depleted", "active", False),
    ]
    assert _find(runs["run3"], "invalid_transition", C1) == []
    # ready -> active on eSIMTrade is forward again: the finding is gone
    assert _find(runs["run3"], "invalid_transition") == []


def test_usage_daily_counts_growth_once(runs):
    daily = {(r["provider"], r["usage_date"]): r["used_bytes"] for r in runs["run5"]["usage_daily"]}
    assert daily == {
        ("esimtrade", date(2026, 1, 10)): 300 * MB,
        ("esimtrade", date(2026, 1, 11)): 50 * MB,  # 350 over the 300 seen before; 200 adds 0
        ("esimtrade", date(2026, 1, 12)): 0,  # 250 is below the highest seen (350)
        ("esimtrade", date(2026, 1, 13)): 0,
        ("pressone", date(2026, 1, 10)): 500 * MB,
        ("pressone", date(2026, 1, 11)): 524 * MB,
        ("pressone", date(2026, 1, 12)): 24 * MB,
    }
    assert {r["package_code"] for r in runs["run5"]["usage_daily"]} == {"PK1", "pk-1gb"}


def test_a_rebuild_with_nothing_new_changes_nothing_but_last_seen(runs):
    before, after = runs["run3"], runs["rebuild"]
    for name in REPORTS:
        assert after[name] == before[name], name

    def without_last_seen(rows):
        return [{k: v for k, v in row.items() if k != "last_seen_at"} for row in rows]

    assert without_last_seen(after["discrepancy_history"]) == without_last_seen(
        before["discrepancy_history"]
    )
    assert {
        r["last_seen_at"] for r in after["discrepancy_history"] if r["resolved_at"] is None
    } == {T0 + 2 * DAY + timedelta(minutes=30)}


def test_a_lasting_finding_keeps_its_first_detected_at(runs):
    detected = {
        name: [f["detected_at"] for f in _find(shot, "missing_at_provider", LOST)]
        for name, shot in runs.items()
    }
    assert all(value == [T0 + timedelta(minutes=5)] for value in detected.values()), detected
    episodes = [
        h
        for h in runs["run5"]["discrepancy_history"]
        if h["order_no"] == LOST and h["discrepancy_type"] == "missing_at_provider"
    ]
    assert len(episodes) == 1 and episodes[0]["resolved_at"] is None


def test_a_finding_that_disappears_is_closed_in_history(runs):
    history = [
        h
        for h in runs["run3"]["discrepancy_history"]
        if h["discrepancy_type"] == "usage_regression"
    ]
    [episode] = history
    assert episode["first_detected_at"] == T0 + DAY + timedelta(minutes=5)
    assert episode["last_seen_at"] == T0 + DAY + timedelta(minutes=5)
    assert episode["resolved_at"] == T0 + 2 * DAY + timedelta(minutes=5)
    assert _find(runs["run3"], "usage_regression") == []


def test_a_finding_that_comes_back_opens_a_new_episode(runs):
    episodes = sorted(
        (
            h
            for h in runs["run5"]["discrepancy_history"]
            if h["discrepancy_type"] == "usage_regression"
        ),
        key=lambda h: h["first_detected_at"],
    )
    assert [(e["first_detected_at"], e["resolved_at"]) for e in episodes] == [
        (T0 + DAY + timedelta(minutes=5), T0 + 2 * DAY + timedelta(minutes=5)),
        (T0 + 3 * DAY + timedelta(minutes=5), None),
    ]
    [finding] = _find(runs["run5"], "usage_regression")
    assert finding["detected_at"] == T0 + 3 * DAY + timedelta(minutes=5)
    assert (finding["local_value"], finding["provider_value"]) == (str(250 * MB), str(100 * MB))
