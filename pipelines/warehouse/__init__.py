"""The DuckDB warehouse: one file, one writer, append-only raw tables.

DuckDB lets one process open a file read-write at a time. Every writer goes through
`Warehouse.connect`, which waits a bounded time for another process's lock to go away and then
fails with `WarehouseBusyError`, a message a person can act on, instead of a lock stack trace.
"""

from pipelines.warehouse._store import (
    RAW_TABLES,
    Warehouse,
    WarehouseBusyError,
    WarehouseError,
    append_frames,
    append_rows,
    table_schema,
)

__all__ = [
    "RAW_TABLES",
    "Warehouse",
    "WarehouseBusyError",
    "WarehouseError",
    "append_frames",
    "append_rows",
    "table_schema",
]
