"""Retry policy for provider calls, built on tenacity.

Transient failures are normal (provider-apis.md §5): 429, 500/502/503/504, timeouts, dropped
connections and truncated JSON on a 200. The request layer raises a :class:`ProviderError`
with ``retryable=True`` for these; this module decides whether and how long to wait.

Waiting rules:

* A usable ``Retry-After`` (seconds as int or float, or an HTTP date in the future) is honoured
  as given.
* ``Retry-After: 0``, a missing or an unparsable one fall back to exponential backoff with
  jitter, whose smallest value is still ``initial_wait * (1 - jitter) > 0``: never a hot loop.
* Every call has a total budget (``max_total_seconds``, optionally shortened by a caller's
  deadline). A backoff wait is capped by what is left of it; a ``Retry-After`` that does not
  fit in what is left stops the retries at once, since coming back earlier than the provider
  asked would only earn another 429.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from ._errors import ProviderError
from ._scalars import as_float

__all__ = ["RetryPolicy", "parse_retry_after"]

logger = logging.getLogger("esim_recon.providers")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header value.

    Returns ``None`` when the header is missing or unparsable, ``0.0`` for ``0`` or a date in
    the past, otherwise the (non-negative) number of seconds.
    """
    if value is None or not value.strip():
        return None
    seconds = as_float(value)
    if seconds is not None:
        return max(seconds, 0.0)
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    reference = now or datetime.now(UTC)
    return max((when - reference).total_seconds(), 0.0)


def parse_rate_limit_reset(value: str | None) -> float | None:
    """Seconds until an ``X-RateLimit-Reset`` value passes.

    Providers send either an epoch timestamp or a number of seconds; values that look like an
    epoch (after 2001) are read as one. Anything else is read like a ``Retry-After``.
    """
    number = as_float(value)
    if number is None:
        return parse_retry_after(value)
    if number > 1_000_000_000:
        return max(number - time.time(), 0.0)
    return max(number, 0.0)


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, ProviderError) and exc.retryable


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How one client retries transient failures.

    ``max_attempts`` counts the first try. ``max_total_seconds`` bounds one call from its first
    attempt to its last, waits included. Backoff for attempt *n* is
    ``min(max_wait, initial_wait * 2**(n-1))`` reduced by a random share of up to
    ``jitter`` (``0 <= jitter < 1``).
    """

    max_attempts: int = 6
    max_total_seconds: float = 120.0
    initial_wait: float = 0.5
    max_wait: float = 30.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.max_total_seconds <= 0:
            raise ValueError("max_total_seconds must be positive")
        if self.initial_wait <= 0 or self.max_wait < self.initial_wait:
            raise ValueError("need 0 < initial_wait <= max_wait")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Backoff before attempt ``attempt + 1``; always strictly positive."""
        growth = 2.0 ** max(attempt - 1, 0)
        base = min(self.max_wait, self.initial_wait * growth)
        return base * (1.0 - self.jitter * rng())

    def retrying(
        self,
        *,
        deadline: float | None = None,
        describe: Callable[[], str] = lambda: "request",
        on_retry: Callable[[ProviderError, float], None] | None = None,
    ) -> AsyncRetrying:
        """A tenacity ``AsyncRetrying`` for one call. ``deadline`` (``time.monotonic()``
        seconds) shortens the policy's total budget; the last error is re-raised as is."""
        budget = _CallBudget(self, deadline)

        def before_sleep(state: RetryCallState) -> None:
            exc = _exception(state)
            if exc is None:
                return
            logger.info(
                "%s failed on attempt %d (%s); retrying in %.3fs",
                describe(),
                state.attempt_number,
                _reason(exc),
                state.upcoming_sleep,
            )
            if on_retry is not None:
                on_retry(exc, state.upcoming_sleep)

        return AsyncRetrying(
            stop=budget.stop,
            wait=budget.wait,
            retry=retry_if_exception(_is_retryable),
            before_sleep=before_sleep,
            sleep=asyncio.sleep,
            reraise=True,
        )


class _CallBudget:
    """Wait and stop decisions for one call, sharing its start time and deadline."""

    __slots__ = ("_deadline", "_giving_up", "_policy", "_start")

    def __init__(self, policy: RetryPolicy, deadline: float | None) -> None:
        self._policy = policy
        self._start = time.monotonic()
        own = self._start + policy.max_total_seconds
        self._deadline = own if deadline is None else min(own, deadline)
        self._giving_up = False

    def remaining(self) -> float:
        return self._deadline - time.monotonic()

    def wait(self, state: RetryCallState) -> float:
        self._giving_up = False
        remaining = self.remaining()
        exc = _exception(state)
        hint = getattr(exc, "retry_after", None)
        if isinstance(hint, int | float) and hint > 0:
            if hint > remaining:
                self._giving_up = True
                return 0.0
            return float(hint)
        return max(min(self._policy.backoff(state.attempt_number), remaining), 0.0)

    def stop(self, state: RetryCallState) -> bool:
        if self._giving_up or state.attempt_number >= self._policy.max_attempts:
            return True
        # Stop when nothing of the budget would be left once the wait is over.
        return self.remaining() - state.upcoming_sleep <= 0


def _exception(state: RetryCallState) -> ProviderError | None:
    if state.outcome is None or not state.outcome.failed:
        return None
    exc = state.outcome.exception()
    return exc if isinstance(exc, ProviderError) else None


def _reason(exc: ProviderError) -> str:
    if exc.status_code is not None:
        return f"HTTP {exc.status_code}"
    if exc.__cause__ is not None:
        return type(exc.__cause__).__name__
    return type(exc).__name__
