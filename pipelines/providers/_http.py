"""The request layer shared by both clients: one pooled ``httpx.AsyncClient``, admission
through the client's :class:`RequestGate`, tenacity retries, and the mapping of HTTP answers
to results or :class:`ProviderError` subclasses."""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlencode

import httpx

from ._errors import (
    AuthError,
    BadPayloadError,
    BodyRejected,
    ConflictError,
    EnvelopeFailure,
    NotFoundError,
    PayloadShapeError,
    PaymentRequiredError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    RecordRejected,
    ValidationError,
    excerpt,
    redact_json,
    register_secret,
)
from ._payload import (
    PayloadLimits,
    QuarantineBox,
    decode_body,
    error_details,
    quarantine_record,
    read_capped,
)
from ._ratelimit import Parking, PauseBeyondDeadline, RequestGate
from ._retry import RetryPolicy, parse_rate_limit_reset, parse_retry_after
from ._scalars import as_int, utc_now

__all__ = ["ClientStats", "HttpEngine", "PauseScope", "RateLimitWait", "describe_endpoint"]

R = TypeVar("R")

# "client": a 429 or an exhausted quota pauses every request of the client (the quota is per
# key). "request": only this call backs off (PressOne usage and token quotas are per ICCID and
# per token endpoint; pausing the whole client for them would stall unrelated work).
PauseScope = Literal["client", "request"]

_RETRYABLE_5XX = frozenset({500, 502, 503, 504})
_ERROR_BODY_PEEK = 4096


# A 429 from a per-key endpoint asking for a longer wait than this is the key's own quota
# (PressOne: usage per ICCID), not a sign that the client goes too fast.
KEY_QUOTA_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class RateLimitWait:
    """A call waits ``seconds`` on the provider's rate limit before asking again; the client's
    pace is then ``requests_per_minute`` (``None``: unpaced). For progress lines."""

    provider: str
    endpoint: str
    seconds: float
    requests_per_minute: float | None


def _earliest(*moments: float | None) -> float | None:
    known = [moment for moment in moments if moment is not None]
    return min(known) if known else None


