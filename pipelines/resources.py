"""Dagster resources: the warehouse and the two provider APIs, configured from the environment.

Provider clients know nothing of Dagster; these resources only hold configuration and hand out
clients. Tests swap them for resources pointed at the simulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from pydantic import Field

from pipelines.warehouse import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB file every asset reads and writes (one writer at a time)."""

    database: str = Field(description="Path of the DuckDB file (ESIM_RECON_DB).")
    lock_timeout_seconds: float = Field(
        default=120.0,
        description="How long a writer waits for another process's lock before failing.",
    )

    def warehouse(self) -> Warehouse:
        return Warehouse(self.database, lock_timeout_seconds=self.lock_timeout_seconds)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        warehouse = self.warehouse()
        with warehouse.connect() as con:
            warehouse.ensure_raw_schema(con)
            yield con
