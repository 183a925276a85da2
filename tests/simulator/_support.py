"""Test helpers: a deliberately small HTTP client for the simulator, written for these tests only
(the pipeline's provider clients are not used here on purpose)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from pipelines.simulator import RunningSimulator

ET_HEADERS = {"x-access-code": "sim-access", "x-secret-key": "sim-secret-key-0001"}
TOKEN_FORM = {
    "client_id": (None, "sim-client"),
    "client_secret": (None, "sim-client-secret-0001"),
    "grant_type": (None, "client_credentials"),
}


def plain(body: dict[str, Any]) -> dict[str, Any]:
    """PressOne success body without the optional envelope."""
    return body["data"] if body.get("success") is True and "timestamp" in body else body


def token(client: httpx.Client, sim: RunningSimulator) -> str:
    answer = client.post(sim.pressone_base_url + "/customer/v2/token", files=TOKEN_FORM)
    assert answer.status_code == 200, answer.text
    return plain(answer.json())["data"]["access_token"]


class Walker:
    """Reads everything from a simulator the way a careful client would: retries transient
    failures, renews the PressOne token on 401, and re-walks a list whose total moved."""

    def __init__(self, sim: RunningSimulator, *, timeout: float = 2.0, attempts: int = 6) -> None:
        self.sim = sim
        self.client = httpx.Client(timeout=timeout)
        self.attempts = attempts
        self.bearer: str | None = None
        self.retries = 0

    def close(self) -> None:
        self.client.close()

    def _pause(self, answer: httpx.Response) -> None:
        value = answer.headers.get("retry-after")
        wait = 0.01
        if value and value.isdigit():
            wait = int(value)
        elif value:
            wait = parsedate_to_datetime(value).timestamp() - time.time()
        time.sleep(min(max(wait, 0.0), 0.02))  # the faults do not enforce their own Retry-After

    def call(
        self, provider: str, path: str, params: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        """(status, JSON body). A 500 that survives every attempt is reported as (500, None):
        random faults never come more than twice in a row, so only a planted failure does that."""
        base = (
            self.sim.esimtrade_base_url
            if provider == "esimtrade"
            else self.sim.pressone_base_url + "/customer/v2"
        )
        seen_500 = False
        for _ in range(self.attempts):
            headers = dict(ET_HEADERS) if provider == "esimtrade" else {}
            if provider == "pressone":
                if self.bearer is None:
                    self.bearer = self._token()
                headers["Authorization"] = f"Bearer {self.bearer}"
            try:
                answer = self.client.get(base + path, params=params, headers=headers)
            except httpx.TransportError:  # timeouts included
                self.retries += 1
                continue
            if answer.status_code == 401 and provider == "pressone":
                self.bearer = None
                self.retries += 1
                continue
            if answer.status_code == 429 or answer.status_code >= 500:
                seen_500 = seen_500 or answer.status_code == 500
                self.retries += 1
                self._pause(answer)
                continue
            try:
                body = answer.json()
            except json.JSONDecodeError:
                self.retries += 1
                continue
            return answer.status_code, body
        if seen_500:
            return 500, None
        raise AssertionError(f"gave up on {provider} {path} {params}")

    def _token(self) -> str:
        for _ in range(self.attempts):
            try:
                answer = self.client.post(
                    self.sim.pressone_base_url + "/customer/v2/token", files=TOKEN_FORM
                )
            except httpx.TransportError:
                continue
            if answer.status_code == 200:
                return plain(answer.json())["data"]["access_token"]
            self._pause(answer)
        raise AssertionError("no token")

    # --- whole reads ----------------------------------------------------------------------------

    def esimtrade_list(self, page_size: int = 20) -> dict[str, dict[str, Any]]:
        def read(page: int) -> tuple[int, list[dict[str, Any]], bool]:
            params = {"page": page, "pageSize": page_size}
            _, body = self.call("esimtrade", "/reseller/orders", params)
            return body["total"], body["orders"], page * page_size < body["total"]

        return self._settled_list("eSIMTrade", read, key="providerOrderNo")

    def pressone_list(self, limit: int = 20) -> dict[int, dict[str, Any]]:
        def read(page: int) -> tuple[int, list[dict[str, Any]], bool]:
            params = {"include": "sims,status", "limit": limit, "page": page}
            body = plain(self.call("pressone", "/orders", params)[1])
            return body["meta"]["total"], body["data"], body["links"]["next"] is not None

        return self._settled_list("PressOne", read, key="id")

    @staticmethod
    def _settled_list(
        name: str, read: Callable[[int], tuple[int, list[dict[str, Any]], bool]], *, key: str
    ) -> dict[Any, dict[str, Any]]:
        """Every row of a listing by ``key``, walking it page by page (``read`` gives a page's
        total, rows and whether more follow) until a whole walk saw one unchanging total."""
        for _ in range(5):
            rows: dict[Any, dict[str, Any]] = {}
            totals = set()
            page, more = 1, True
            while more:
                total, items, more = read(page)
                totals.add(total)
                rows.update((item[key], item) for item in items)
                page += 1
            if len(totals) == 1 and len(rows) == totals.pop():
                return rows
        raise AssertionError(f"{name} list never settled")
