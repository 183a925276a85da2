"""Dagster resources: the warehouse and the two provider APIs, configured from the environment.

Provider clients know nothing of Dagster; these resources only hold configuration and hand out
clients. Tests swap them for resources pointed at the simulator.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from pydantic import Field, SecretStr

from pipelines import progress
from pipelines.providers import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_JSON_DEPTH,
    DEFAULT_MAX_PAGES,
    DEFAULT_MAX_WALK_SECONDS,
    ESIMTradeClient,
    PayloadLimits,
    PressOneClient,
    RetryPolicy,
)
from pipelines.settings import DEFAULT_EXPORT_DIR, Settings
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


def _tell_rate_limit_wait(
    name: str, prefix: str, requests_per_minute: int | None
) -> Callable[[float], None]:
    """What a client calls when its rate limit holds requests back: one line for the watcher."""
    pace = (
        f"paced to {requests_per_minute} requests/min ({prefix}_REQUESTS_PER_MINUTE)"
        if requests_per_minute
        else "held back"
    )

    def tell(seconds: float) -> None:
        progress.waiting(
            f"{prefix.lower()}-rate-limit",
            f"waiting for {name}'s rate limit: requests are {pace} or paused as the provider "
            f"asked (a {seconds:.0f} s wait now); the run goes on, slower",
        )

    return tell


class _ProviderResource(dg.ConfigurableResource):
    """Shared tuning for a provider API; the provider is enabled when `base_url` is set."""

    base_url: str | None = Field(default=None, description="API root; unset = provider disabled.")
    timeout_seconds: float = Field(default=30.0, description="Per-request timeout.")
    max_concurrency: int = Field(default=8, description="Requests in flight at once.")
    requests_per_minute: int | None = Field(
        default=None, description="Client-side rate limit (None: the provider default)."
    )
    retry_attempts: int = Field(default=6, description="Attempts per request before giving up.")
    retry_seconds: float = Field(default=120.0, description="Total time one request may retry.")
    retry_initial_wait: float = Field(default=0.5, description="First backoff wait, seconds.")
    retry_max_wait: float = Field(default=30.0, description="Longest single backoff wait.")
    page_size: int | None = Field(default=None, description="List page size.")
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES,
        description="Largest answer body accepted, bytes (ESIM_RECON_MAX_BODY_BYTES).",
    )
    max_json_depth: int = Field(
        default=DEFAULT_MAX_JSON_DEPTH,
        description="Deepest JSON nesting accepted (ESIM_RECON_MAX_JSON_DEPTH).",
    )
    max_pages: int = Field(
        default=DEFAULT_MAX_PAGES,
        description="Page requests one list walk may make, all passes (ESIM_RECON_MAX_PAGES).",
    )
    max_walk_seconds: float = Field(
        default=DEFAULT_MAX_WALK_SECONDS,
        description="Seconds one list walk may take, all passes (ESIM_RECON_MAX_WALK_SECONDS).",
    )

    @property
    def enabled(self) -> bool:
        return bool(self.base_url)

    def walk_options(self) -> dict[str, Any]:
        """The client's limits on answers and list walks."""
        return {
            "limits": PayloadLimits(
                max_body_bytes=self.max_body_bytes, max_json_depth=self.max_json_depth
            ),
            "max_pages": self.max_pages,
            "max_walk_seconds": self.max_walk_seconds,
        }

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.retry_attempts,
            max_total_seconds=self.retry_seconds,
            initial_wait=self.retry_initial_wait,
            max_wait=self.retry_max_wait,
        )


class ESIMTradeResource(_ProviderResource):
    """eSIMTrade reseller API (ESIMTRADE_* variables)."""

    access_code: str | None = Field(default=None, description="x-access-code header value.")
    secret_key: str | None = Field(default=None, description="x-secret-key header value.")

    def client(self) -> ESIMTradeClient:
        if not (self.base_url and self.access_code and self.secret_key):
            raise RuntimeError("eSIMTrade is not configured (ESIMTRADE_BASE_URL and credentials)")
        client = ESIMTradeClient(
            self.base_url,
            self.access_code,
            self.secret_key,
            timeout=self.timeout_seconds,
            retry=self.retry_policy(),
            max_concurrency=self.max_concurrency,
            requests_per_minute=self.requests_per_minute or 120,
            page_size=self.page_size or 100,
            **self.walk_options(),
        )
        client.on_pacing_wait(
            _tell_rate_limit_wait("eSIMTrade", "ESIMTRADE", self.requests_per_minute or 120)
        )
        return client


