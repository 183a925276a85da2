"""Fixtures: a DuckDB file per test with the raw schema in place."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from .helpers import RawLayer


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


@pytest.fixture
def con(db_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(db_path))
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture
def raw(con: duckdb.DuckDBPyConnection) -> RawLayer:
    return RawLayer(con)
