"""Random but reproducible transport faults, and the simulator's rate limits.

Each fault is decided from a hash of (seed, method, path, query, attempt number of that exact
request), so the outcome of a request does not depend on what other requests run concurrently.
No request key ever gets more than ``max_consecutive`` faults in a row: a client that tries a
request at least ``max_consecutive + 2`` times always gets through, so a run with faults ends with
the same data as a run without. The planted persistent failures of the dataset (poisoned syncs
and usage lookups) are not faults: they always fail.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class FaultKind(StrEnum):
    RETRY_AFTER_SECONDS = "retry_after_seconds"  # 429, Retry-After: <seconds>
    RETRY_AFTER_ZERO = "retry_after_zero"  # 429, Retry-After: 0
    RETRY_AFTER_DATE = "retry_after_date"  # 429, Retry-After: <HTTP date>
    RETRY_AFTER_MISSING = "retry_after_missing"  # 429 without Retry-After
    HTTP_500 = "http_500"
    HTTP_502 = "http_502"  # HTML body, as a gateway sends it
    HTTP_503 = "http_503"
    HTTP_504 = "http_504"  # HTML body, as a gateway sends it
    STALL = "stall"  # no answer for stall_seconds (past the client's timeout), then the answer
    DISCONNECT = "disconnect"  # half the body, then the connection is closed
    TRUNCATED_JSON = "truncated_json"  # a 200 whose JSON body is cut short
    # PressOne: the bearer token expires early (401 until a new one is fetched)
    TOKEN_EXPIRY = "token_expiry"  # noqa: S105 - a fault name
    # PressOne: the token endpoint's own rate limit answers 429
    TOKEN_THROTTLED = "token_throttled"  # noqa: S105 - a fault name
    LIST_DRIFT = "list_drift"  # newer orders appear at the head while a list is paged
    DUPLICATE_ROW = "duplicate_row"  # the previous page's last order repeated on this page


TRANSPORT_KINDS: tuple[FaultKind, ...] = (
    FaultKind.RETRY_AFTER_SECONDS,
    FaultKind.RETRY_AFTER_ZERO,
    FaultKind.RETRY_AFTER_DATE,
    FaultKind.RETRY_AFTER_MISSING,
    FaultKind.HTTP_500,
    FaultKind.HTTP_502,
    FaultKind.HTTP_503,
    FaultKind.HTTP_504,
    FaultKind.STALL,
    FaultKind.DISCONNECT,
    FaultKind.TRUNCATED_JSON,
)
TOKEN_ENDPOINT_KINDS: tuple[FaultKind, ...] = (
    FaultKind.TOKEN_THROTTLED,
    FaultKind.HTTP_500,
    FaultKind.HTTP_502,
    FaultKind.HTTP_503,
)
LIST_PAGE_KINDS: tuple[FaultKind, ...] = (FaultKind.LIST_DRIFT, FaultKind.DUPLICATE_ROW)


@dataclass(frozen=True)
class FaultConfig:
    """Which faults to inject and how often.

    ``rates`` gives each kind the probability that a request where the kind can happen gets it.
    ``uniform(rate)`` instead gives every request the probability ``rate`` of some fault, the kind
    drawn evenly among those that can happen to that request. ``seed`` defaults to the dataset's.
    ``endpoints`` limits the faults to requests of those endpoints (e.g. only the order lists).
    """

    rates: Mapping[FaultKind, float] = field(default_factory=dict)
    spread: float | None = None
    seed: int | None = None
    max_consecutive: int = 2
    stall_seconds: float = 30.0
    retry_after_seconds: int = 1
    drift_batch: int = 3  # at most this many hidden orders appear per drift
    spoils: tuple[Spoil, ...] = ()  # targeted spoiled answers (see Spoil)
    # Only requests to these endpoints (names as in the stats: "esimtrade.list",
    # "pressone.orders", "pressone.usage", ...) get faults; None: every endpoint.
    endpoints: frozenset[str] | None = None

    def __post_init__(self) -> None:
        for kind, rate in self.rates.items():
            FaultKind(kind)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault rate for {kind} must be within [0, 1]")
        if self.spread is not None and not 0.0 <= self.spread <= 1.0:
            raise ValueError("fault rate must be within [0, 1]")
        if self.max_consecutive < 0:
            raise ValueError("max_consecutive must not be negative")

    @classmethod
    def uniform(cls, rate: float, **options: object) -> FaultConfig:
        return cls(spread=rate, **options)  # type: ignore[arg-type]

    @classmethod
    def only(cls, *kinds: FaultKind, rate: float = 1.0, **options: object) -> FaultConfig:
        return cls(rates={FaultKind(kind): rate for kind in kinds}, **options)  # type: ignore[arg-type]

    def rate_of(self, kind: FaultKind, among: Sequence[FaultKind]) -> float:
        if self.spread is not None:
            return self.spread / len(among) if kind in among else 0.0
        return float(self.rates.get(kind, 0.0)) if kind in among else 0.0

    def can_inject(self, kind: FaultKind) -> bool:
        if self.spread is not None:
            return self.spread > 0
        return self.rates.get(kind, 0.0) > 0


# --- spoiled answers ----------------------------------------------------------------------------


class SpoilKind(StrEnum):
    """What a spoiled 200 answer looks like (a provider's bug, a proxy's error page, an attacker
    in the path). Unlike the random faults, a spoil hits the requests it names."""

    HUGE_INTEGER = "huge_integer"  # the first record's count: 100000000000000000000
    HUGE_AMOUNT = "huge_amount"  # the first record's price beyond DECIMAL(18, 4)
    CONTROL_CHARACTERS = "control_characters"  # NUL and ESC in one of the first record's codes
    DEEP_NESTING = "deep_nesting"  # valid JSON nested ``depth`` levels deep
    HUGE_BODY = "huge_body"  # valid JSON padded to ``size`` bytes
    NOT_JSON = "not_json"  # an HTML error page with status 200
    ABSURD_ECHO = "absurd_echo"  # a list page echoing page and page size ``echo``


# The field each record-level spoil changes, per endpoint.
_SPOILED_FIELD: dict[SpoilKind, dict[str, str]] = {
    SpoilKind.HUGE_INTEGER: {
        "esimtrade.sync": "orderUsage",
        "esimtrade.list": "quantity",
        "pressone.orders": "quantity",
    },
    SpoilKind.HUGE_AMOUNT: {"esimtrade.list": "costPrice", "pressone.orders": "price"},
    SpoilKind.CONTROL_CHARACTERS: {
        "esimtrade.sync": "iccid",
        "esimtrade.list": "status",
        "pressone.orders": "currency",
        "pressone.usage": "status",
    },
}
_SPOILED_VALUE: dict[SpoilKind, object] = {
    SpoilKind.HUGE_INTEGER: 10**20,
    SpoilKind.HUGE_AMOUNT: "100000000000000000000.00",
    SpoilKind.CONTROL_CHARACTERS: "89\x00\x1b[2J",
}


@dataclass(frozen=True)
class Spoil:
    """Spoil the 200 answers of ``endpoint`` (``esimtrade.sync``, ``esimtrade.list``,
    ``pressone.orders``, ``pressone.usage``) whose ``path?query`` contains ``match``: the first
    ``times`` of them (``None``: every one)."""

    kind: SpoilKind
    endpoint: str
    match: str = ""
    times: int | None = 1
    depth: int = 200_000
    size: int = 9 * 2**20
    echo: object = 10**18

    def __post_init__(self) -> None:
        SpoilKind(self.kind)
        fields = _SPOILED_FIELD.get(self.kind)
        if fields is not None and self.endpoint not in fields:
            raise ValueError(f"{self.kind} cannot spoil {self.endpoint}")
        if self.kind is SpoilKind.ABSURD_ECHO and self.endpoint not in (
            "esimtrade.list",
            "pressone.orders",
        ):
            raise ValueError("absurd_echo spoils list pages only")

    def applies(self, endpoint: str, target: str) -> bool:
        return endpoint == self.endpoint and self.match in target


def _records_of(endpoint: str, body: dict[str, object]) -> list[dict[str, object]]:
    """The records of a decoded answer, whichever envelope it came in."""
    data = body.get("orders") if endpoint == "esimtrade.list" else body.get("data")
    if isinstance(data, dict) and "success" in body:  # the PressOne envelope
        data = data.get("data", data)
    if isinstance(data, dict):
        return [data]
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def spoil_body(spoil: Spoil, body: bytes) -> tuple[bytes, str | None]:
    """``(body, content type or None to keep it)``: ``body`` spoiled as ``spoil`` says."""
    kind = spoil.kind
    if kind is SpoilKind.NOT_JSON:
        page = b"<html><body><h1>502 Bad Gateway</h1><p>upstream proxy error</p></body></html>"
        return page, "text/html"
    if kind is SpoilKind.DEEP_NESTING:
        return b'{"data":' + b"[" * spoil.depth + b"]" * spoil.depth + b"}", None
    decoded = json.loads(body)
    if kind is SpoilKind.HUGE_BODY:
        decoded["padding"] = "x" * max(0, spoil.size - len(body))
    elif kind is SpoilKind.ABSURD_ECHO:
        inner = decoded.get("data") if "success" in decoded else decoded
        meta = inner.get("meta") if isinstance(inner, dict) else None
        if spoil.endpoint == "pressone.orders" and isinstance(meta, dict):
            meta["current_page"] = meta["per_page"] = spoil.echo
        else:
            decoded["page"] = decoded["pageSize"] = spoil.echo
    else:
        records = _records_of(spoil.endpoint, decoded)
        if records:
            records[0][_SPOILED_FIELD[kind][spoil.endpoint]] = _SPOILED_VALUE[kind]
    return json.dumps(decoded).encode(), None


RequestKey = tuple[str, str, str]


def request_key(method: str, path: str, query: Sequence[tuple[str, str]]) -> RequestKey:
    canonical = "&".join(f"{name}={value}" for name, value in sorted(query))
    return (method.upper(), path, canonical)


class FaultEngine:
    """Decides, per request, whether and which fault to inject. Not thread-safe: the server calls
    it from its event loop only."""

    def __init__(self, config: FaultConfig, seed: int) -> None:
        self.config = config
        self.seed = config.seed if config.seed is not None else seed
        self._attempts: dict[RequestKey, int] = {}
        self._streak: dict[RequestKey, int] = {}

    def draw(self, key: RequestKey, attempt: int) -> tuple[float, float]:
        text = f"{self.seed}|{key[0]}|{key[1]}|{key[2]}|{attempt}".encode()
        digest = hashlib.blake2b(text, digest_size=16).digest()
        return (
            int.from_bytes(digest[:8], "big") / 2**64,
            int.from_bytes(digest[8:], "big") / 2**64,
        )

    def decide(self, key: RequestKey, kinds: Sequence[FaultKind]) -> tuple[FaultKind | None, float]:
        """The fault for this attempt of ``key`` (or None) and a second uniform number in [0, 1)
        for the fault's details."""
        attempt = self._attempts.get(key, 0) + 1
        self._attempts[key] = attempt
        first, second = self.draw(key, attempt)
        chosen = None
        if kinds and self._streak.get(key, 0) < self.config.max_consecutive:
            edge = 0.0
            for kind in kinds:
                edge += self.config.rate_of(kind, kinds)
                if first < edge:
                    chosen = kind
                    break
        self._streak[key] = self._streak.get(key, 0) + 1 if chosen else 0
        return chosen, second