class PressOneResource(_ProviderResource):
    """PressOne eSIM API (PRESSONE_* variables)."""

    client_id: str | None = Field(default=None, description="OAuth client id.")
    client_secret: str | None = Field(default=None, description="OAuth client secret.")

    def client(self) -> PressOneClient:
        if not (self.base_url and self.client_id and self.client_secret):
            raise RuntimeError("PressOne is not configured (PRESSONE_BASE_URL and credentials)")
        client = PressOneClient(
            self.base_url,
            self.client_id,
            self.client_secret,
            timeout=self.timeout_seconds,
            retry=self.retry_policy(),
            max_concurrency=self.max_concurrency,
            requests_per_minute=self.requests_per_minute,
            page_size=self.page_size or 50,
            **self.walk_options(),
        )
        client.on_pacing_wait(
            _tell_rate_limit_wait("PressOne", "PRESSONE", self.requests_per_minute)
        )
        return client


class LocalOrdersResource(dg.ConfigurableResource):
    """Where the reseller's own order records are (ESIM_RECON_LOCAL_ORDERS)."""

    path: str | None = Field(
        default=None,
        description="CSV or Parquet file of local orders, or a postgresql:// database URL.",
    )
    query: str | None = Field(
        default=None,
        description=(
            "With a database URL: the query returning the local orders file's columns "
            "(ESIM_RECON_LOCAL_ORDERS_QUERY; default `select * from esim_orders`)."
        ),
    )


class ExportsResource(dg.ConfigurableResource):
    """Where the CSV and Parquet reports go (ESIM_RECON_EXPORT_DIR)."""

    directory: str = Field(default=str(DEFAULT_EXPORT_DIR), description="Export folder.")


class RunOptionsResource(dg.ConfigurableResource):
    """How much of the provider state one run refreshes."""

    full_sync: bool = Field(
        default=True,
        description=(
            "Sync every known order. False skips eSIMs already seen in a terminal state "
            "(unless the provider's list says they moved)."
        ),
    )
    sync_budget: int | None = Field(
        default=None,
        description="At most this many per-order syncs per provider per run; the rest wait.",
    )
    sync_seconds: float | None = Field(
        default=None,
        description=(
            "Per-order syncs (and usage requests) of each provider start only within this many "
            "seconds of the first (ESIM_RECON_SYNC_SECONDS); the rest wait for the next run, "
            "which does them first."
        ),
    )


def _secret(name: str, value: SecretStr | None) -> dg.EnvVar | str | None:
    """Secrets reach Dagster as EnvVar references where possible, so the UI shows only names."""
    if value is None:
        return None
    secret = value.get_secret_value()
    return dg.EnvVar(name) if os.environ.get(name) == secret else secret


def _local_orders_location(location: Path | str | None) -> dg.EnvVar | str | None:
    """A database URL may hold its password: like the secrets, it reaches Dagster as a
    reference to the environment variable where it can."""
    if location is None:
        return None
    if isinstance(location, str):
        return _secret("ESIM_RECON_LOCAL_ORDERS", SecretStr(location))
    return str(location)


def resources_from_settings(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The resources of a real run, configured from the contract's environment variables."""
    tuning = {
        "timeout_seconds": settings.esim_recon_http_timeout,
        "max_concurrency": settings.esim_recon_max_concurrency,
        "retry_attempts": settings.esim_recon_retry_attempts,
        "retry_seconds": settings.esim_recon_retry_seconds,
        "retry_initial_wait": settings.esim_recon_retry_initial_wait,
        "retry_max_wait": settings.esim_recon_retry_max_wait,
        "max_body_bytes": settings.esim_recon_max_body_bytes,
        "max_json_depth": settings.esim_recon_max_json_depth,
        "max_pages": settings.esim_recon_max_pages,
        "max_walk_seconds": settings.esim_recon_max_walk_seconds,
    }
    secret_key = settings.esimtrade_secret_key
    client_secret = settings.pressone_client_secret
    return {
        "warehouse": WarehouseResource(database=str(settings.esim_recon_db)),
        "esimtrade": ESIMTradeResource(
            base_url=settings.esimtrade_base_url,
            access_code=settings.esimtrade_access_code,
            secret_key=_secret("ESIMTRADE_SECRET_KEY", secret_key),
            requests_per_minute=settings.esimtrade_requests_per_minute,
            **tuning,
        ),
        "pressone": PressOneResource(
            base_url=settings.pressone_base_url,
            client_id=settings.pressone_client_id,
            client_secret=_secret("PRESSONE_CLIENT_SECRET", client_secret),
            requests_per_minute=settings.pressone_requests_per_minute,
            **tuning,
        ),
        "local_orders_file": LocalOrdersResource(
            path=_local_orders_location(settings.esim_recon_local_orders),
            query=settings.esim_recon_local_orders_query,
        ),
        "exports": ExportsResource(directory=str(settings.esim_recon_export_dir)),
        "run_options": RunOptionsResource(sync_seconds=settings.esim_recon_sync_seconds),
    }
