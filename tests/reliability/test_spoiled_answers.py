"""One spoiled provider answer never fails a run (issue 14): the real pipeline against the
simulator, one answer of each kind spoiled (simulator `Spoil`s). The run completes, the refused
answer or record is in `raw.provider_quarantine` with its reason, a refused per-order answer
makes that order `sync_failed`, and every other finding equals a clean run's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from assets.raw import esimtrade_orders
from pipelines.simulator import (
    Dataset,
    FaultConfig,
    RateLimits,
    Spoil,
    SpoilKind,
    generate_dataset,
    serve,
)
from pipelines.status import collect
from tests.pipeline.helpers import findings, query, simulator_resources
from tests.reliability._support import run_pipeline

# Small pages, so that the lists have several; a small body limit keeps the huge body cheap.
TUNING: dict[str, Any] = {"page_size": 5, "max_body_bytes": 512 * 1024}
TUNING_RETRY_ATTEMPTS = 6  # tests.pipeline.helpers.FAST_RETRY

Finding = tuple[str, str, str, str]


@pytest.fixture(scope="module")
def world() -> Dataset:
    return generate_dataset(seed=14, orders=40, drift_orders=0)


@pytest.fixture(scope="module")
def clean(world: Dataset, tmp_path_factory: pytest.TempPathFactory) -> set[Finding]:
    run = run_pipeline(world, tmp_path_factory.mktemp("clean"), **TUNING)
    assert query(run.db, "SELECT count(*) FROM raw.provider_quarantine") == [(0,)]
    return findings(run.db)


def _synced_order(world: Dataset, index: int) -> str:
    """An eSIMTrade order whose sync the dataset does not poison."""
    orders = [esim.order_no for esim in world.esimtrade if not esim.poisoned and esim.iccid]
    return orders[index]


def _quarantine(db: Path) -> list[dict[str, Any]]:
    columns = [
        "asset",
        "provider",
        "target_table",
        "source_endpoint",
        "http_status",
        "page",
        "kind",
        "reason",
        "body_bytes",
        "truncated",
        "raw_text",
    ]
    rows = query(db, f"SELECT {', '.join(columns)} FROM raw.provider_quarantine ORDER BY ALL")
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _without(found: set[Finding], order_no: str) -> set[Finding]:
    return {finding for finding in found if finding[1] != order_no}


# (kind, quarantine kind, words of the reason), one order each.
SYNC_SPOILS = [
    (SpoilKind.HUGE_INTEGER, "out_of_range", "orderUsage 100000000000000000000 is beyond BIGINT"),
    (SpoilKind.DEEP_NESTING, "too_deep", "JSON nested more than 64 levels deep"),
    (SpoilKind.NOT_JSON, "not_json", "not valid JSON"),
    (SpoilKind.HUGE_BODY, "too_large", "body larger than 524288 bytes"),
    (SpoilKind.CONTROL_CHARACTERS, "control_characters", "iccid"),
]


def test_spoiled_sync_answers_cost_one_order_each(
    world: Dataset, clean: set[Finding], tmp_path: Path
) -> None:
    targets = {kind: _synced_order(world, index) for index, (kind, _, _) in enumerate(SYNC_SPOILS)}
    # Every answer for those orders is spoiled (a provider bug, not a passing fault).
    spoils = tuple(
        Spoil(kind, "esimtrade.sync", match=f"orderno={order_no}", times=None)
        for kind, order_no in targets.items()
    )
    run = run_pipeline(world, tmp_path, faults=FaultConfig(spoils=spoils), **TUNING)

    quarantined = _quarantine(run.db)
    for kind, code, reason in SYNC_SPOILS:
        order_no = targets[kind]
        rows = [r for r in quarantined if r["source_endpoint"].endswith(f"orderno={order_no}")]
        assert rows, f"{kind}: nothing quarantined"
        for row in rows:
            assert row["asset"] == "esimtrade_order_syncs", row
            assert row["target_table"] == "raw.esimtrade_order_syncs"
            assert row["kind"] == code and reason in row["reason"], row["reason"]
            assert row["http_status"] == 200 and row["raw_text"]
            assert len(row["raw_text"]) <= 65_536
            assert row["truncated"] == (kind in (SpoilKind.DEEP_NESTING, SpoilKind.HUGE_BODY))
        if kind in (SpoilKind.HUGE_INTEGER, SpoilKind.CONTROL_CHARACTERS):
            [row] = rows  # well formed, so not asked again
            assert json.loads(row["raw_text"])["data"]["orderNo"] == order_no
        else:
            assert len(rows) == TUNING_RETRY_ATTEMPTS  # a bad body is asked again, to the end

        [(outcome, error)] = query(
            run.db,
            "SELECT outcome, error FROM raw.esimtrade_order_syncs WHERE requested_order_no = ?",
            [order_no],
        )
        assert outcome == "failed" and "quarantined" in error, error

    found = findings(run.db)
    expected = set(clean)
    for order_no in targets.values():
        assert "sync_failed" in {f[3] for f in found if f[1] == order_no}, order_no
        found, expected = _without(found, order_no), _without(expected, order_no)
    assert found == expected
    [(detail,)] = query(
        run.db, "SELECT detail FROM raw.ingest_log WHERE asset = 'esimtrade_order_syncs'"
    )
    assert json.loads(detail)["failed"] >= len(targets)

    # `esim-recon status` counts them, per asset and kind.
    report = collect(run.db, home=tmp_path / "no-dagster-home")
    counted = {(q["asset"], q["kind"]): q["count"] for q in report.quarantined}
    assert counted == {
        ("esimtrade_order_syncs", code): sum(r["kind"] == code for r in quarantined)
        for _, code, _ in SYNC_SPOILS
    }
    assert report.tables["raw.provider_quarantine"] == len(quarantined)
    assert report.to_json()["quarantined"] == report.quarantined


def test_spoiled_list_pages_and_records_cost_one_record_each(
    world: Dataset, clean: set[Finding], tmp_path: Path
) -> None:
    spoils = (
        # Page answers spoiled once: asked again, read, and the refused answer kept.
        Spoil(SpoilKind.DEEP_NESTING, "esimtrade.list", match="page=2&"),
        Spoil(SpoilKind.NOT_JSON, "pressone.orders", match="page=3"),
        Spoil(SpoilKind.HUGE_BODY, "pressone.orders", match="page=2"),
        # One record of a page, on every pass: that record is refused, the page loads.
        Spoil(SpoilKind.HUGE_AMOUNT, "esimtrade.list", match="page=1&", times=None),
        Spoil(SpoilKind.CONTROL_CHARACTERS, "esimtrade.list", match="page=3&", times=None),
        Spoil(SpoilKind.HUGE_INTEGER, "pressone.orders", match="page=2", times=None),
        # Every other pressone answer, page 1 included, echoes an absurd page and page size
        # (the first spoil that applies to a request is the one served).
        Spoil(SpoilKind.ABSURD_ECHO, "pressone.orders", times=None),
    )
    run = run_pipeline(world, tmp_path, faults=FaultConfig(spoils=spoils), **TUNING)

    quarantined = _quarantine(run.db)
    by_kind = {(row["asset"], row["kind"]): row for row in quarantined}
    assert len(by_kind) == len(quarantined), quarantined  # one answer or record each

    nested = by_kind["esimtrade_orders", "too_deep"]
    assert nested["source_endpoint"] == "/reseller/orders?page=2&pageSize=5"
    assert "JSON nested more than 64 levels deep" in nested["reason"] and nested["truncated"]
    not_json = by_kind["pressone_orders", "not_json"]
    assert not_json["source_endpoint"].endswith("page=3")
    assert not_json["raw_text"].startswith("<html>")
    huge = by_kind["pressone_orders", "too_large"]
    assert huge["source_endpoint"].endswith("page=2") and huge["body_bytes"] > 512 * 1024

    refused_orders = set()
    for key, field, words in (
        (("esimtrade_orders", "out_of_range"), "providerOrderNo", "costPrice"),
        (("esimtrade_orders", "control_characters"), "providerOrderNo", "status"),
        (("pressone_orders", "out_of_range"), "code", "quantity 100000000000000000000"),
    ):
        row = by_kind[key]
        assert words in row["reason"] and row["page"] in (1, 2, 3), row
        assert row["target_table"] == f"raw.{key[0]}"
        record = json.loads(row["raw_text"])
        if field not in record:
            # The whole answer was kept (refused while reading the page): the record is in it.
            items = record.get("data") or record.get("orders") or []
            marker = words.split()[-1]
            record = next((item for item in items if marker in json.dumps(item)), None)
            assert record is not None, row
        refused_orders.add(record[field])
    for order_no in refused_orders:
        listed = query(
            run.db,
            "SELECT count(*) FROM raw.esimtrade_orders WHERE provider_order_no = ? UNION ALL "
            "SELECT count(*) FROM raw.pressone_orders WHERE order_code = ?",
            [order_no, order_no],
        )
        assert listed == [(0,), (0,)]  # never in a typed column

    # Both walks read every order: their loads are complete snapshots.
    statuses = dict(
        query(
            run.db,
            "SELECT asset, status FROM raw.ingest_log "
            "WHERE asset IN ('esimtrade_orders', 'pressone_orders')",
        )
    )
    assert statuses == {"esimtrade_orders": "complete", "pressone_orders": "complete"}
    found, expected = findings(run.db), set(clean)
    for order_no in refused_orders:
        found, expected = _without(found, order_no), _without(expected, order_no)
    assert found == expected


def _materialize_list(
    world: Dataset, tmp_path: Path, spoils: tuple[Spoil, ...], **tuning: Any
) -> tuple[dg.ExecuteInProcessResult, Path]:
    local = world.write_local_orders(tmp_path / "local_orders.csv")
    db = tmp_path / "recon.duckdb"
    with serve(world, faults=FaultConfig(spoils=spoils), rate_limits=RateLimits.unlimited()) as sim:
        resources = simulator_resources(sim, db, local, **(TUNING | tuning))
        result = dg.materialize([esimtrade_orders], resources=resources, raise_on_error=False)
    return result, db


def test_a_page_refused_to_the_end_makes_a_partial_list_load(
    world: Dataset, tmp_path: Path
) -> None:
    spoil = Spoil(SpoilKind.DEEP_NESTING, "esimtrade.list", match="page=2&", times=None)
    result, db = _materialize_list(world, tmp_path, (spoil,))
    assert result.success  # the walk went on without the page
    [event] = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    assert metadata["quarantined"] >= TUNING_RETRY_ATTEMPTS
    assert metadata["quarantined_by_kind"] == {"too_deep": metadata["quarantined"]}
    assert metadata["paging"]["pages_unread"] == [2]
    [(status, detail)] = query(
        db, "SELECT status, detail FROM raw.ingest_log WHERE asset = 'esimtrade_orders'"
    )
    assert status == "partial" and detail == "pages never read: [2]"
    [(rows,)] = query(db, "SELECT count(*) FROM raw.esimtrade_orders")
    assert rows == metadata["paging"]["final_total"] - 5  # every page but the refused one


@pytest.mark.parametrize(
    ("tuning", "reason"),
    [
        ({"max_pages": 2}, "max_pages (2) reached"),
        ({"max_walk_seconds": 0.001}, "walk time limit (0.001 s) reached"),
    ],
)
def test_a_walk_past_its_limit_fails_that_load_with_one_line(
    world: Dataset, tmp_path: Path, tuning: dict[str, Any], reason: str
) -> None:
    result, db = _materialize_list(world, tmp_path, (), **tuning)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    description = failure.step_failure_data.error.message
    assert "esimtrade list walk stopped while running esimtrade_orders" in description
    assert reason in description and "ESIM_RECON_MAX_PAGES" in description
    [(status, detail)] = query(
        db, "SELECT status, detail FROM raw.ingest_log WHERE asset = 'esimtrade_orders'"
    )
    assert status == "failed" and reason in detail
