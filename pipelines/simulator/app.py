"""The simulator's ASGI application: both provider APIs on one server, under path prefixes.

- eSIMTrade: ``/esimtrade/api/v1`` (``/portal/orders``, ``/reseller/orders``)
- PressOne:  ``/pressone`` as API root (``/customer/v2/token``, ``/orders``, ``/orders/{id}``,
  ``/sims/{iccid}/usage``)
- Control:   ``/_sim/health``, ``/_sim/stats``, ``POST /_sim/advance``

Every provider request goes through ``ProviderGate`` first: latency, authentication, rate limits
and injected faults, in that order. The endpoint handlers then serve the dataset.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import secrets
import threading
import time
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from email.utils import formatdate
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipelines.simulator.dataset import Dataset
from pipelines.simulator.faults import (
    LIST_PAGE_KINDS,
    TOKEN_ENDPOINT_KINDS,
    TRANSPORT_KINDS,
    FaultConfig,
    FaultEngine,
    FaultKind,
    RateLimits,
    Spoil,
    TokenBucket,
    request_key,
    spoil_body,
)
from pipelines.simulator.model import EsimTradeEsim, PressOneOrder

ESIMTRADE_ROOT = "/esimtrade/api/v1"
PRESSONE_ROOT = "/pressone"
PRESSONE_API = PRESSONE_ROOT + "/customer/v2"
Envelope = Literal["plain", "wrapped"]
INCLUDABLE = frozenset({"sims", "user", "status"})
DATE_RANGE = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})\s+-\s+(\d{4}-\d{2}-\d{2})\s*$")
FULL_CODE = re.compile(r"^\d{8}-\d{6}$")
FULL_ICCID = re.compile(r"^\d{19,20}$")


@dataclass(frozen=True)
class Credentials:
    """What the simulator accepts. The defaults are public test values, not secrets."""

    access_code: str = "sim-access"
    secret_key: str = "sim-secret-key-0001"  # noqa: S105 - simulator default
    client_id: str = "sim-client"
    client_secret: str = "sim-client-secret-0001"  # noqa: S105 - simulator default


@dataclass
class SimulatorStats:
    """What the server answered. Updated on the server's event loop; read it after requests."""

    requests: Counter[str] = field(default_factory=Counter)  # per endpoint
    statuses: Counter[int] = field(default_factory=Counter)  # per HTTP status
    rate_limited: Counter[str] = field(default_factory=Counter)  # 429s from the rate limits
    faults: Counter[str] = field(default_factory=Counter)  # injected faults, per kind
    planted_failures: Counter[str] = field(default_factory=Counter)  # poisoned syncs / usage

    @property
    def responses_429(self) -> int:
        return self.statuses[429]

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "statuses": {str(code): count for code, count in self.statuses.items()},
            "responses_429": self.responses_429,
            "rate_limited": dict(self.rate_limited),
            "faults": dict(self.faults),
            "planted_failures": dict(self.planted_failures),
        }


class DroppedConnection(Exception):
    """Raised after a deliberately half-sent response so that the server closes the connection."""