# --- rate limits --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    """``requests`` per ``per_seconds``, as a token bucket holding ``requests`` tokens."""

    requests: int
    per_seconds: float

    def __post_init__(self) -> None:
        if self.requests < 1 or self.per_seconds <= 0:
            raise ValueError("a limit needs at least one request per positive period")


@dataclass(frozen=True)
class RateLimits:
    """Per-provider limits. ``None`` switches a limit off.

    The defaults are looser than production (eSIMTrade allows 120 requests per minute, PressOne
    publishes only its per-ICCID usage and token limits, as here) so that tests and the demo stay
    fast while still meeting 429s under bursts.
    """

    esimtrade: Limit | None = Limit(20, 1.0)
    pressone: Limit | None = Limit(20, 1.0)
    pressone_usage_per_iccid: Limit | None = Limit(10, 60.0)
    pressone_token: Limit | None = Limit(5, 60.0)

    @classmethod
    def unlimited(cls) -> RateLimits:
        return cls(None, None, None, None)


class TokenBucket:
    def __init__(self, limit: Limit) -> None:
        self.limit = limit
        self.capacity = float(limit.requests)
        self.rate = limit.requests / limit.per_seconds
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self) -> float:
        """Take one token: 0.0 when allowed, else the seconds until one is available."""
        self._refill()
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    @property
    def remaining(self) -> int:
        self._refill()
        return int(self.tokens)
