"""The bookkeeping every ingestion asset shares: batched writes and the ingest log.

A load is one execution of an ingestion asset. It appends rows in batches of about
`BATCH_ROWS`, each batch one transaction, and records how it ended in `raw.ingest_log`. What
the provider client refused (its quarantine box) lands in `raw.provider_quarantine` with the
batch that follows, so nothing received is lost and nothing refused reaches a typed column.
Staging trusts list snapshots only from loads logged `complete`, so a crashed or failed load
never counts, while the snapshots it did write stay as ordinary observations.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg

from pipelines.providers import (
    AuthError,
    NotFoundError,
    ProviderError,
    QuarantineBox,
    Quarantined,
)
from pipelines.resources import WarehouseResource
from pipelines.warehouse import append_rows

BATCH_ROWS = 5_000
QUARANTINE_TABLE = "raw.provider_quarantine"
Row = Mapping[str, Any]


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False)


# What a base URL must hold, for the message of a 404 on a call every load makes.
BASE_URL_HINTS = {
    "esimtrade": "ESIMTRADE_BASE_URL, the API root including /api/v1",
    "pressone": "PRESSONE_BASE_URL, the API root without /customer/v2",
}


@dataclass
class Load:
    context: dg.AssetExecutionContext
    warehouse: WarehouseResource
    table: str
    provider: str | None
    started_at: datetime = field(default_factory=utc_now)
    rows_written: int = 0
    # A list load restricted to orders created on these days (UTC, inclusive); None = whole list.
    window: tuple[date, date] | None = None
    # The provider client's refused answers and records, written with each batch.
    quarantine: QuarantineBox | None = None
    quarantined: Counter[str] = field(default_factory=Counter)

    @property
    def run_id(self) -> str:
        return self.context.run.run_id

    @property
    def asset(self) -> str:
        return self.context.asset_key.to_user_string()

    def _quarantine_row(self, item: Quarantined) -> Row:
        return {
            "run_id": self.run_id,
            "fetched_at": item.fetched_at,
            "asset": self.asset,
            "provider": item.provider,
            "target_table": self.table,
            "source_endpoint": item.source_endpoint,
            "http_status": item.http_status,
            "page": item.page,
            "kind": item.kind,
            "reason": item.reason,
            "body_bytes": item.raw_bytes,
            "truncated": item.truncated,
            "raw_text": item.raw,
        }

    def write(self, rows: Sequence[Row]) -> None:
        """Append one batch, and what was quarantined since the last one, in one transaction."""
        refused = self.quarantine.drain() if self.quarantine is not None else []
        if not rows and not refused:
            return
        tables: dict[str, Sequence[Row]] = {self.table: rows} if rows else {}
        if refused:
            tables[QUARANTINE_TABLE] = [self._quarantine_row(item) for item in refused]
        with self.warehouse.connect() as con:
            append_rows(con, tables)
        self.rows_written += len(rows)
        self.quarantined.update(item.kind for item in refused)

    def quarantine_metadata(self) -> dict[str, Any]:
        """Counts for the asset's metadata: refused answers and records, by kind."""
        return {
            "quarantined": sum(self.quarantined.values()),
            "quarantined_by_kind": dg.MetadataValue.json(dict(sorted(self.quarantined.items()))),
        }

    async def drain(self, batches: AsyncIterable[Sequence[Row]]) -> None:
        """Write rows as they arrive, gathered into batches of about BATCH_ROWS.

        A full batch is written in a worker thread while the event loop goes on fetching
        (DuckDB and polars release the GIL for most of a write); batches are written one at a
        time and in order, so at most two batches of rows are held at once, whatever the
        length of the list. A failed write raises here, after the batches before it landed.
        """
        pending: list[Row] = []
        writing: asyncio.Future[None] | None = None
        try:
            async for rows in batches:
                pending.extend(rows)
                if len(pending) >= BATCH_ROWS:
                    if writing is not None:
                        await writing
                    writing = asyncio.ensure_future(asyncio.to_thread(self.write, pending))
                    pending = []
        finally:
            # Even when fetching failed: what was fetched before lands (or fails) first.
            if writing is not None:
                await writing
        self.write(pending)

    def log(self, status: str, *, requests: int | None = None, detail: str | None = None) -> None:
        with self.warehouse.connect() as con:
            con.execute(
                "INSERT INTO raw.ingest_log (run_id, asset, provider, started_at, finished_at,"
                " status, rows_written, requests, window_from, window_to, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    self.run_id,
                    self.asset,
                    self.provider,
                    self.started_at,
                    utc_now(),
                    status,
                    self.rows_written,
                    requests,
                    self.window[0] if self.window else None,
                    self.window[1] if self.window else None,
                    detail,
                ],
            )

    def skipped(self, variable: str) -> dg.MaterializeResult:
        """The provider is not configured: log it and succeed with nothing fetched."""
        self.log("skipped", detail=f"{variable} not set")
        self.context.log.info(f"{self.provider} is not configured ({variable} not set)")
        return dg.MaterializeResult(
            metadata={"skipped": f"{variable} not set", "dagster/row_count": 0}
        )

    def failure(self, exc: ProviderError) -> dg.Failure:
        """Log the failed load and describe it in one line for the on-call engineer."""
        self.write([])  # what was quarantined before the failure is kept
        self.log("failed", detail=str(exc)[:500])
        if isinstance(exc, AuthError):
            kind = "rejected the credentials"
        elif isinstance(exc, NotFoundError):
            # A whole-provider call (a list page, the token) answered 404: the URL is wrong.
            hint = BASE_URL_HINTS.get(self.provider, "the base URL")
            kind = f"answered HTTP 404, the endpoint was not found (check {hint}),"
        else:
            kind = "could not be reached"
        return dg.Failure(
            description=f"{self.provider} {kind} while running {self.asset}: {exc}",
            metadata={
                "provider": self.provider,
                "rows_written_before_failure": self.rows_written,
                **self.quarantine_metadata(),
            },
        )

    def walk_stopped(self, reason: str) -> dg.Failure:
        """A list walk stopped at one of the client's limits: the load is failed (a list
        never read to its end is not a snapshot), the pages read stay as observations."""
        self.write([])
        self.log("failed", detail=f"list walk stopped: {reason}"[:500])
        return dg.Failure(
            description=(
                f"{self.provider} list walk stopped while running {self.asset}: {reason} "
                "(see the ESIM_RECON_MAX_PAGES and ESIM_RECON_MAX_WALK_SECONDS settings)"
            ),
            metadata={
                "provider": self.provider,
                "rows_written_before_failure": self.rows_written,
                **self.quarantine_metadata(),
            },
        )