class _QuietDroppedConnections(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


_log_filter_lock = threading.Lock()
_log_filter_installed = False


def _install_log_filter() -> None:
    global _log_filter_installed
    with _log_filter_lock:
        if not _log_filter_installed:
            logging.getLogger("uvicorn.error").addFilter(_QuietDroppedConnections())
            _log_filter_installed = True


class SimulatorState:
    """Everything the app needs besides the dataset: credentials, tokens, limits, faults, stats."""

    def __init__(
        self,
        dataset: Dataset,
        *,
        credentials: Credentials | None = None,
        faults: FaultConfig | None = None,
        rate_limits: RateLimits | None = None,
        pressone_envelope: Envelope = "plain",
        token_ttl_seconds: int = 31_622_400,
        latency_ms: float = 0,
        on_advance: Callable[[Dataset], None] | None = None,
    ) -> None:
        if pressone_envelope not in ("plain", "wrapped"):
            raise ValueError("pressone_envelope must be 'plain' or 'wrapped'")
        self.dataset = dataset
        self.credentials = credentials or Credentials()
        self.faults = faults or FaultConfig()
        self.limits = rate_limits if rate_limits is not None else RateLimits()
        self.envelope = pressone_envelope
        self.token_ttl_seconds = token_ttl_seconds
        self.latency = latency_ms / 1000
        self.on_advance = on_advance
        self.engine = FaultEngine(self.faults, dataset.seed)
        self.stats = SimulatorStats()
        self.closing = threading.Event()
        drift = self.faults.can_inject(FaultKind.LIST_DRIFT)
        # How many of the newest orders (the head of each newest-first list) are still hidden.
        self.hidden = {
            "esimtrade": sum(esim.drift for esim in dataset.esimtrade) if drift else 0,
            "pressone": sum(order.drift for order in dataset.pressone) if drift else 0,
        }
        # PressOne orders are newest first: negated timestamps ascend, for range look-ups.
        self.pressone_keys = [-order.created_at.timestamp() for order in dataset.pressone]
        self.pressone_position = {order.id: index for index, order in enumerate(dataset.pressone)}
        self.tokens: dict[str, float] = {}
        limits = self.limits
        self.buckets = {
            "esimtrade": TokenBucket(limits.esimtrade) if limits.esimtrade else None,
            "pressone": TokenBucket(limits.pressone) if limits.pressone else None,
            "token": TokenBucket(limits.pressone_token) if limits.pressone_token else None,
        }
        self.usage_buckets: dict[str, TokenBucket] = {}
        self.spoiled: Counter[int] = Counter()  # answers spoiled, per index of faults.spoils

    def take_spoil(self, endpoint: str, target: str) -> Spoil | None:
        """The first spoil of the config that applies to this request and is not used up."""
        for index, spoil in enumerate(self.faults.spoils):
            if spoil.applies(endpoint, target) and (
                spoil.times is None or self.spoiled[index] < spoil.times
            ):
                self.spoiled[index] += 1
                return spoil
        return None

    # --- PressOne tokens ---------------------------------------------------------------------

    def issue_token(self) -> str:
        token = "sim." + secrets.token_urlsafe(32)
        self.tokens[token] = time.monotonic() + self.token_ttl_seconds
        return token

    def token_valid(self, token: str | None) -> bool:
        if token is None:
            return False
        expires = self.tokens.get(token)
        return expires is not None and expires > time.monotonic()

    # --- drift --------------------------------------------------------------------------------

    def reveal(self, provider: str, count: int) -> int:
        shown = min(count, self.hidden[provider])
        self.hidden[provider] -= shown
        return shown


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = json.dumps(body, separators=(",", ":")).encode()
    return Response(content, status_code=status, media_type="application/json", headers=headers)


def _pressone_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = {
        "success": False,
        "code": code,
        "message": message,
        "data": None,
        "timestamp": _now_iso(),
    }
    return _json(body, status, headers)


def _esimtrade_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json({"error": message}, status, headers)


def _too_many(provider: str, headers: dict[str, str]) -> Response:
    """A 429 as each provider words it (PressOne's is Laravel's throttle answer)."""
    if provider == "esimtrade":
        return _esimtrade_error(429, "rate limited", headers)
    return _json({"message": "Too Many Attempts."}, 429, headers)


def _gateway_page(status: int) -> Response:
    title = {502: "502 Bad Gateway", 504: "504 Gateway Time-out"}[status]
    html = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    )
    return Response(html, status_code=status, media_type="text/html")


# =============================================================================================
# The gate: latency, auth, rate limits, faults
# =============================================================================================


def classify(path: str) -> tuple[str, str] | None:
    """(provider, endpoint name) of a provider path, or None for anything else."""
    if path.startswith(ESIMTRADE_ROOT + "/"):
        rest = path[len(ESIMTRADE_ROOT) :]
        names = {"/portal/orders": "esimtrade.sync", "/reseller/orders": "esimtrade.list"}
        return "esimtrade", names.get(rest, "esimtrade.other")
    if path.startswith(PRESSONE_API + "/"):
        parts = path[len(PRESSONE_API) + 1 :].split("/")
        if parts == ["token"]:
            return "pressone", "pressone.token"
        if parts == ["orders"]:
            return "pressone", "pressone.orders"
        if len(parts) == 2 and parts[0] == "orders":
            return "pressone", "pressone.order"
        if len(parts) == 3 and parts[0] == "sims" and parts[2] == "usage":
            return "pressone", "pressone.usage"
        return "pressone", "pressone.other"
    return None


