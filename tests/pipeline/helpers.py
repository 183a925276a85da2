"""Wiring the real assets to a running simulator for pipeline tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from pipelines.resources import (
    ESIMTradeResource,
    ExportsResource,
    LocalOrdersResource,
    PressOneResource,
    RunOptionsResource,
    WarehouseResource,
)
from pipelines.simulator import RunningSimulator

FAST_RETRY: dict[str, Any] = {
    "retry_attempts": 6,
    "retry_seconds": 30.0,
    "retry_initial_wait": 0.01,
    "retry_max_wait": 0.05,
    "timeout_seconds": 2.0,
}


def simulator_resources(
    simulator: RunningSimulator,
    db_path: Path,
    local_orders: Path,
    *,
    full_sync: bool = True,
    **tuning: Any,
) -> dict[str, Any]:
    env = simulator.env()
    options = FAST_RETRY | tuning
    return {
        "warehouse": WarehouseResource(database=str(db_path), lock_timeout_seconds=30),
        "esimtrade": ESIMTradeResource(
            base_url=env["ESIMTRADE_BASE_URL"],
            access_code=env["ESIMTRADE_ACCESS_CODE"],
            secret_key=env["ESIMTRADE_SECRET_KEY"],
            requests_per_minute=600_000,
            **options,
        ),
        "pressone": PressOneResource(
            base_url=env["PRESSONE_BASE_URL"],
            client_id=env["PRESSONE_CLIENT_ID"],
            client_secret=env["PRESSONE_CLIENT_SECRET"],
            **options,
        ),
        "local_orders_file": LocalOrdersResource(path=str(local_orders)),
        "exports": ExportsResource(directory=str(db_path.parent / "exports")),
        "run_options": RunOptionsResource(full_sync=full_sync),
    }


def query(db_path: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


# The models maintained by touched orders outside `reports` (each has a batch copy).
MAINTAINED = (
    "reconciliation.int_finding_money",
    "reconciliation.int_provider_esims",
    "reconciliation.int_reconciliation_rows",
    "reconciliation.int_row_findings",
    "reconciliation.int_state_transitions",
    "reconciliation.int_usage_changes",
    "reconciliation.int_usage_esim_days",
    "staging.stg_esim_usage_history",
)


def compared_relations(db_path: Path) -> list[str]:
    """What a build on the touched orders must leave as a full refresh would: every report
    and every maintained model."""
    reports = [
        f"reports.{name}"
        for (name,) in query(
            db_path,
            "select table_name from duckdb_tables() where schema_name = 'reports' "
            "order by table_name",
        )
    ]
    return [*reports, *MAINTAINED]


def differences(db_path: Path, other_path: Path) -> dict[str, tuple[int, int]]:
    """Per compared relation whose rows differ: (rows only in `db_path`, rows only in
    `other_path`), by EXCEPT ALL both ways."""
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        con.execute("attach $path as other (read_only)", {"path": str(other_path)})
        found: dict[str, tuple[int, int]] = {}
        for relation in compared_relations(db_path):
            mine, theirs = f"{db_path.stem}.{relation}", f"other.{relation}"
            only_mine = con.execute(
                f"select count(*) from (select * from {mine} except all select * from {theirs})"
            ).fetchone()
            only_theirs = con.execute(
                f"select count(*) from (select * from {theirs} except all select * from {mine})"
            ).fetchone()
            assert only_mine is not None and only_theirs is not None
            if only_mine[0] or only_theirs[0]:
                found[relation] = (only_mine[0], only_theirs[0])
        return found
    finally:
        con.close()


def findings(db_path: Path) -> set[tuple[str, str, str, str]]:
    return {
        (provider, order_no, iccid or "", kind)
        for provider, order_no, iccid, kind in query(
            db_path,
            "SELECT provider, order_no, iccid, discrepancy_type FROM reports.discrepancies",
        )
    }


def truth_findings(truth: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    return {
        (item["provider"], item["order_no"], item["iccid"] or "", item["discrepancy_type"])
        for item in truth["findings"]
    }


Money = dict[tuple[str, str, str, str], tuple[str, str, str]]


def finding_money(db_path: Path) -> Money:
    """Every finding's (amount_at_risk, currency, money_direction), amounts as 2-place text."""
    return {
        (provider, order_no, iccid or "", kind): (f"{amount:.2f}", currency, direction)
        for provider, order_no, iccid, kind, amount, currency, direction in query(
            db_path,
            "SELECT provider, order_no, iccid, discrepancy_type, amount_at_risk, currency, "
            "money_direction FROM reports.discrepancies",
        )
    }


def truth_money(truth: dict[str, Any]) -> Money:
    return {
        (item["provider"], item["order_no"], item["iccid"] or "", item["discrepancy_type"]): (
            item["amount_at_risk"],
            item["currency"],
            item["money_direction"],
        )
        for item in truth["findings"]
    }


def money_mismatches(found: Money, expected: Money) -> list[tuple[Any, ...]]:
    """The findings whose money differs (first ten), for an assertion message."""
    keys = sorted(set(found) | set(expected))
    return [(k, found.get(k), expected.get(k)) for k in keys if found.get(k) != expected.get(k)][
        :10
    ]
