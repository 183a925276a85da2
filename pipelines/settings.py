"""Configuration from the environment (and a `.env` file in the working directory).

The variable names are the outside contract (see README): changing one breaks users' schedulers.
Secrets are held as `SecretStr` so they never print by accident.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipelines.providers import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_JSON_DEPTH,
    DEFAULT_MAX_PAGES,
    DEFAULT_MAX_WALK_SECONDS,
)

DEFAULT_DB = Path("data/esim_recon.duckdb")
DEFAULT_EXPORT_DIR = Path("exports")
DATABASE_URL_SCHEMES = ("postgresql://", "postgres://")


class ConfigError(ValueError):
    """Configuration is missing or invalid; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    pressone_base_url: str | None = None
    pressone_client_id: str | None = None
    pressone_client_secret: SecretStr | None = None
    esimtrade_base_url: str | None = None
    esimtrade_access_code: str | None = None
    esimtrade_secret_key: SecretStr | None = None
    # A file path, or a database URL (postgresql://...) kept as text: a Path would fold its "//".
    esim_recon_local_orders: Path | str | None = None
    esim_recon_local_orders_query: str | None = None
    esim_recon_db: Path = DEFAULT_DB
    esim_recon_export_dir: Path = DEFAULT_EXPORT_DIR
    esim_recon_local_status_map: Path | None = None

    # Tuning knobs; the defaults follow the providers' documented limits.
    esimtrade_requests_per_minute: int = Field(default=120, ge=1)
    pressone_requests_per_minute: int | None = Field(default=None, ge=1)
    esim_recon_max_concurrency: int = Field(default=8, ge=1, le=256)
    esim_recon_http_timeout: float = Field(default=30.0, gt=0)
    esim_recon_retry_attempts: int = Field(default=6, ge=1, le=50)
    esim_recon_retry_seconds: float = Field(default=120.0, gt=0)
    esim_recon_retry_initial_wait: float = Field(default=0.5, gt=0)
    esim_recon_retry_max_wait: float = Field(default=30.0, gt=0)
    # Per-run time budget of the per-order syncs and usage requests (each provider), seconds;
    # unset: no limit. What a run does not reach, the next run does first.
    esim_recon_sync_seconds: float | None = Field(default=None, gt=0)
    # What one provider answer or one list walk may cost (see README, "Limits on provider
    # answers"): crossing one fails that request or walk, never the run.
    esim_recon_max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)
    # The JSON decoder recurses once per level: keep well inside Python's recursion limit.
    esim_recon_max_json_depth: int = Field(default=DEFAULT_MAX_JSON_DEPTH, ge=8, le=512)
    esim_recon_max_pages: int = Field(default=DEFAULT_MAX_PAGES, ge=1)
    esim_recon_max_walk_seconds: float = Field(default=DEFAULT_MAX_WALK_SECONDS, gt=0)

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("esim_recon_local_orders", mode="before")
    @classmethod
    def _path_or_database_url(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip().lower().startswith(DATABASE_URL_SCHEMES):
            return Path(value)
        return value.strip() if isinstance(value, str) else value

    @field_validator("pressone_base_url", "esimtrade_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _credentials_with_url(self) -> Self:
        required = {
            "pressone_base_url": ("pressone_client_id", "pressone_client_secret"),
            "esimtrade_base_url": ("esimtrade_access_code", "esimtrade_secret_key"),
        }
        for url_field, credential_fields in required.items():
            if getattr(self, url_field) is None:
                continue
            for name in credential_fields:
                if getattr(self, name) is None:
                    raise ValueError(f"{name.upper()} is not set but {url_field.upper()} is")
        return self

    @property
    def pressone_enabled(self) -> bool:
        return self.pressone_base_url is not None

    @property
    def esimtrade_enabled(self) -> bool:
        return self.esimtrade_base_url is not None

    def require_run_inputs(self) -> None:
        """What `esim-recon run` needs beyond a valid environment."""
        if not (self.pressone_enabled or self.esimtrade_enabled):
            raise ConfigError(
                "no provider configured: set ESIMTRADE_BASE_URL and/or PRESSONE_BASE_URL"
            )
        if self.esim_recon_local_orders is None:
            raise ConfigError("ESIM_RECON_LOCAL_ORDERS is not set (path of the local orders file)")
        # A database is checked (connection, query, columns) just before the run starts.
        if isinstance(self.esim_recon_local_orders, str):
            return
        if not self.esim_recon_local_orders.is_file():
            raise ConfigError(
                f"ESIM_RECON_LOCAL_ORDERS: no such file: {self.esim_recon_local_orders}"
            )


def load_dotenv_into_environ(path: Path = Path(".env")) -> None:
    """Make `.env` values visible to code that reads os.environ (Dagster's EnvVar does).

    Variables already set in the environment win, as they do for pydantic-settings.
    """
    if not path.is_file():
        return
    for key, value in dotenv_values(path).items():
        if value is not None:
            os.environ.setdefault(key.upper(), value)


def load_settings() -> Settings:
    """Read and validate settings; any problem becomes a one-line `ConfigError`."""
    try:
        return Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        location = ".".join(str(part) for part in error.get("loc", ()))
        message = error.get("msg", "invalid").removeprefix("Value error, ")
        if location:
            raise ConfigError(f"{location.upper()}: {message}") from None
        raise ConfigError(message) from None
