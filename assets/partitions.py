"""Day partitions of the provider order lists, by UTC day of `created_at`.

The two list assets (`esimtrade_orders`, `pressone_orders`) are partitioned by day. How a list
load relates to its partitions:

- **No partition** (`esim-recon run`, the daily full refresh): the whole list is walked. This is
  the only kind of load that can tell the models a provider does not know an order, so the
  reconciliation counts a provider as ingested only once such a full load has completed.
- **A partition range** (a backfill from the UI or `esim-recon run --from/--to`, the hourly job's
  last two days): only orders created on those days are fetched and written, in one run
  (`BackfillPolicy.single_run()`). The window is recorded on `raw.ingest_log` (`window_from`,
  `window_to`). Staging keeps the latest snapshot of each order across all complete loads, so a
  windowed load supersedes the rows of its window only and never makes an older order vanish.

A full run does not materialize every day partition: with ~1,000 days that would write ~2,000
Dagster events per asset per run. Dagster's partition bar therefore shows the days that were
backfilled or refreshed by the hourly job; the asset's latest materialization (and the freshness
checks) also count full loads.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg

PARTITIONS_START_ENV = "ESIM_RECON_PARTITIONS_START"
DEFAULT_PARTITIONS_START = "2024-01-01"

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

# eSIMTrade order numbers: "B" + yyMMddHHmm (UTC creation minute) + a 4-digit sequence.
_ESIMTRADE_ORDER_NO = re.compile(r"^B(\d{10})\d{4}$")


def _partitions_start() -> str:
    start = os.environ.get(PARTITIONS_START_ENV) or DEFAULT_PARTITIONS_START
    try:
        date.fromisoformat(start)
    except ValueError:
        raise ValueError(
            f"{PARTITIONS_START_ENV} must be a date (YYYY-MM-DD), not {start!r}"
        ) from None
    return start


# One partition per UTC day, up to and including today (end_offset=1): the hourly job keeps
# today's partition current while the day is still running.
list_partitions = dg.DailyPartitionsDefinition(
    start_date=_partitions_start(), timezone="UTC", end_offset=1
)


@dataclass(frozen=True)
class ListWindow:
    """The created_at days (UTC, inclusive) one list load covers."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.first > self.last:
            raise ValueError(f"window starts after it ends: {self.first} > {self.last}")

    def contains(self, moment: datetime | date | None) -> bool:
        if moment is None:
            return False
        day = moment.astimezone(UTC).date() if isinstance(moment, datetime) else moment
        return self.first <= day <= self.last

    def __str__(self) -> str:
        return f"{self.first.isoformat()}..{self.last.isoformat()}"


def window_of(context: dg.AssetExecutionContext) -> ListWindow | None:
    """The run's partition range as a window; None for an unpartitioned (full) run."""
    if not context.has_partition_key_range:
        return None
    keys = context.partition_key_range
    return ListWindow(date.fromisoformat(keys.start), date.fromisoformat(keys.end))


def esimtrade_created_minute(order_no: str) -> datetime | None:
    """The UTC creation minute an eSIMTrade order number encodes, or None if it does not."""
    matched = _ESIMTRADE_ORDER_NO.match(order_no.strip())
    if not matched:
        return None
    try:
        return datetime.strptime(matched.group(1), "%y%m%d%H%M").replace(tzinfo=UTC)
    except ValueError:
        return None


def range_tags(first: date, last: date) -> dict[str, str]:
    """Run tags targeting the day partitions `first`..`last` (inclusive) in one run."""
    ListWindow(first, last)  # validates the order
    keys = set(list_partitions.get_partition_keys())
    for day in (first, last):
        if day.isoformat() not in keys:
            raise ValueError(
                f"{day.isoformat()} is not a list partition (days from "
                f"{list_partitions.start.date().isoformat()} to today, UTC; set "
                f"{PARTITIONS_START_ENV} for earlier days)"
            )
    return {RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()}


def recent_days_tags(now: datetime, days: int) -> dict[str, str]:
    """Range tags of the last `days` UTC days up to and including `now`'s day."""
    today = now.astimezone(UTC).date()
    return range_tags(today - timedelta(days=days - 1), today)
