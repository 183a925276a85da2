"""Exceptions raised by the provider clients, and secret redaction.

Exception tree::

    ProviderError                    any failure talking to a provider
    ├── AuthError                    401/403 (after one token refresh for PressOne);
    │                                bad credentials at the PressOne token endpoint
    ├── NotFoundError                404; ``body`` holds the (redacted) JSON error body
    ├── RateLimitedError             429 still after retries; ``retry_after`` in seconds
    ├── ProviderUnavailableError     5xx, timeouts, connection errors after retries
    ├── BadPayloadError              non-JSON, truncated JSON or wrong shape after retries
    ├── ValidationError              400/422; ``code`` is PressOne's business code if any
    ├── PaymentRequiredError         402 (eSIMTrade wallet too low)
    └── ConflictError                409 (eSIMTrade idempotency conflict)

Every exception carries ``provider`` ("esimtrade" / "pressone"), ``endpoint`` (the API path plus
the query the client built; the clients never put secrets in queries), ``status_code`` (``None``
when no HTTP answer arrived) and ``attempts``. Messages are built from the status, the endpoint and
a short excerpt of the response body passed through :func:`redact`, so they never contain an
access key, client secret or bearer token.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

__all__ = [
    "AuthError",
    "BadPayloadError",
    "ConflictError",
    "NotFoundError",
    "PaymentRequiredError",
    "ProviderError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "ValidationError",
    "redact",
    "register_secret",
]

REDACTED = "***"
EXCERPT_CHARS = 200

_registry_lock = threading.Lock()
_registered: set[str] = set()

# Credential-looking fragments are masked even when the value itself was never registered
# (e.g. a provider echoing a token it issued to someone else).
_CREDENTIAL_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(
        r"(?i)([\"']?(?:access_token|client_secret|secret_key|x-secret-key|secret)[\"']?"
        r"\s*[:=]\s*[\"']?)[^\"'\s,;&}]+"
    ),
)


_CREDENTIAL_KEY = re.compile(
    r"(?i)access_token|refresh_token|client_secret|secret_key|x-secret-key|secret|password"
)


def value_is_set(value: Any) -> bool:
    return value is not None and value != ""


def register_secret(value: str | None) -> None:
    """Remember a secret so that every later :func:`redact` call masks it."""
    if value:
        with _registry_lock:
            _registered.add(value)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return ``text`` with every given or registered secret, and credential-looking
    fragments (``Bearer ...``, ``"access_token": "..."``), replaced by ``***``."""
    with _registry_lock:
        candidates = set(_registered)
    candidates.update(s for s in secrets if s)
    # Longest first, so a secret containing another one is masked whole.
    for secret in sorted(candidates, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _CREDENTIAL_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def redact_json(value: Any, secrets: Iterable[str | None] = ()) -> Any:
    """Redact every string inside a decoded JSON value, and mask the value of every
    credential-named key. Keys are left alone, so the result serializes to valid JSON (masking
    the serialized text instead could cut through an escape such as ``\u001b``)."""
    secrets = tuple(secrets)
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {
            k: REDACTED
            if isinstance(k, str) and _CREDENTIAL_KEY.fullmatch(k) and value_is_set(v)
            else redact_json(v, secrets)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_json(v, secrets) for v in value]
    return value


def excerpt(text: str, secrets: Iterable[str | None] = (), limit: int = EXCERPT_CHARS) -> str:
    """A short single-line excerpt; redaction runs before truncation so that a cut can
    never leave part of a secret visible."""
    flat = " ".join(redact(text, secrets).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class ProviderError(Exception):
    """Base class of every error raised by the provider clients.

    ``retryable`` marks the transient failures the retry policy acts on; once retries are
    exhausted the last error is raised as is, with ``attempts`` set.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        endpoint: str,
        status_code: int | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.endpoint = endpoint
        self.status_code = status_code
        self.retryable = retryable
        self.attempts = 1

    def __str__(self) -> str:
        if self.attempts > 1:
            return f"{self.message} (after {self.attempts} attempts)"
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(provider={self.provider!r}, endpoint={self.endpoint!r}, "
            f"status_code={self.status_code!r}, message={str(self)!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors defeat Exception's default pickling (used when errors
        # cross process boundaries).
        return (_rebuild_error, (type(self), self.message, dict(self.__dict__)))


def _rebuild_error(cls: type[ProviderError], message: str, state: dict[str, Any]) -> ProviderError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class AuthError(ProviderError):
    """Credentials rejected (401/403). The whole provider is misconfigured, so callers that
    otherwise turn per-record failures into outcomes let this one propagate."""


class NotFoundError(ProviderError):
    """404. ``body`` is the decoded JSON error body (redacted), when it was a JSON object."""

    def __init__(self, message: str, *, body: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.body = body


class RateLimitedError(ProviderError):
    """429 that persisted through the retries, or a client-wide rate-limit pause that lasts
    beyond the call's time budget. ``retry_after`` is the provider's last hint in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ProviderUnavailableError(ProviderError):
    """5xx answers, timeouts and connection failures that persisted through the retries."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class BadPayloadError(ProviderError):
    """A success status whose body is not JSON, is truncated, or has an unexpected shape."""


class ValidationError(ProviderError):
    """400/422, or a PressOne envelope with ``"success": false``. ``code`` is the provider's
    business code (e.g. ``"4008"``, ``"34"``) when the body carried one."""

    def __init__(self, message: str, *, code: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.code = code


class PaymentRequiredError(ProviderError):
    """402: the eSIMTrade wallet balance is too low for the operation."""


class ConflictError(ProviderError):
    """409: an eSIMTrade idempotency conflict."""


class PayloadShapeError(ValueError):
    """Raised by body parsers when a decoded body does not have the documented shape;
    the request layer turns it into a retryable :class:`BadPayloadError`."""


class RecordRejected(PayloadShapeError):
    """Raised by record parsers for a value a typed column cannot hold (an integer beyond
    BIGINT, an amount beyond the decimal type, an over-long string, control characters). The
    answer is well formed, so asking again would bring the same value: it is not retried, and
    the record is quarantined. ``kind`` is a short code, ``field`` the JSON key."""

    def __init__(self, message: str, *, kind: str, field: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.field = field


class BodyRejected(ValueError):
    """Raised when a 2xx body is refused before or while it is decoded: too large, nested
    too deep, not JSON, or not text. ``kind`` is a short code; ``reason`` one line."""

    def __init__(self, reason: str, *, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


class EnvelopeFailure(Exception):
    """Raised by body parsers for a PressOne envelope with ``"success": false`` on a 2xx."""

    def __init__(self, message: str, code: str | None) -> None:
        super().__init__(message)
        self.code = code


class _RedactingFilter(logging.Filter):
    """Defence in depth: masks registered secrets in every record of the providers logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's problem, not ours
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


logger = logging.getLogger("esim_recon.providers")
logger.addFilter(_RedactingFilter())
