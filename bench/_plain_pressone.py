"""The plain reference of benchmark 1: a sequential httpx loop over PressOne's order pages
(follow ``links.next``), decoding each page and counting orders, nothing stored. Run as its own
process; prints ``{"orders": N}``.

Environment: BENCH_PRESSONE_URL, BENCH_TOKEN, BENCH_PAGE_SIZE.
"""

from __future__ import annotations

import json
import os

import httpx


def main() -> None:
    url = os.environ["BENCH_PRESSONE_URL"] + "/customer/v2/orders"
    headers = {"Accept": "application/json", "Authorization": f"Bearer {os.environ['BENCH_TOKEN']}"}
    size = os.environ["BENCH_PAGE_SIZE"]
    ids: set[int] = set()
    with httpx.Client(headers=headers, timeout=30) as client:
        page = 1
        while True:
            response = client.get(
                url, params={"include": "sims,status", "limit": size, "page": page}
            )
            response.raise_for_status()
            body = response.json()
            ids.update(order["id"] for order in body["data"])
            if not body["links"]["next"]:
                break
            page += 1
    print(json.dumps({"orders": len(ids)}))


if __name__ == "__main__":
    main()
