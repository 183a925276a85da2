"""The simulated world: determinism, realistic shapes, planted disagreements, epochs."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from decimal import Decimal

import pytest

from pipelines.simulator import LOCAL_ORDERS_HEADER, generate_dataset
from pipelines.simulator.catalog import GIB, MIB
from pipelines.simulator.iccid import luhn_ok, shape_ok
from pipelines.simulator.truth import CANONICAL_STATES, DISCREPANCY_TYPES

CONTRACT_HEADER = "provider,order_no,iccid,package_code,status,amount,currency,created_at"


@pytest.fixture(scope="module")
def world():
    return generate_dataset(7, 1000)


@pytest.fixture(scope="module")
def advanced():
    dataset = generate_dataset(7, 1000)
    before = dataset.ground_truth()
    dataset.advance()
    return dataset, before, dataset.ground_truth()


def test_same_seed_same_everything():
    first, second = (
        generate_dataset(11, 300, drift_orders=8),
        generate_dataset(11, 300, drift_orders=8),
    )
    assert first.local_orders_csv() == second.local_orders_csv()
    assert first.ground_truth() == second.ground_truth()
    first.advance()
    second.advance()
    assert first.ground_truth() == second.ground_truth()
    assert [e.sync_json() for e in first.esimtrade] == [e.sync_json() for e in second.esimtrade]


def test_different_seed_different_world():
    first, second = generate_dataset(1, 300), generate_dataset(2, 300)
    assert first.local_orders_csv() != second.local_orders_csv()
    assert first.ground_truth()["findings"] != second.ground_truth()["findings"]


def test_advance_with_explicit_seed_is_reproducible():
    first, second = generate_dataset(5, 300), generate_dataset(5, 300)
    first.advance(rng_seed=99)
    second.advance(rng_seed=99)
    assert first.ground_truth() == second.ground_truth()


def test_written_files(tmp_path, world):
    csv_path = world.write_local_orders(tmp_path / "local.csv")
    truth_path = world.write_ground_truth(tmp_path / "truth.json")
    text = csv_path.read_text()
    assert text.splitlines()[0] == CONTRACT_HEADER
    assert ",".join(LOCAL_ORDERS_HEADER) == CONTRACT_HEADER
    assert json.loads(truth_path.read_text()) == world.ground_truth()


def test_local_rows_follow_the_contract(world):
    rows = list(csv.DictReader(io.StringIO(world.local_orders_csv())))
    truth = world.ground_truth()
    assert len(rows) == truth["counts"]["local_rows"]
    assert {row["provider"] for row in rows} == {"esimtrade", "pressone"}
    assert {row["currency"] for row in rows} == {"USD"}
    for row in rows:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["created_at"]), row
        assert re.fullmatch(r"-?\d+(\.\d+)?", row["amount"]), row
        assert row["status"].strip().lower() in CANONICAL_STATES, row
    assert sum(1 for row in rows if row["iccid"] == "") >= 5  # some ICCIDs not known yet
    # one local row per eSIM, also for quantity-2 orders
    multi = [order for order in world.pressone if order.type == "sim" and len(order.sims) == 2]
    assert len(multi) > 20
    per_order = Counter(row["order_no"] for row in rows)
    assert sum(1 for order in multi if per_order[order.code] == 2) >= len(multi) - 1


def test_esimtrade_values_look_real(world):
    statuses = Counter(esim.esim_status for esim in world.esimtrade)
    for status in (
        "CREATE",
        "PAID",
        "GETTING_RESOURCE",
        "GOT_RESOURCE",
        "IN_USE",
        "USED_UP",
        "USED_EXPIRED",
        "UNUSED_EXPIRED",
        "CANCEL",
        "SUSPENDED",
        "REVOKED",
        "REVOKE",
        "PENDING_REVIEW",
    ):
        assert statuses[status] > 0, status
    volumes = {esim.package.volume for esim in world.esimtrade}
    assert {500 * MIB, GIB, 3 * GIB, 5 * GIB} <= volumes
    for esim in world.esimtrade:
        assert re.fullmatch(r"B\d{14}", esim.order_no)
        assert esim.esim_tran_no in (None, esim.order_no[1:])
        assert esim.order_no[1:11] == esim.created_at.strftime("%y%m%d%H%M")
        if esim.esim_status in ("CREATE", "PAYING", "PAID", "GETTING_RESOURCE"):
            assert esim.iccid is None and esim.imsi is None and esim.total_volume is None
        else:
            assert esim.iccid and esim.total_volume and re.fullmatch(r"\d{15}", esim.imsi or "")
        if esim.esim_status in ("CANCEL", "UNUSED_EXPIRED"):
            assert esim.smdp_status == "RELEASED"
        if esim.esim_status == "USED_EXPIRED":
            assert esim.smdp_status in ("DISABLED", "DELETED")
    assert sum(1 for e in world.esimtrade if e.stored_status != e.esim_status.lower()) >= 3
    assert len({esim.order_no for esim in world.esimtrade}) == len(world.esimtrade)


def test_pressone_values_look_real(world):
    orders = world.pressone
    kinds = Counter(order.type for order in orders)
    assert 0.02 < kinds["topup"] / len(orders) < 0.09
    assert {order.status for order in orders} == {
        "completed",
        "failed",
        "refunded",
        "partially_refunded",
    }
    assert all(not order.sims for order in orders if order.status == "failed")
    sims = [order for order in orders if order.type == "sim"]
    assert 0.08 < sum(1 for order in sims if order.quantity == 2) / len(sims) < 0.25
    sim_iccids = {sim.iccid for order in sims for sim in order.sims}
    for order in orders:
        assert re.fullmatch(r"\d{8}-\d{6}", order.code)
        assert re.fullmatch(r"[a-z-]+-\d+days-(\d+gb|unlimited)(-topup)?", order.package.package_id)
        if order.type == "topup":
            assert len(order.sims) == 1 and order.sims[0].iccid in sim_iccids
        elif order.sims:
            assert len(order.sims) == order.quantity
    usage = world.pressone_usage
    assert {record.status for record in usage.values()} == {
        "NOT_ACTIVE",
        "ACTIVE",
        "FINISHED",
        "EXPIRED",
        "UNKNOWN",
        "RECYCLED",
    }
    assert any(record.unlimited for record in usage.values())
    assert {record.total_mb for record in usage.values() if not record.unlimited} >= {
        1024,
        2048,
        3072,
    }
    completed = [sim for order in sims if order.status == "completed" for sim in order.sims]
    assert sum(1 for sim in completed if sim.iccid not in usage) > 5  # no usage yet: 404
    recycled = next(record for record in usage.values() if record.status == "RECYCLED")
    assert recycled.json()["total"] == 0 and recycled.json()["expired_at"] is None


def test_iccids_are_luhn_valid_except_planted(world):
    truth = world.ground_truth()
    decoys = {d["iccid"] for d in truth["decoys"] if d["kind"] == "luhn_failure"}
    assert len(decoys) == 4
    provider_iccids = [e.iccid for e in world.esimtrade if e.iccid]
    provider_iccids += [sim.iccid for order in world.pressone for sim in order.sims]
    for iccid in provider_iccids:
        assert shape_ok(iccid), iccid
        assert luhn_ok(iccid) or iccid in decoys, iccid
    invalid = {p["iccid"] for p in truth["planted"] if p["discrepancy_type"] == "invalid_iccid"}
    for row in world.local_rows:
        if row.iccid and row.iccid not in invalid:
            assert shape_ok(row.iccid), row
            assert luhn_ok(row.iccid) or row.iccid in decoys, row
    assert not any(
        f["iccid"] in decoys and f["discrepancy_type"] == "invalid_iccid" for f in truth["findings"]
    )


def _count(findings, key="discrepancy_type"):
    return Counter(f[key] for f in findings)


@pytest.mark.parametrize("orders", [200, 1000])
def test_every_discrepancy_type_after_one_advance(orders):
    dataset = generate_dataset(7, orders)
    before = dataset.ground_truth()
    dataset.advance()
    after = dataset.ground_truth()
    found, planted = _count(after["findings"]), _count(after["planted"])
    for kind in DISCREPANCY_TYPES:
        assert found[kind] >= 3, (kind, found)
        assert planted[kind] >= 3, (kind, planted)
    history = {"invalid_transition", "usage_regression"}
    assert set(_count(before["findings"])) == set(DISCREPANCY_TYPES) - history
    for kind in set(DISCREPANCY_TYPES) - history:
        assert _count(before["planted"])[kind] >= 3, kind


def test_planted_are_findings(advanced):
    _, before, after = advanced
    for truth in (before, after):
        keys = {
            (f["provider"], f["order_no"], f["iccid"], f["discrepancy_type"])
            for f in truth["findings"]
        }
        for plant in truth["planted"]:
            assert (
                plant["provider"],
                plant["order_no"],
                plant["iccid"],
                plant["discrepancy_type"],
            ) in keys, plant
    assert len(after["planted"]) > len(before["planted"])


def test_planted_share_is_a_few_percent(world):
    truth = world.ground_truth()
    touched = {(p["provider"], p["order_no"]) for p in truth["planted"]}
    assert 0.02 < len(touched) / truth["counts"]["local_rows"] < 0.12


def test_findings_shape_and_severity(advanced):
    _, _, truth = advanced
    assert set(truth) >= {"seed", "orders", "epoch", "counts", "findings", "usage", "planted"}
    assert truth["epoch"] == 1 and truth["seed"] == 7 and truth["orders"] == 1000
    keys = [
        (f["provider"], f["order_no"], f["iccid"], f["discrepancy_type"]) for f in truth["findings"]
    ]
    assert len(keys) == len(set(keys))
    critical = {"missing_at_provider", "missing_locally", "amount_mismatch"}
    for finding in truth["findings"]:
        kind, severity = finding["discrepancy_type"], finding["severity"]
        if kind in critical:
            assert severity == "critical"
        elif kind != "status_mismatch":
            assert severity == "warning"
    status = Counter(
        f["severity"] for f in truth["findings"] if f["discrepancy_type"] == "status_mismatch"
    )
    assert status["critical"] >= 3 and status["warning"] >= 3
    money = [
        p
        for p in truth["planted"]
        if p["discrepancy_type"] == "status_mismatch"
        and "local active" in p["how"]
        and any(word in p["how"] for word in ("cancelled", "revoked", "failed"))
    ]
    assert len(money) >= 2


def test_decoys_are_not_findings(world):
    truth = world.ground_truth()
    findings = {(f["provider"], f["order_no"], f["discrepancy_type"]) for f in truth["findings"]}
    kinds = Counter(d["kind"] for d in truth["decoys"])
    assert kinds["amount_within_tolerance"] == 2 and kinds["status_spelling"] == 6
    for decoy in truth["decoys"]:
        assert (decoy["provider"], decoy["order_no"], "amount_mismatch") not in findings
        assert (decoy["provider"], decoy["order_no"], "status_mismatch") not in findings
        assert (decoy["provider"], decoy["order_no"], "invalid_iccid") not in findings
    rows = {(r.provider, r.order_no): r for r in world.local_rows}
    for decoy in truth["decoys"]:
        if decoy["kind"] == "amount_within_tolerance":
            amount = Decimal(rows[decoy["provider"], decoy["order_no"]].amount)
            assert amount.as_tuple().exponent == -3  # e.g. 2.105 against 2.10


def test_recycled_iccid_is_reused_by_a_newer_esim(advanced):
    dataset, _, truth = advanced
    shared = [iccid for iccid, esims in dataset.esimtrade_by_iccid.items() if len(esims) > 1]
    assert len(shared) == 1
    old, new = sorted(dataset.esimtrade_by_iccid[shared[0]], key=lambda e: e.created_at)
    assert old.esim_tran_no != new.esim_tran_no and old.esim_status == "USED_EXPIRED"
    mine = [f for f in truth["findings"] if f["iccid"] == shared[0]]
    assert {f["discrepancy_type"] for f in mine} == {"duplicate_iccid"}
    assert {f["order_no"] for f in mine} == {old.order_no, new.order_no}


def test_usage_rows(advanced):
    dataset, _, truth = advanced
    usage = truth["usage"]
    providers = Counter(row["provider"] for row in usage)
    assert providers["esimtrade"] > 300 and providers["pressone"] > 300
    unlimited = [row for row in usage if row["unlimited"]]
    assert unlimited and all(
        row["used_bytes"] is None and row["total_bytes"] is None for row in unlimited
    )
    for row in usage:
        if row["provider"] == "pressone" and not row["unlimited"]:
            assert row["total_bytes"] % MIB == 0 and row["used_bytes"] % MIB == 0
    poisoned = {
        sim.iccid
        for sim in (s for o in dataset.pressone for s in o.sims)
        if sim.iccid in dataset.pressone_usage and dataset.pressone_usage[sim.iccid].poisoned
    }
    assert poisoned and not poisoned & {row["iccid"] for row in usage}
    exceeding = [
        row
        for row in usage
        if row["used_bytes"] is not None and row["used_bytes"] > row["total_bytes"]
    ]
    assert len(exceeding) == sum(
        1 for f in truth["findings"] if f["discrepancy_type"] == "usage_exceeds_volume"
    )


def test_advance_moves_the_world_but_not_the_local_file():
    dataset = generate_dataset(3, 1000)
    local = dataset.local_orders_csv()
    live = {e.uid: (e.esim_status, e.order_usage) for e in dataset.esimtrade}
    stored = {e.uid: e.stored_status for e in dataset.esimtrade}
    dataset.advance()
    assert dataset.local_orders_csv() == local
    assert dataset.epoch == 1
    changed = [e for e in dataset.esimtrade if (e.esim_status, e.order_usage) != live[e.uid]]
    grew = [
        e
        for e in changed
        if e.esim_status == "IN_USE" and (e.order_usage or 0) > (live[e.uid][1] or 0)
    ]
    assert len(grew) > 20
    moves = Counter((live[e.uid][0], e.esim_status) for e in changed)
    assert moves[("GOT_RESOURCE", "IN_USE")] > 0
    assert {e.uid: e.stored_status for e in dataset.esimtrade} == stored  # only a sync updates it
    assert all(len(observations) == 2 for observations in dataset.history.values())


def test_generates_50k_orders():
    # Generation speed is a benchmark figure, not a test assertion.
    dataset = generate_dataset(7, 50_000)
    assert len(dataset.esimtrade) == 25_000 and len(dataset.pressone) == 25_000


def test_drift_orders_are_the_newest_and_extra():
    plain_world, drifting = generate_dataset(7, 200), generate_dataset(7, 200, drift_orders=10)
    assert len(drifting.esimtrade) == len(plain_world.esimtrade) + 5
    assert len(drifting.pressone) == len(plain_world.pressone) + 5
    assert all(e.drift for e in drifting.esimtrade[:5]) and not any(
        e.drift for e in drifting.esimtrade[5:]
    )
    assert all(o.drift for o in drifting.pressone[:5]) and not any(
        o.drift for o in drifting.pressone[5:]
    )
    truth = drifting.ground_truth()
    assert truth["counts"]["esimtrade_list_orders"] == len(drifting.esimtrade)
    drift_codes = {o.code for o in drifting.pressone[:5]} | {
        e.order_no for e in drifting.esimtrade[:5]
    }
    local = {row.order_no for row in drifting.local_rows}
    assert drift_codes <= local