@dataclass(slots=True)
class ClientStats:
    """Counters of one client: HTTP requests sent (retries included), retries, 429 answers
    and, for PressOne, token requests."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    token_requests: int = 0


class _Lanes:
    """Keep-alive connections for one client: one single-connection ``httpx.AsyncClient`` per
    request in flight, created when first needed and reused afterwards.

    httpcore's shared pool re-examines every connection for every queued request on each
    change (quadratic in the requests in flight: most of the client's CPU at 64), so a pool of
    one-connection clients, taken and handed back around each request, does the same job
    cheaply. The gate's semaphore bounds the lanes in use, so their number never exceeds the
    client's concurrency. A ``transport`` given by the caller owns its connections: every
    request then goes through one client on it.
    """

    def __init__(self, *, timeout: float, transport: httpx.AsyncBaseTransport | None) -> None:
        self._timeout = timeout
        self._transport = transport
        self._ssl: ssl.SSLContext | None = None
        self._free: list[httpx.AsyncClient] = []
        self._all: list[httpx.AsyncClient] = []

    def _new(self) -> httpx.AsyncClient:
        if self._transport is not None:
            if not self._all:
                self._all.append(self._client(transport=self._transport))
            return self._all[0]
        if self._ssl is None:  # loading the CA bundle takes tens of milliseconds: once
            self._ssl = httpx.create_ssl_context()
        client = self._client(
            verify=self._ssl, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)
        )
        self._all.append(client)
        return client

    def _client(self, **options: Any) -> httpx.AsyncClient:
        # A redirect could carry the credential headers to another host.
        return httpx.AsyncClient(timeout=self._timeout, follow_redirects=False, **options)

    @asynccontextmanager
    async def lane(self) -> AsyncIterator[httpx.AsyncClient]:
        client = self._free.pop() if self._free else self._new()
        try:
            yield client
        finally:
            if self._transport is None:
                self._free.append(client)

    async def aclose(self) -> None:
        clients, self._all, self._free = self._all, [], []
        for client in clients:
            await client.aclose()


def describe_endpoint(path: str, params: Mapping[str, str] | None = None) -> str:
    """API path plus query, readable. The clients never put secrets in queries."""
    if not params:
        return path
    return f"{path}?{urlencode(dict(params), safe=',[]:-')}"


class HttpEngine:
    """Sends requests for one provider client and maps answers (see module docstring)."""

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        timeout: float,
        retry: RetryPolicy,
        gate: RequestGate,
        transport: httpx.AsyncBaseTransport | None,
        secrets: tuple[str, ...],
        limits: PayloadLimits | None = None,
    ) -> None:
        self.provider = provider
        self.limits = limits or PayloadLimits()
        # Refused answers and records, for the caller to keep (see _payload).
        self.quarantine = QuarantineBox()
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self.gate = gate
        self.stats = ClientStats()
        # When to stop waiting on rate limits (the run's time budget), and who hears of waits.
        self.patience: float | None = None
        # Calls waiting on a per-key quota leave their batch slot to the next key.
        self.parking = Parking(after_seconds=KEY_QUOTA_SECONDS)
        self.on_wait: Callable[[RateLimitWait], None] | None = None
        self._secrets: list[str] = []
        for secret in secrets:
            self.add_secret(secret)
        self._lanes = _Lanes(timeout=timeout, transport=transport)

    def add_secret(self, secret: str | None) -> None:
        if secret:
            register_secret(secret)
            self._secrets.append(secret)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self._secrets)

    async def aclose(self) -> None:
        await self._lanes.aclose()

    def _quarantine(
        self, content: bytes, endpoint: str, status: int, kind: str, reason: str, received: int
    ) -> None:
        self.quarantine.add(
            quarantine_record(
                content,
                provider=self.provider,
                source_endpoint=endpoint,
                http_status=status,
                kind=kind,
                reason=reason,
                fetched_at=utc_now(),
                secrets=self.secrets,
                raw_bytes=received,
            )
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        parse: Callable[[Any], R],
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        pause_scope: PauseScope = "client",
        deadline: float | None = None,
        patience: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> R:
        """Send with retries; return ``parse(decoded JSON body)`` of the 2xx answer.

        ``form`` is sent as multipart/form-data text fields.

        ``parse`` raises :class:`PayloadShapeError` for a wrong shape (retried) or
        :class:`EnvelopeFailure` for a ``"success": false`` envelope (a ValidationError).
        ``deadline`` (``time.monotonic()`` seconds) shortens the retry budget; ``patience``
        (default: the engine's) is when to stop waiting on the provider's rate limit, which
        then raises :class:`RateLimitedError`: the call is not done, not failed (see
        ``_retry``). ``retry`` replaces the engine's policy for this call.
        """
        endpoint = describe_endpoint(path, params)
        label = f"{self.provider} {method} {endpoint}"
        if patience is None:
            patience = self.patience
        # Waiting on a rate limit, in the gate as in the retries, ends at the patience.
        pause_limit = _earliest(deadline, patience)

        def on_retry(exc: ProviderError, wait: float) -> None:
            self.stats.retries += 1
            if isinstance(exc, RateLimitedError) and self.on_wait is not None:
                self.on_wait(
                    RateLimitWait(self.provider, endpoint, wait, self.gate.requests_per_minute)
                )

        retrying = (retry or self.retry).retrying(
            deadline=deadline,
            patience=patience,
            describe=lambda: label,
            on_retry=on_retry,
            sleep=self.parking.sleep,
        )
        attempts = 0
        result: R | None = None
        try:
            async for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    result = await self._attempt(
                        method,
                        path,
                        endpoint=endpoint,
                        label=label,
                        parse=parse,
                        params=params,
                        headers=headers,
                        form=form,
                        pause_scope=pause_scope,
                        pause_limit=pause_limit,
                    )
        except ProviderError as exc:
            exc.attempts = max(attempts, 1)
            raise
        return result  # type: ignore[return-value]

    async def _attempt(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        label: str,
        parse: Callable[[Any], R],
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        form: Mapping[str, str] | None,
        pause_scope: PauseScope,
        pause_limit: float | None,
    ) -> R:
        common: dict[str, Any] = {"provider": self.provider, "endpoint": endpoint}
        try:
            async with self.gate.slot(deadline=pause_limit), self._lanes.lane() as client:
                self.stats.requests += 1
                request = client.build_request(
                    method,
                    self.base_url + path,
                    params=params,
                    headers=headers,
                    # A (None, value) pair is a multipart text field without a file name.
                    files={name: (None, value) for name, value in form.items()} if form else None,
                )
                # Streamed, so that a body past the size limit is never read whole.
                sent_at = time.monotonic()
                response = await client.send(request, stream=True)
                try:
                    content, received, over = await read_capped(
                        response.aiter_bytes(), self.limits.max_body_bytes
                    )
                finally:
                    await response.aclose()
        except PauseBeyondDeadline as exc:
            raise RateLimitedError(
                f"{label}: the client is paused by the provider's rate limit for another "
                f"{exc.resume_in:.1f}s, beyond this run's time budget",
                retry_after=exc.resume_in,
                **common,
            ) from None
        except httpx.TimeoutException as exc:
            raise ProviderUnavailableError(
                f"{label}: timed out ({type(exc).__name__})", retryable=True, **common
            ) from exc
        except httpx.UnsupportedProtocol as exc:
            raise ProviderError(f"{label}: unsupported URL scheme", **common) from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailableError(
                f"{label}: connection failed ({type(exc).__name__})", retryable=True, **common
            ) from exc
        except httpx.DecodingError as exc:
            raise BadPayloadError(
                f"{label}: undecodable response body", retryable=True, **common
            ) from exc
        return self._interpret(
            response,
            content,
            parse,
            label=label,
            endpoint=endpoint,
            pause_scope=pause_scope,
            sent_at=sent_at,
            size=(received, over),
        )

    def _observe_rate_headers(
        self, response: httpx.Response, pause_scope: PauseScope, sent_at: float
    ) -> float | None:
        """Pause and pace the client as the headers ask; return the wait hint for this
        response."""
        headers = response.headers
        retry_after = parse_retry_after(headers.get("retry-after"))
        reset = parse_rate_limit_reset(headers.get("x-ratelimit-reset"))
        remaining = as_int(headers.get("x-ratelimit-remaining"))
        status = response.status_code
        if status == 429:
            hint = retry_after if retry_after is not None else reset
            if pause_scope == "client":
                # Without a usable hint, still hold the others back for one short backoff.
                self.gate.pause_for(hint if hint else self.retry.initial_wait)
                self.gate.rate_limited(sent_at)
            elif not hint or hint <= KEY_QUOTA_SECONDS:
                # A per-key endpoint cannot tell the client's limit from the key's; a short
                # wait is the client's pace being too fast, a long one the key's own quota.
                self.gate.rate_limited(sent_at)
            return hint
        if pause_scope == "client":
            if 200 <= status < 300:
                self.gate.succeeded()
            if status == 503 and retry_after:
                self.gate.pause_for(retry_after)
            elif remaining == 0:
                self.gate.pause_for(reset if reset is not None else (retry_after or 0.0))
            elif remaining is not None:
                self.gate.remaining(remaining, reset)
        return retry_after

    def _interpret(
        self,
        response: httpx.Response,
        content: bytes,
        parse: Callable[[Any], R],
        *,
        label: str,
        endpoint: str,
        pause_scope: PauseScope,
        sent_at: float,
        size: tuple[int, bool] = (0, False),
    ) -> R:
        status = response.status_code
        hint = self._observe_rate_headers(response, pause_scope, sent_at)
        common: dict[str, Any] = {
            "provider": self.provider,
            "endpoint": endpoint,
            "status_code": status,
        }
        if 200 <= status < 300:
            received, over = size
            try:
                body = decode_body(content, self.limits, over=over)
            except BodyRejected as exc:
                self._quarantine(content, endpoint, status, exc.kind, exc.reason, received)
                raise BadPayloadError(
                    f"{label}: HTTP {status} with {exc.reason}; quarantined",
                    retryable=True,
                    **common,
                ) from None
            try:
                return parse(body)
            except RecordRejected as exc:
                # Well formed but beyond a column: the same request would bring it again.
                reason = excerpt(str(exc), self._secrets)
                self._quarantine(content, endpoint, status, exc.kind, reason, received)
                raise BadPayloadError(
                    f"{label}: HTTP {status}; record quarantined: {reason}", **common
                ) from None
            except EnvelopeFailure as exc:
                raise ValidationError(
                    f"{label}: HTTP {status} but rejected: {excerpt(str(exc), self._secrets)}",
                    code=exc.code,
                    **common,
                ) from None
            except PayloadShapeError as exc:
                reason = excerpt(str(exc), self._secrets)
                self._quarantine(content, endpoint, status, "bad_shape", reason, received)
                raise BadPayloadError(
                    f"{label}: unexpected body shape ({reason}); quarantined",
                    retryable=True,
                    **common,
                ) from None
            except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
                # A reader tripped over a value nobody foresaw: this record, not the run.
                reason = excerpt(f"unreadable record ({type(exc).__name__}: {exc})", self._secrets)
                self._quarantine(content, endpoint, status, "bad_shape", reason, received)
                raise BadPayloadError(
                    f"{label}: HTTP {status}; record quarantined: {reason}", **common
                ) from None

        body = _try_json(content, self.limits)
        message, code = error_details(body)
        if message is None and body is None:
            message = content[:_ERROR_BODY_PEEK].decode("utf-8", "replace")
        detail = excerpt(message, self._secrets) if message else ""
        text = f"{label}: HTTP {status}"
        if code:
            text += f" code {excerpt(code, self._secrets, 20)}"
        if detail:
            text += f": {detail}"

        if status == 429:
            self.stats.rate_limited += 1
            raise RateLimitedError(text, retry_after=hint, retryable=True, **common)
        if status in _RETRYABLE_5XX:
            raise ProviderUnavailableError(text, retry_after=hint, retryable=True, **common)
        if status in (401, 403):
            raise AuthError(text, **common)
        if status == 404:
            safe_body = redact_json(body, self._secrets) if isinstance(body, dict) else None
            raise NotFoundError(text, body=safe_body, **common)
        if status in (400, 422):
            raise ValidationError(text, code=code, **common)
        if status == 402:
            raise PaymentRequiredError(text, **common)
        if status == 409:
            raise ConflictError(text, **common)
        if status >= 500:
            raise ProviderUnavailableError(text, **common)
        raise ProviderError(text, **common)


def _try_json(content: bytes, limits: PayloadLimits) -> Any:
    try:
        return decode_body(content, limits)
    except BodyRejected:
        return None
