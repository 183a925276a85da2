"""Small in-memory stand-ins for the two provider APIs, served through httpx.MockTransport.

They follow provider-apis.md and nothing more, and let a test script faults (a queue of
canned responses or transport exceptions per path) and list drift (a hook run before each list
page is served). ``fake.client()`` is a real client wired to the fake, with fast retries.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import httpx

from pipelines.providers import ESIMTradeClient, PressOneClient, RetryPolicy

# Retries that keep the suite fast: tiny backoff, short budget.
FAST_RETRY = RetryPolicy(max_attempts=6, max_total_seconds=3.0, initial_wait=0.001, max_wait=0.005)

Fault = httpx.Response | Callable[[httpx.Request], httpx.Response]


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def raising(exc_type: type[httpx.TransportError]) -> Callable[[httpx.Request], httpx.Response]:
    def fault(request: httpx.Request) -> httpx.Response:
        raise exc_type("injected", request=request)

    return fault


class _FakeBase:
    def __init__(self) -> None:
        self.faults: dict[str, deque[Fault]] = defaultdict(deque)
        self.requests: list[httpx.Request] = []
        self.request_times: list[float] = []
        self.delay = 0.0
        self.in_flight = 0
        self.max_in_flight = 0

    def add_faults(self, path: str, *faults: Fault) -> None:
        """Serve these (in order) to the next requests whose path ends with ``path``."""
        self.faults[path].extend(faults)

    def _pop_fault(self, request: httpx.Request) -> httpx.Response | None:
        for path, queue in self.faults.items():
            if queue and request.url.path.endswith(path):
                fault = queue.popleft()
                return fault if isinstance(fault, httpx.Response) else fault(request)
        return None

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.request_times.append(time.monotonic())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            fault = self._pop_fault(request)
            if fault is not None:
                return fault
            return self.serve(request)
        finally:
            self.in_flight -= 1

    def serve(self, request: httpx.Request) -> httpx.Response:
        raise NotImplementedError

    def secrets(self) -> tuple[str, ...]:
        """Every credential the client holds or was issued: none may show in any text."""
        raise NotImplementedError

    def client_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Client keyword arguments: fast retries unless ``options`` say otherwise, and this
        fake as the transport."""
        return {"retry": FAST_RETRY, **options, "transport": self.transport()}

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


def assert_no_secret(fake: _FakeBase, *texts: str) -> None:
    for text in texts:
        for secret in fake.secrets():
            assert secret not in text


def esimtrade_order(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "providerOrderNo": f"B2602270314{n:04d}",
        "slug": "PK_0.5_Daily",
        "packageCode": "PUX79Y0PK",
        "packageName": "Pakistan 500MB/Day",
        "locationCode": "PK",
        "status": "got_resource",
        "quantity": 1,
        "costPrice": "1.20",
        "sellPrice": "2.50",
        "totalSellPrice": "2.50",
        **extra,
    }


def esimtrade_esim(order_no: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "esimTranNo": order_no.removeprefix("B"),
        "orderNo": order_no,
        "transactionId": "gs_1772162041486",
        "imsi": "260010181623870",
        "iccid": "8948010000095399804",
        "qrCodeUrl": "https://p.qrsim.net/example.png",
        "shortUrl": "https://p.qrsim.net/example",
        "smdpStatus": "RELEASED",
        "totalVolume": 524288000,
        "totalDuration": 1,
        "durationUnit": "DAY",
        "orderUsage": 0,
        "esimStatus": "GOT_RESOURCE",
        "packageList": [
            {
                "packageName": "Pakistan 500MB/Day",
                "packageCode": "PUX79Y0PK",
                "slug": "PK_0.5_Daily",
            }
        ],
    }
    body.update(overrides)
    return body