def _page_number(query: Sequence[tuple[str, str]]) -> int:
    """The requested page (1 when absent or not a positive number)."""
    value = next((value for name, value in query if name == "page"), None)
    return _positive_int(value, 1) or 1


class ProviderGate:
    """ASGI middleware in front of the provider endpoints."""

    def __init__(self, app: ASGIApp, state: SimulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = classify(scope["path"])
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        provider, name = endpoint
        state = self.state
        state.stats.requests[name] += 1
        send = self._counting(send)
        if state.latency:
            await asyncio.sleep(state.latency)
        headers = {
            key.decode("latin-1").lower(): value.decode("latin-1")
            for key, value in scope["headers"]
        }
        query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        token = None
        if provider == "esimtrade":
            creds = state.credentials
            if (
                headers.get("x-access-code") != creds.access_code
                or headers.get("x-secret-key") != creds.secret_key
            ):
                await _esimtrade_error(401, "invalid access code or secret key")(
                    scope, receive, send
                )
                return
        elif name != "pressone.token":
            authorization = headers.get("authorization", "")
            token = authorization[7:].strip() if authorization[:7].lower() == "bearer " else None
            if not state.token_valid(token):
                await _pressone_error(401, "4010", "Unauthenticated.")(scope, receive, send)
                return
        limited = self._rate_limit(provider, name, scope["path"])
        if limited is not None:
            state.stats.rate_limited[name] += 1
            await limited(scope, receive, send)
            return
        send = self._usage_headers(name, scope["path"], send)
        target = f"{scope['path']}?{scope['query_string'].decode('latin-1')}"
        spoil = state.take_spoil(name, target) if state.faults.spoils else None
        if spoil is not None:
            send = self._spoiling(send, spoil)
        kinds = self._fault_kinds(provider, name, query)
        kind, detail = state.engine.decide(
            request_key(scope["method"], scope["path"], query), kinds
        )
        was_dropped: Callable[[], bool] = lambda: False  # noqa: E731
        if kind is not None:
            if kind in LIST_PAGE_KINDS:  # the list handler applies (and counts) these
                scope["sim.fault"], scope["sim.detail"] = kind, detail
            elif kind is FaultKind.STALL:
                state.stats.faults[kind] += 1
                await self._stall()
            elif kind is FaultKind.TRUNCATED_JSON:
                send = self._truncating(send)
            elif kind is FaultKind.DISCONNECT:
                send, was_dropped = self._dropping(send)
            else:
                state.stats.faults[kind] += 1
                if kind is FaultKind.TOKEN_EXPIRY and token is not None:
                    state.tokens.pop(token, None)
                await self._fault_response(provider, kind)(scope, receive, send)
                return
        await self.app(scope, receive, send)
        if was_dropped():
            raise DroppedConnection(scope["path"])

    # --- pieces -------------------------------------------------------------------------------

    def _counting(self, send: Send) -> Send:
        stats = self.state.stats

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.start":
                stats.statuses[message["status"]] += 1
            await send(message)

        return counting

    def _rate_limit(self, provider: str, name: str, path: str) -> Response | None:
        state = self.state
        bucket = state.buckets["token" if name == "pressone.token" else provider]
        wait = bucket.take() if bucket else 0.0
        if not wait and name == "pressone.usage" and state.limits.pressone_usage_per_iccid:
            bucket = self._usage_bucket(path)
            wait = bucket.take()
        if not wait or bucket is None:
            return None
        headers = {"Retry-After": str(max(1, math.ceil(wait)))}
        if provider == "pressone":
            headers["X-RateLimit-Limit"] = str(bucket.limit.requests)
            headers["X-RateLimit-Remaining"] = "0"
            headers["X-RateLimit-Reset"] = str(int(time.time() + wait))
        return _too_many(provider, headers)

    def _usage_bucket(self, path: str) -> TokenBucket:
        iccid = path.rsplit("/", 2)[-2]
        bucket = self.state.usage_buckets.get(iccid)
        if bucket is None:
            assert self.state.limits.pressone_usage_per_iccid is not None
            bucket = self.state.usage_buckets[iccid] = TokenBucket(
                self.state.limits.pressone_usage_per_iccid
            )
        return bucket

    def _usage_headers(self, name: str, path: str, send: Send) -> Send:
        """Laravel's throttle headers on every answer of the per-ICCID limited usage endpoint."""
        if name != "pressone.usage" or not self.state.limits.pressone_usage_per_iccid:
            return send
        bucket = self._usage_bucket(path)
        extra = [
            (b"x-ratelimit-limit", str(bucket.limit.requests).encode()),
            (b"x-ratelimit-remaining", str(bucket.remaining).encode()),
        ]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return with_headers

    def _fault_kinds(
        self, provider: str, name: str, query: Sequence[tuple[str, str]]
    ) -> tuple[FaultKind, ...]:
        endpoints = self.state.faults.endpoints
        if endpoints is not None and name not in endpoints:
            return ()
        if name == "pressone.token":
            return TOKEN_ENDPOINT_KINDS
        if name.endswith(".other"):
            return ()
        kinds = TRANSPORT_KINDS
        if provider == "pressone":
            kinds = (*kinds, FaultKind.TOKEN_EXPIRY)
        if name in ("esimtrade.list", "pressone.orders") and _page_number(query) >= 2:
            kinds = (*kinds, *LIST_PAGE_KINDS)
        return kinds

    async def _stall(self) -> None:
        """Wait stall_seconds, in short steps so that a server shutting down does not wait."""
        loop = asyncio.get_running_loop()
        until = loop.time() + self.state.faults.stall_seconds
        # The shutdown flag is a threading.Event (set from the thread that owns the server).
        while not self.state.closing.is_set() and loop.time() < until:  # noqa: ASYNC110
            await asyncio.sleep(min(0.05, max(0.0, until - loop.time())))

    def _fault_response(self, provider: str, kind: FaultKind) -> Response:
        retry = str(self.state.faults.retry_after_seconds)
        if kind in (FaultKind.HTTP_502, FaultKind.HTTP_504):
            return _gateway_page(502 if kind is FaultKind.HTTP_502 else 504)
        if kind in (FaultKind.HTTP_500, FaultKind.HTTP_503):
            status = 500 if kind is FaultKind.HTTP_500 else 503
            if provider == "esimtrade":
                return _esimtrade_error(
                    status, "internal error" if status == 500 else "service unavailable"
                )
            return _pressone_error(
                status, f"{status}0", "Server Error" if status == 500 else "Service Unavailable"
            )
        if kind is FaultKind.TOKEN_EXPIRY:
            return _pressone_error(401, "4010", "Unauthenticated.")
        headers = {}
        if kind in (FaultKind.RETRY_AFTER_SECONDS, FaultKind.TOKEN_THROTTLED):
            headers["Retry-After"] = retry
        elif kind is FaultKind.RETRY_AFTER_ZERO:
            headers["Retry-After"] = "0"
        elif kind is FaultKind.RETRY_AFTER_DATE:
            # An HTTP date has whole seconds: one more second keeps the wait positive.
            headers["Retry-After"] = formatdate(time.time() + int(retry) + 1, usegmt=True)
        return _too_many(provider, headers)

    def _truncating(self, send: Send) -> Send:
        stats = self.state.stats

        async def truncate(start: Message, body: bytes) -> None:
            if start["status"] == 200 and len(body) > 1:
                body = body[: len(body) // 2]
                stats.faults[FaultKind.TRUNCATED_JSON] += 1
                headers = [
                    (k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"
                ]
                start = {
                    **start,
                    "headers": [*headers, (b"content-length", str(len(body)).encode())],
                }
            await send(start)
            await send({"type": "http.response.body", "body": body})

        return _whole_response(send, truncate)

    def _spoiling(self, send: Send, spoil: Spoil) -> Send:
        stats = self.state.stats

        async def spoiled(start: Message, body: bytes) -> None:
            if start["status"] == 200:
                body, content_type = spoil_body(spoil, body)
                stats.faults[f"spoil:{spoil.kind}"] += 1
                replaced = {b"content-length"} | ({b"content-type"} if content_type else set())
                headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in replaced]
                headers.append((b"content-length", str(len(body)).encode()))
                if content_type:
                    headers.append((b"content-type", content_type.encode()))
                start = {**start, "headers": headers}
            await send(start)
            await send({"type": "http.response.body", "body": body})

        return _whole_response(send, spoiled)

    def _dropping(self, send: Send) -> tuple[Send, Callable[[], bool]]:
        stats = self.state.stats
        dropped = False

        async def drop(start: Message, body: bytes) -> None:
            nonlocal dropped
            await send(start)  # still announces the full Content-Length
            await send(
                {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
            )
            stats.faults[FaultKind.DISCONNECT] += 1
            dropped = True

        return _whole_response(send, drop), lambda: dropped


def _whole_response(send: Send, finish: Callable[[Message, bytes], Awaitable[None]]) -> Send:
    """A ``send`` that holds the response back until its body is complete, then hands the start
    message and the whole body to ``finish`` (which sends what it likes)."""
    start: Message = {}
    chunks: list[bytes] = []

    async def holding(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] != "http.response.body":
            await send(message)
        else:
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                await finish(start, b"".join(chunks))

    return holding


# =============================================================================================
# eSIMTrade
# =============================================================================================


def _state(request: Request) -> SimulatorState:
    return request.app.state.sim


async def esimtrade_sync(request: Request) -> Response:
    state = _state(request)
    params = request.query_params
    order_no, iccid = params.get("orderno"), params.get("iccid")
    if (order_no is None) == (iccid is None) or not (order_no or iccid):
        return _esimtrade_error(400, "exactly one of orderno or iccid is required")
    ds = state.dataset
    with ds.lock:
        esim: EsimTradeEsim | None
        if order_no is not None:
            esim = ds.esimtrade_by_order.get(order_no)
        else:
            found = ds.esimtrade_by_iccid.get(iccid or "")
            esim = found[0] if found else None  # a reused ICCID answers with its newest eSIM
        if esim is None:
            return _esimtrade_error(404, "order not found")
        if esim.poisoned:
            state.stats.planted_failures["esimtrade.sync"] += 1
            return _esimtrade_error(500, "upstream failure")
        if order_no is not None:  # a sync by order number refreshes the stored copy
            esim.stored_status = esim.esim_status.lower()
        return _json({"data": esim.sync_json()})


def _positive_int(value: str | None, default: int) -> int | None:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number >= 1 else None


def _paging(request: Request, size_name: str, default_size: int) -> tuple[int, int] | None:
    """(page, page size clamped to 100) of a listing, or None unless both are positive integers."""
    page = _positive_int(request.query_params.get("page"), 1)
    size = _positive_int(request.query_params.get(size_name), default_size)
    return None if page is None or size is None else (page, min(size, 100))


async def esimtrade_list(request: Request) -> Response:
    state = _state(request)
    paging = _paging(request, "pageSize", 20)
    if paging is None:
        return _esimtrade_error(400, "page and pageSize must be positive integers")
    page, size = paging
    params = request.query_params
    status = (params.get("status") or "").strip().lower()
    needle = (params.get("q") or "").strip().lower()
    ds = state.dataset
    with ds.lock:

        def select() -> tuple[Sequence[EsimTradeEsim], int]:
            hidden = state.hidden["esimtrade"]
            if not status and not needle:
                return ds.esimtrade, hidden  # rows are esimtrade[hidden:]
            rows = [
                esim
                for esim in ds.esimtrade[hidden:]
                if (not status or esim.stored_status == status)
                and (not needle or _esimtrade_matches(esim, needle))
            ]
            return rows, 0

        items, total = _list_page(request, "esimtrade", page, size, select)
        body = {
            "page": page,
            "pageSize": size,
            "total": total,
            "orders": [esim.list_json() for esim in items],
        }
    return _json(body)


def _esimtrade_matches(esim: EsimTradeEsim, needle: str) -> bool:
    package = esim.package
    return any(
        needle in text.lower() for text in (esim.order_no, package.code, package.slug, package.name)
    )


def _list_page(
    request: Request,
    provider: str,
    page: int,
    size: int,
    select: Callable[[], tuple[Sequence[Any], int]],
) -> tuple[list[Any], int]:
    """One page of a newest-first listing and the listing's total, after the list faults.

    ``select`` gives the listing's rows and the offset where the visible ones start. A drift
    fault on page 2 or later reveals a few hidden newest orders before the page is cut, so the
    page shifts under the client. The last page of any listing reveals all that are still hidden,
    so a client that finishes its walk (and notices the changed total) sees everything. A
    duplicate-row fault repeats the previous page's last row at the top.
    """
    state = _state(request)
    fault = request.scope.get("sim.fault")
    drifting = fault is FaultKind.LIST_DRIFT and page >= 2 and state.hidden[provider]
    detail = request.scope.get("sim.detail", 0.0)
    if drifting and state.reveal(provider, 1 + int(detail * state.faults.drift_batch)):
        state.stats.faults[FaultKind.LIST_DRIFT] += 1
    rows, offset = select()
    if state.hidden[provider] and page >= math.ceil((len(rows) - offset) / size):
        state.reveal(provider, state.hidden[provider])
        if page >= 2:
            state.stats.faults[FaultKind.LIST_DRIFT] += 1
        rows, offset = select()
    start = offset + (page - 1) * size
    items = list(rows[start : start + size])
    if fault is FaultKind.DUPLICATE_ROW and items and start - 1 >= offset:
        items.insert(0, rows[start - 1])
        state.stats.faults[fault] += 1
    return items, len(rows) - offset


# =============================================================================================
# PressOne
# =============================================================================================


def _pressone_ok(state: SimulatorState, body: Any) -> Response:
    if state.envelope == "wrapped":
        body = {
            "success": True,
            "code": "0000",
            "message": "success",
            "data": body,
            "timestamp": _now_iso(),
        }
    return _json(body)


async def _form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "")
    raw = await request.body()
    if content_type.startswith("multipart/form-data"):
        message = BytesParser(policy=policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw
        )
        fields = {}
        if message.is_multipart():
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True)
                if isinstance(name, str) and isinstance(payload, bytes):
                    fields[name] = payload.decode("utf-8", "replace")
        return fields
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    return {}


async def pressone_token(request: Request) -> Response:
    state = _state(request)
    form = await _form(request)
    missing = [name for name in ("client_id", "client_secret", "grant_type") if not form.get(name)]
    if missing or form.get("grant_type") != "client_credentials":
        return _pressone_error(422, "4008", "Validation failed")
    creds = state.credentials
    if form["client_id"] != creds.client_id or form["client_secret"] != creds.client_secret:
        return _pressone_error(401, "4010", "Invalid client credentials")
    body = {
        "data": {
            "token_type": "Bearer",
            "expires_in": state.token_ttl_seconds,
            "access_token": state.issue_token(),
        },
        "meta": {"message": "success"},
    }
    return _pressone_ok(state, body)


def _include(request: Request) -> frozenset[str]:
    raw = request.query_params.get("include") or ""
    return frozenset(part.strip() for part in raw.split(",")) & INCLUDABLE


async def pressone_orders(request: Request) -> Response:
    state = _state(request)
    paging = _paging(request, "limit", 50)
    if paging is None:
        return _pressone_error(422, "4008", "Validation failed")
    page, limit = paging
    params = request.query_params
    date_range = None
    if params.get("filter[created_at]"):
        matched = DATE_RANGE.match(params["filter[created_at]"])
        if not matched:
            return _pressone_error(422, "4008", "Validation failed")
        try:
            first = datetime.strptime(matched.group(1), "%Y-%m-%d").replace(tzinfo=UTC)
            last = datetime.strptime(matched.group(2), "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            return _pressone_error(422, "4008", "Validation failed")
        date_range = (first.timestamp(), last.timestamp() + 86_399)
    code = params.get("filter[code]") or ""
    iccid = params.get("filter[iccid]") or ""
    description = (params.get("filter[description]") or "").lower()
    status = params.get("filter[order_status]") or ""
    include = _include(request)
    ds = state.dataset

    def keep(order: PressOneOrder) -> bool:
        if date_range and not date_range[0] <= order.created_at.timestamp() <= date_range[1]:
            return False
        if code and code not in order.code:
            return False
        if iccid and not any(iccid in sim.iccid for sim in order.sims):
            return False
        if description and description not in (order.description or "").lower():
            return False
        return not status or order.status == status

    def select() -> tuple[Sequence[PressOneOrder], int]:
        hidden = state.hidden["pressone"]
        if not (date_range or code or iccid or description or status):
            return ds.pressone, hidden
        if code and FULL_CODE.match(code):
            found = ds.pressone_by_code.get(code)
            candidates = [found] if found else []
        elif iccid and FULL_ICCID.match(iccid):
            candidates = list(ds.pressone_by_iccid.get(iccid, ()))
        elif date_range:
            low = bisect_left(state.pressone_keys, -date_range[1])
            high = bisect_right(state.pressone_keys, -date_range[0])
            candidates = ds.pressone[max(low, hidden) : high]
        else:
            candidates = ds.pressone[hidden:]
        position = state.pressone_position
        return [order for order in candidates if position[order.id] >= hidden and keep(order)], 0

    with ds.lock:
        items, total = _list_page(request, "pressone", page, limit, select)
        data = [order.json(include) for order in items]
    last_page = max(1, math.ceil(total / limit))
    path = str(request.base_url).rstrip("/") + request.url.path
    others = [(name, value) for name, value in params.multi_items() if name != "page"]

    def link(number: int) -> str:
        return f"{path}?{urlencode([*others, ('page', str(number))])}"

    first_index = (page - 1) * limit + 1
    body = {
        "data": data,
        "links": {
            "first": link(1),
            "last": link(last_page),
            "prev": link(page - 1) if page > 1 else None,
            "next": link(page + 1) if page < last_page else None,
        },
        "meta": {
            "message": "success",
            "current_page": page,
            "from": first_index if items else None,
            "last_page": last_page,
            "path": path,
            "per_page": str(limit),
            "to": first_index + len(items) - 1 if items else None,
            "total": total,
        },
    }
    return _pressone_ok(state, body)


async def pressone_order(request: Request) -> Response:
    state = _state(request)
    try:
        order_id = int(request.path_params["order_id"])
    except ValueError:
        return _pressone_error(404, "4040", "Order not found")
    with state.dataset.lock:
        order = state.dataset.pressone_by_id.get(order_id)
        if order is None:
            return _pressone_error(404, "4040", "Order not found")
        body = {"data": order.json(_include(request)), "meta": {"message": "success"}}
    return _pressone_ok(state, body)


async def pressone_usage(request: Request) -> Response:
    state = _state(request)
    iccid = request.path_params["iccid"]
    with state.dataset.lock:
        usage = state.dataset.pressone_usage.get(iccid)
        if usage is None:
            return _json({"data": [], "meta": {"message": "messages.resource_not_found"}}, 404)
        if usage.poisoned:
            state.stats.planted_failures["pressone.usage"] += 1
            return _pressone_error(500, "5000", "Server Error")
        body = {"data": usage.json(), "meta": {"message": "success"}}
    return _pressone_ok(state, body)


# =============================================================================================
# Control endpoints and the app
# =============================================================================================


async def health(request: Request) -> Response:
    return _json({"status": "ok", "epoch": _state(request).dataset.epoch})


async def stats(request: Request) -> Response:
    return _json(_state(request).stats.snapshot())


async def advance(request: Request) -> Response:
    state = _state(request)

    def step() -> None:
        state.dataset.advance()
        if state.on_advance:
            state.on_advance(state.dataset)

    await asyncio.to_thread(step)
    return _json({"epoch": state.dataset.epoch})


def create_app(state: SimulatorState) -> Starlette:
    _install_log_filter()
    routes = [
        Route(ESIMTRADE_ROOT + "/portal/orders", esimtrade_sync, methods=["GET"]),
        Route(ESIMTRADE_ROOT + "/reseller/orders", esimtrade_list, methods=["GET"]),
        Route(PRESSONE_API + "/token", pressone_token, methods=["POST"]),
        Route(PRESSONE_API + "/orders", pressone_orders, methods=["GET"]),
        Route(PRESSONE_API + "/orders/{order_id}", pressone_order, methods=["GET"]),
        Route(PRESSONE_API + "/sims/{iccid}/usage", pressone_usage, methods=["GET"]),
        Route("/_sim/health", health, methods=["GET"]),
        Route("/_sim/stats", stats, methods=["GET"]),
        Route("/_sim/advance", advance, methods=["POST"]),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(ProviderGate, state=state)])
    app.state.sim = state
    return app
