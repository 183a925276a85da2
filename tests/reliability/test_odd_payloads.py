"""Provider payloads with unknown states, nulls and fields the API reference does not list are
kept raw, reported as `unknown`, and never crash a run (the real pipeline against the simulator,
whose answers are altered here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.simulator import generate_dataset
from pipelines.simulator.model import EsimTradeEsim, PressOneOrder, PressOneUsage
from tests.pipeline.helpers import query
from tests.reliability._support import run_pipeline


def _with_extras(method: Any, extra: dict[str, Any]) -> Any:
    def altered(self: Any, *args: Any) -> dict[str, Any]:
        body = method(self, *args)
        return {**body, **extra}

    return altered


def test_unknown_states_nulls_and_extra_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = generate_dataset(seed=5, orders=40, drift_orders=2)
    esim = next(e for e in world.esimtrade if e.iccid and not e.poisoned and not e.drift)
    esim.esim_status = "HIBERNATING"
    esim.total_volume = None
    esim.smdp_status = None
    order = next(
        o
        for o in world.pressone
        if o.status == "completed"
        and len(o.sims) == 1
        and o.sims[0].iccid in world.pressone_usage
        and not world.pressone_usage[o.sims[0].iccid].poisoned
        and not o.drift
    )
    world.pressone_usage[order.sims[0].iccid].status = "DORMANT"
    odd_order = next(o for o in world.pressone if o.status == "completed" and o is not order)
    odd_order.status = "on_hold"

    extension = {"futureField": {"nested": [1, None, "x"]}, "note": None}
    monkeypatch.setattr(
        EsimTradeEsim, "sync_json", _with_extras(EsimTradeEsim.sync_json, extension)
    )
    monkeypatch.setattr(
        EsimTradeEsim, "list_json", _with_extras(EsimTradeEsim.list_json, {"channel": None})
    )
    monkeypatch.setattr(PressOneOrder, "json", _with_extras(PressOneOrder.json, extension))
    monkeypatch.setattr(
        PressOneUsage, "json", _with_extras(PressOneUsage.json, {"roaming_zone": "EU"})
    )

    run = run_pipeline(world, tmp_path)  # succeeds, every asset check passes
    db = run.db

    [(status, state)] = query(
        db,
        "SELECT provider_status, provider_state FROM reports.reconciliation "
        "WHERE provider = 'esimtrade' AND order_no = ?",
        [esim.order_no],
    )
    assert (status, state) == ("HIBERNATING", "unknown")
    usage = query(
        db, "SELECT state, total_bytes FROM reports.usage WHERE order_no = ?", [esim.order_no]
    )
    assert all(total is None for _, total in usage)  # a null volume is unknown, not zero

    [(state,)] = query(
        db,
        "SELECT provider_state FROM reports.reconciliation "
        "WHERE provider = 'pressone' AND order_no = ?",
        [order.code],
    )
    assert state == "unknown"
    states = {
        s
        for (s,) in query(
            db,
            "SELECT provider_state FROM reports.reconciliation "
            "WHERE provider = 'pressone' AND order_no = ?",
            [odd_order.code],
        )
    }
    assert states == {"unknown"}

    # The unexpected fields are kept in the raw payloads.
    [(payload,)] = query(
        db,
        "SELECT payload FROM raw.esimtrade_order_syncs WHERE order_no = ? AND outcome = 'ok'",
        [esim.order_no],
    )
    assert json.loads(payload)["futureField"] == {"nested": [1, None, "x"]}
    payloads = query(db, "SELECT payload FROM raw.pressone_usage WHERE outcome = 'ok' LIMIT 5")
    assert payloads and all(json.loads(p)["roaming_zone"] == "EU" for (p,) in payloads)
    [(payload,)] = query(
        db, "SELECT payload FROM raw.pressone_orders WHERE order_code = ? LIMIT 1", [order.code]
    )
    assert "futureField" in json.loads(payload)