class FakeESIMTrade(_FakeBase):
    ACCESS_CODE = "ac-7f3e21"
    SECRET_KEY = "sk-TOPSECRET-9d8c7b6a5f"
    BASE_URL = "https://esimtrade.test/api/v1"

    def __init__(self, orders: list[dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.orders: list[dict[str, Any]] = list(orders or [])  # newest first
        self.esims: dict[str, Any] = {}  # orderNo -> "data" value
        self.by_iccid: dict[str, Any] = {}
        self.before_list_page: Callable[[int], None] | None = None
        self.tamper_rows: Callable[[int, list[dict[str, Any]]], list[dict[str, Any]]] | None = None
        self.ignore_page_param = False
        self.list_calls = 0

    def client(self, *, secret_key: str = SECRET_KEY, **options: Any) -> ESIMTradeClient:
        """A client of this fake, unpaced unless ``requests_per_minute`` is given."""
        options.setdefault("requests_per_minute", None)
        return ESIMTradeClient(
            self.BASE_URL, self.ACCESS_CODE, secret_key, **self.client_options(options)
        )

    def secrets(self) -> tuple[str, ...]:
        return (self.SECRET_KEY, self.ACCESS_CODE)

    def serve(self, request: httpx.Request) -> httpx.Response:
        headers = request.headers
        if (
            headers.get("x-access-code") != self.ACCESS_CODE
            or headers.get("x-secret-key") != self.SECRET_KEY
        ):
            return json_response(401, {"error": "invalid or expired credentials"})
        path = request.url.path.removeprefix("/api/v1")
        params = request.url.params
        if path == "/portal/orders":
            if "orderno" in params:
                data = self.esims.get(params["orderno"])
            elif "iccid" in params:
                data = self.by_iccid.get(params["iccid"])
            else:
                return json_response(400, {"error": "orderno or iccid is required"})
            if data is None:
                return json_response(404, {"error": "order not found"})
            return json_response(200, {"data": data})
        if path == "/reseller/orders":
            self.list_calls += 1
            page = int(params.get("page", "1"))
            size = min(int(params.get("pageSize", "20")), 100)
            if self.before_list_page is not None:
                self.before_list_page(page)
            if self.ignore_page_param:
                page = 1
            start = (page - 1) * size
            rows = self.orders[start : start + size]
            if self.tamper_rows is not None:
                rows = self.tamper_rows(page, rows)
            return json_response(
                200, {"page": page, "pageSize": size, "total": len(self.orders), "orders": rows}
            )
        return json_response(404, {"error": "no route"})


def pressone_order(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": n,
        "code": f"20230227-{n:06d}",
        "created_at": "2026-02-27 03:14:01",
        "description": f"order {n}",
        "type": "sim",
        "package_id": "pk-500mb-1d",
        "package": "Pakistan 500MB",
        "quantity": 1,
        "esim_type": "Prepaid",
        "validity": "1",
        "price": "1.50",
        "currency": "USD",
        "data": "500 MB",
        "status": {"name": "Completed", "slug": "completed"},
        "sims": [
            {
                "id": n * 10,
                "created_at": "2026-02-27 03:14:02",
                "iccid": f"89852000000{n:08d}",
                "lpa": "lpa.example.com",
                "matching_id": f"M-{n}",
                "qrcode": "LPA:1$lpa.example.com$M",
                "qrcode_url": "https://example.com/qr.png",
                "apn_type": "automatic",
                "apn_value": None,
                "is_roaming": True,
                "confirmation_code": None,
            }
        ],
        "user": {"id": 1, "name": "Reseller"},
        **extra,
    }


# A PressOne usage object as documented (provider-apis.md §2.4).
USAGE = {
    "remaining": 767,
    "total": 2048,
    "expired_at": "2026-01-01 00:00:00",
    "is_unlimited": False,
    "status": "ACTIVE",
    "remaining_voice": 0,
    "remaining_text": 0,
    "total_voice": 0,
    "total_text": 0,
}


class FakePressOne(_FakeBase):
    CLIENT_ID = "client-42"
    CLIENT_SECRET = "cs-HUSH-0a1b2c3d4e5f"
    BASE_URL = "https://pressone.test"

    def __init__(
        self,
        orders: list[dict[str, Any]] | None = None,
        *,
        envelope: str = "none",  # "none" | "full" | "data" (envelope data = the array only)
        expires_in: float = 31_622_400,
        per_page_as_string: bool = True,
    ) -> None:
        super().__init__()
        self.orders = list(orders or [])
        self.envelope = envelope
        self.expires_in = expires_in
        self.per_page_as_string = per_page_as_string
        self.usage: dict[str, dict[str, Any]] = {}
        self.valid_tokens: set[str] = set()
        self.issued_tokens: list[str] = []
        self.token_requests = 0
        self.token_forms: list[dict[str, str]] = []
        self.before_list_page: Callable[[int], None] | None = None

    def client(self, *, client_secret: str = CLIENT_SECRET, **options: Any) -> PressOneClient:
        return PressOneClient(
            self.BASE_URL, self.CLIENT_ID, client_secret, **self.client_options(options)
        )

    def secrets(self) -> tuple[str, ...]:
        return (self.CLIENT_SECRET, *self.issued_tokens)

    def revoke_tokens(self) -> None:
        self.valid_tokens.clear()

    def _wrap(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.envelope == "none":
            return body
        data = body if self.envelope == "full" else body["data"]
        return {
            "success": True,
            "code": "200",
            "message": "success",
            "data": data,
            "timestamp": "2026-02-27T03:14:01.000Z",
        }

    def serve(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/customer/v2/token":
            return self._token(request)
        auth = request.headers.get("authorization", "")
        if request.headers.get("accept") != "application/json":
            return json_response(406, {"message": "Accept must be application/json"})
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.valid_tokens:
            return json_response(401, {"message": "Unauthenticated."})
        params = request.url.params
        if path == "/customer/v2/orders":
            return self._list(params)
        if path.startswith("/customer/v2/orders/"):
            order_id = int(path.rsplit("/", 1)[1])
            for order in self.orders:
                if order["id"] == order_id:
                    return json_response(
                        200, self._wrap({"data": order, "meta": {"message": "success"}})
                    )
            return json_response(
                404, {"data": [], "meta": {"message": "messages.resource_not_found"}}
            )
        if path.startswith("/customer/v2/sims/") and path.endswith("/usage"):
            iccid = path.split("/")[4]
            usage = self.usage.get(iccid)
            if usage is None:
                return json_response(
                    404, {"data": [], "meta": {"message": "messages.resource_not_found"}}
                )
            return json_response(200, self._wrap({"data": usage, "meta": {"message": "success"}}))
        return json_response(404, {"data": [], "meta": {"message": "messages.resource_not_found"}})

    def _token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests += 1
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return json_response(422, {"success": False, "code": "4008", "message": "bad form"})
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + request.content
        )
        form = {
            str(part.get_param("name", header="content-disposition")): str(part.get_content())
            for part in message.iter_parts()
        }
        self.token_forms.append(form)
        if (
            form.get("client_id") != self.CLIENT_ID
            or form.get("client_secret") != self.CLIENT_SECRET
            or form.get("grant_type") != "client_credentials"
        ):
            return json_response(
                422,
                {
                    "success": False,
                    "code": "4008",
                    # A careless provider echoing the secret it was sent.
                    "message": f"Validation failed for client_secret {form.get('client_secret')}",
                    "data": None,
                    "timestamp": "2026-02-27T03:14:01.000Z",
                },
            )
        token = f"tok-{self.token_requests}-{'x' * 24}"
        self.valid_tokens.add(token)
        self.issued_tokens.append(token)
        body = {
            "data": {"token_type": "Bearer", "expires_in": self.expires_in, "access_token": token},
            "meta": {"message": "success"},
        }
        return json_response(200, self._wrap(body))

    def _list(self, params: httpx.QueryParams) -> httpx.Response:
        page = int(params.get("page", "1"))
        limit = int(params.get("limit", "50"))
        if self.before_list_page is not None:
            self.before_list_page(page)
        rows = self.orders[(page - 1) * limit : page * limit]
        total = len(self.orders)
        last = max(math.ceil(total / limit), 1)
        base = "https://pressone.test/customer/v2/orders"
        body = {
            "data": rows,
            "links": {
                "first": f"{base}?page=1",
                "last": f"{base}?page={last}",
                "prev": f"{base}?page={page - 1}" if page > 1 else None,
                "next": f"{base}?page={page + 1}" if page < last else None,
            },
            "meta": {
                "message": "success",
                "current_page": page,
                "from": (page - 1) * limit + 1 if rows else None,
                "last_page": last,
                "path": base,
                "per_page": str(limit) if self.per_page_as_string else limit,
                "to": (page - 1) * limit + len(rows) if rows else None,
                "total": total,
            },
        }
        return json_response(200, self._wrap(body))


def body_of(response: httpx.Response) -> Any:
    return json.loads(response.content)
