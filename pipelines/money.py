"""The money at risk of the open findings, summed per direction, for people and programs.

The amounts are decided in SQL (`sql/seeds/money_rules.csv`, applied by
`reconciliation.int_finding_money`, summed in `reports.money_at_risk`); this module only reads
the sums and words them. Amounts stay exact: `Decimal`, and 2-place text in JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import duckdb

# Every money_direction of the contract, in the order people read them.
DIRECTIONS: tuple[str, ...] = (
    "recoverable",
    "customer_exposure",
    "lost_cost",
    "unrecorded_cost",
    "overcharge",
    "books_overstate",
    "unverified",
    "none",
)
# The three figures a run ends with: money to get back now, customers holding a broken eSIM,
# money already lost.
HEADLINE: tuple[tuple[str, str], ...] = (
    ("recoverable", "recoverable now"),
    ("customer_exposure", "customer exposure"),
    ("lost_cost", "lost"),
)

# Per direction and currency, from either report (both name only catalog identifiers).
_SQL = {
    "reports.money_at_risk": (
        "select money_direction, currency, cast(sum(findings) as bigint), "
        "cast(sum(amount) as decimal(18, 2)) from reports.money_at_risk group by all"
    ),
    "reports.discrepancies": (
        "select money_direction, currency, cast(count(*) as bigint), "
        "cast(sum(amount_at_risk) as decimal(18, 2)) from reports.discrepancies group by all"
    ),
}


@dataclass(frozen=True)
class MoneyLine:
    direction: str
    currency: str
    findings: int
    amount: Decimal

    def to_json(self) -> dict[str, Any]:
        return {
            "money_direction": self.direction,
            "currency": self.currency,
            "findings": self.findings,
            "amount": f"{self.amount:.2f}",
        }


def _rank(direction: str) -> int:
    return DIRECTIONS.index(direction) if direction in DIRECTIONS else len(DIRECTIONS)


def _exists(con: duckdb.DuckDBPyConnection, relation: str) -> bool:
    schema, name = relation.split(".")
    found = con.execute(
        "select count(*) from duckdb_tables() where schema_name = ? and table_name = ?",
        [schema, name],
    ).fetchone()
    return bool(found and found[0])


def money_lines(
    con: duckdb.DuckDBPyConnection, relation: str = "reports.money_at_risk"
) -> list[MoneyLine]:
    """Open findings and amount per direction and currency, all providers together; empty when
    the relation is not built yet."""
    if not _exists(con, relation):
        return []
    lines = [
        MoneyLine(str(direction), str(currency), int(findings), Decimal(amount or 0))
        for direction, currency, findings, amount in con.execute(_SQL[relation]).fetchall()
    ]
    return sorted(lines, key=lambda line: (_rank(line.direction), line.currency))


def headline(lines: Sequence[MoneyLine]) -> dict[str, dict[str, str]]:
    """recoverable / customer_exposure / lost_cost: amount per currency (USD when none)."""
    result: dict[str, dict[str, str]] = {}
    for direction, _label in HEADLINE:
        amounts = {
            line.currency: f"{line.amount:.2f}" for line in lines if line.direction == direction
        }
        result[direction] = amounts or {"USD": "0.00"}
    return result


def summary_json(lines: Sequence[MoneyLine]) -> dict[str, Any]:
    """What `status --json` and run summaries carry: the headline and every direction."""
    return {
        "headline": headline(lines),
        "by_direction": [line.to_json() for line in lines],
    }


def _amounts(amounts: Mapping[str, str]) -> str:
    return " + ".join(f"{amount} {currency}" for currency, amount in sorted(amounts.items()))


def headline_text(summary: Mapping[str, Any]) -> str:
    """`Money at risk: recoverable now 12.52 USD · customer exposure 54.87 USD · lost 9.10 USD`."""
    figures = summary.get("headline") or {}
    parts = [
        f"{label} {_amounts(figures.get(direction) or {'USD': '0.00'})}"
        for direction, label in HEADLINE
    ]
    return "Money at risk: " + " · ".join(parts)


def money_summary(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """`summary_json` of reports.money_at_risk; empty before that report is built."""
    if not _exists(con, "reports.money_at_risk"):
        return {}
    return summary_json(money_lines(con))
