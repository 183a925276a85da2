"""The critical-findings sensor against a real webhook server on loopback and a real run."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import dagster as dg
import pytest

from pipelines.definitions import runnable
from pipelines.notifications import WebhookResource, critical_findings_sensor
from pipelines.resources import WarehouseResource
from pipelines.runner import materialize_all
from pipelines.simulator import RateLimits, generate_dataset, serve
from tests.pipeline.helpers import query, simulator_resources


class _Recorder(BaseHTTPRequestHandler):
    posts: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.posts.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    posts: ClassVar[list[dict]] = []
    handler = type("Recorder", (_Recorder,), {"posts": posts})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", posts
    finally:
        server.shutdown()
        server.server_close()


def _evaluate(instance: dg.DagsterInstance, db: Path, url: str | None, cursor: str | None):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "warehouse": WarehouseResource(database=str(db)),
            "webhook": WebhookResource(url=url),
        },
    )
    return critical_findings_sensor(context)


def _critical_keys(db: Path) -> set[tuple[str, str, str, str]]:
    return set(
        query(
            db,
            "SELECT provider, order_no, iccid, discrepancy_type FROM reports.discrepancies "
            "WHERE severity = 'critical'",
        )
    )


def test_one_post_per_new_batch_of_critical_findings_never_twice(tmp_path: Path, webhook) -> None:
    url, posts = webhook
    dataset = generate_dataset(seed=5, orders=120)
    local = tmp_path / "local_orders.csv"
    dataset.write_local_orders(local)
    db = tmp_path / "recon.duckdb"

    with serve(dataset, rate_limits=RateLimits.unlimited()) as simulator:
        resources = simulator_resources(simulator, db, local)
        assert materialize_all(runnable, resources, db_path=db).success
        first_critical = _critical_keys(db)
        assert first_critical

        with dg.DagsterInstance.get() as instance:
            result = _evaluate(instance, db, url, None)
            assert isinstance(result, dg.SensorResult)
            assert len(posts) == 1
            text = posts[0]["text"]
            assert f"{len(first_critical)} new critical finding(s)" in text
            # The post names the money at risk of the batch, as the reports sum it.
            [(total,)] = query(
                db,
                "SELECT sum(amount_at_risk) FROM reports.discrepancies WHERE severity = 'critical'",
            )
            assert f"money at risk {total:.2f} USD." in text
            [(largest, direction)] = query(
                db,
                "SELECT amount_at_risk, money_direction FROM reports.discrepancies "
                "WHERE severity = 'critical' ORDER BY amount_at_risk DESC LIMIT 1",
            )
            assert f"[{largest:.2f} USD, {direction}]" in text.splitlines()[1]
            cursor = result.cursor

            # A second evaluation with nothing new sends nothing.
            again = _evaluate(instance, db, url, cursor)
            assert isinstance(again, dg.SkipReason)
            assert len(posts) == 1

            # A run that adds critical findings: drop a matched eSIMTrade row from the local
            # file, so its provider eSIM is now missing locally.
            lines = local.read_text().splitlines(keepends=True)
            matched = {
                order_no
                for (order_no,) in query(
                    db,
                    "SELECT order_no FROM reports.reconciliation "
                    "WHERE provider = 'esimtrade' AND match_verdict = 'matched'",
                )
            }
            dropped = next(
                i for i, line in enumerate(lines[1:], 1) if line.split(",")[1] in matched
            )
            dropped_order = lines[dropped].split(",")[1]
            local.write_text("".join(lines[:dropped] + lines[dropped + 1 :]))
            assert materialize_all(runnable, resources, db_path=db).success
            new_critical = _critical_keys(db) - first_critical
            assert any(
                order == dropped_order and kind == "missing_locally"
                for _, order, _, kind in new_critical
            )

            result = _evaluate(instance, db, url, cursor)
            assert isinstance(result, dg.SensorResult)
            assert len(posts) == 2
            second = posts[1]["text"]
            assert f"{len(new_critical)} new critical finding(s)" in second
            assert dropped_order in second

            # And that batch is not sent again either.
            assert isinstance(_evaluate(instance, db, url, result.cursor), dg.SkipReason)
            assert len(posts) == 2


def test_without_a_webhook_the_batch_is_logged_and_the_cursor_moves(tmp_path: Path) -> None:
    dataset = generate_dataset(seed=5, orders=60)
    local = tmp_path / "local_orders.csv"
    dataset.write_local_orders(local)
    db = tmp_path / "recon.duckdb"
    with serve(dataset, rate_limits=RateLimits.unlimited()) as simulator:
        assert materialize_all(
            runnable, simulator_resources(simulator, db, local), db_path=db
        ).success
    with dg.DagsterInstance.get() as instance:
        result = _evaluate(instance, db, None, None)
        assert isinstance(result, dg.SensorResult) and result.cursor
        assert isinstance(_evaluate(instance, db, None, result.cursor), dg.SkipReason)


def test_a_webhook_that_refuses_keeps_the_batch_for_later(tmp_path: Path) -> None:
    dataset = generate_dataset(seed=5, orders=60)
    local = tmp_path / "local_orders.csv"
    dataset.write_local_orders(local)
    db = tmp_path / "recon.duckdb"
    with serve(dataset, rate_limits=RateLimits.unlimited()) as simulator:
        assert materialize_all(
            runnable, simulator_resources(simulator, db, local), db_path=db
        ).success
        # The simulator answers 404 for an unknown path: the post is not accepted.
        refusing = f"http://127.0.0.1:{simulator.port}/no-such-hook"
        with dg.DagsterInstance.get() as instance:
            assert isinstance(_evaluate(instance, db, refusing, None), dg.SkipReason)
