"""Benchmark 2: per-order eSIMTrade syncs.

(a) Under a simulator rate limit (50 requests/s): the achieved request rate over the limit
    (target >= 0.97) and the share of requests answered 429 (target <= 1 %).
(b) With no limit and 20 ms latency per request: the client's requests/s against the
    simulator's own capacity, measured with a plain high-concurrency httpx loop.

The simulator runs in its own process. ``--quick`` uses small sizes for development.

    .venv/bin/python -m bench.bench_syncs [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import time
from typing import Any

import httpx

from bench._common import Figure, SimInfo, simulator, write_results
from bench._measure import median
from pipelines.providers import ESIMTradeClient, RetryPolicy

# Waits short enough for the planted always-failing syncs not to stretch a run.
RETRY = RetryPolicy(max_attempts=4, max_total_seconds=20, initial_wait=0.05, max_wait=0.5)


def _order_nos(sim: SimInfo) -> list[str]:
    with open(sim.local_orders, newline="", encoding="utf-8") as handle:
        rows = [row["order_no"] for row in csv.DictReader(handle) if row["provider"] == "esimtrade"]
    return list(dict.fromkeys(rows))


def _client(sim: SimInfo, *, rpm: float | None, concurrency: int) -> ESIMTradeClient:
    env = sim.env
    return ESIMTradeClient(
        env["ESIMTRADE_BASE_URL"],
        env["ESIMTRADE_ACCESS_CODE"],
        env["ESIMTRADE_SECRET_KEY"],
        retry=RETRY,
        requests_per_minute=rpm,
        max_concurrency=concurrency,
    )


async def _syncs(sim: SimInfo, order_nos: list[str], *, rpm: float | None, concurrency: int):
    before = sim.stats()
    async with _client(sim, rpm=rpm, concurrency=concurrency) as client:
        started = time.perf_counter()
        outcomes: dict[str, int] = {}
        async for result in client.sync_many(order_nos):
            outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
        wall = time.perf_counter() - started
        stats = client.stats
    after = sim.stats()
    served = after["requests"].get("esimtrade.sync", 0) - before["requests"].get(
        "esimtrade.sync", 0
    )
    answered_429 = after["responses_429"] - before["responses_429"]
    return {
        "syncs": len(order_nos),
        "wall_seconds": wall,
        "requests": stats.requests,
        "served": served,
        "responses_429": answered_429,
        "retries": stats.retries,
        "rate": stats.requests / wall,
        "share_429": answered_429 / max(served, 1),
        "outcomes": outcomes,
    }


async def _capacity(sim: SimInfo, order_nos: list[str], concurrency: int) -> dict[str, Any]:
    """The simulator's own capacity: ``concurrency`` keep-alive connections, each sending
    bare HTTP/1.1 GETs over asyncio streams and reading the answer by its Content-Length (no
    HTTP library, no retries, no parsing), so the client side costs as little as it can."""
    env = sim.env
    url = httpx.URL(env["ESIMTRADE_BASE_URL"] + "/portal/orders")
    head = (
        f"Host: {url.host}:{url.port}\r\nx-access-code: {env['ESIMTRADE_ACCESS_CODE']}\r\n"
        f"x-secret-key: {env['ESIMTRADE_SECRET_KEY']}\r\nAccept: application/json\r\n\r\n"
    ).encode()
    queue = list(reversed(order_nos))

    async def worker() -> int:
        reader, writer = await asyncio.open_connection(url.host, url.port)
        done = 0
        try:
            while queue:
                target = f"GET {url.path}?orderno={queue.pop()} HTTP/1.1\r\n".encode()
                writer.write(target + head)
                status_and_headers = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in status_and_headers.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                done += 1
        finally:
            writer.close()
        return done

    started = time.perf_counter()
    done = sum(await asyncio.gather(*(worker() for _ in range(concurrency))))
    wall = time.perf_counter() - started
    return {"requests": done, "wall_seconds": wall, "rate": done / wall}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--limit-rps", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=8, help="client, rate-limited part")
    parser.add_argument("--free-concurrency", type=int, default=64, help="no-limit part")
    args = parser.parse_args(argv)
    syncs = 500 if args.quick else 5_000
    runs = args.runs or (1 if args.quick else 3)
    orders = syncs * 2 + 200  # eSIMTrade takes half; the local file misses a few
    rpm = args.limit_rps * 60
    records: list[dict[str, Any]] = []

    with simulator(orders=orders, esimtrade_rps=args.limit_rps) as sim:
        order_nos = _order_nos(sim)[:syncs]
        for number in range(runs):
            time.sleep(1.5)  # let the server's bucket refill between runs
            record = asyncio.run(_syncs(sim, order_nos, rpm=rpm, concurrency=args.concurrency))
            record |= {"part": "limited", "run": number + 1, "limit_rps": args.limit_rps}
            print(record)
            records.append(record)

    with simulator(orders=orders, latency_ms=20) as sim:
        order_nos = _order_nos(sim)[:syncs]
        for number in range(runs):
            capacity = asyncio.run(_capacity(sim, order_nos, args.free_concurrency))
            capacity |= {"part": "capacity", "run": number + 1}
            print(capacity)
            records.append(capacity)
            free = asyncio.run(_syncs(sim, order_nos, rpm=None, concurrency=args.free_concurrency))
            free |= {"part": "unlimited", "run": number + 1}
            print(free)
            records.append(free)

    def values(part: str, key: str) -> list[float]:
        return [record[key] for record in records if record["part"] == part]

    ratio = median(values("limited", "rate")) / args.limit_rps
    share_429 = median(values("limited", "share_429"))
    capacity_rate = median(values("capacity", "rate"))
    free_rate = median(values("unlimited", "rate"))
    figures = [
        Figure("limited: achieved rate / limit", ratio, "ratio", ">= 0.97", ratio >= 0.97),
        Figure("limited: share of 429s", share_429 * 100, "%", "<= 1 %", share_429 <= 0.01),
        Figure("unlimited: client rate", free_rate, "req/s", "report", None),
        Figure("unlimited: simulator capacity", capacity_rate, "req/s", "report", None),
        Figure(
            "unlimited: client rate / capacity", free_rate / capacity_rate, "ratio", "report", None
        ),
    ]
    write_results(
        "bench_syncs",
        figures=figures,
        runs=records,
        params={
            "syncs": syncs,
            "runs": runs,
            "limit_rps": args.limit_rps,
            "client_rpm": rpm,
            "concurrency": args.concurrency,
            "free_concurrency": args.free_concurrency,
            "latency_ms_unlimited": 20,
        },
        quick=args.quick,
    )


if __name__ == "__main__":
    main()
