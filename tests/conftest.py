"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_environment(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Each test gets its own Dagster home and no provider configuration from the outside."""
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text(
        (Path(__file__).resolve().parents[1] / "dagster.yaml").read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name in (
        "PRESSONE_BASE_URL",
        "PRESSONE_CLIENT_ID",
        "PRESSONE_CLIENT_SECRET",
        "ESIMTRADE_BASE_URL",
        "ESIMTRADE_ACCESS_CODE",
        "ESIMTRADE_SECRET_KEY",
        "ESIM_RECON_LOCAL_ORDERS",
        "ESIM_RECON_DB",
        "ESIM_RECON_EXPORT_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    yield
