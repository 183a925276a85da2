"""Retry policy for provider calls, built on tenacity.

Transient failures are normal (provider-apis.md §5): 429, 500/502/503/504, timeouts, dropped
connections and truncated JSON on a 200. The request layer raises a :class:`ProviderError`
with ``retryable=True`` for these; this module decides whether and how long to wait.

Waiting rules:

* A usable ``Retry-After`` (seconds as int or float, or an HTTP date in the future) is honoured
  as given.
* ``Retry-After: 0``, a missing or an unparsable one fall back to exponential backoff with
  jitter, whose smallest value is still ``initial_wait * (1 - jitter) > 0``: never a hot loop.
* Failures (5xx, timeouts, dropped connections, bad bodies) count: a call stops after
  ``max_attempts`` of them or ``max_total_seconds``, optionally shortened by a caller's
  deadline. A backoff wait is capped by what is left of that budget.
* A 429 is the provider saying "slower", not "no": it never counts toward ``max_attempts``,
  and the time spent waiting on it extends ``max_total_seconds``. The call keeps asking, as
  often as the provider allows, until its *patience* runs out: the caller's ``patience`` (the
  run's own time budget) or ``max_rate_limited_seconds`` of 429s in a row. A ``Retry-After``
  that does not fit in the patience left ends the call at once (coming back earlier than the
  provider asked would only earn another 429); the :class:`RateLimitedError` it ends with
  means "not done yet", never "failed".
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from ._errors import BadPayloadError, ProviderError, RateLimitedError
from ._scalars import as_float

__all__ = ["RetryPolicy", "parse_retry_after"]

logger = logging.getLogger("esim_recon.providers")

# A list page gets this many times a sync's attempts and time (see RetryPolicy.for_lists)...
LIST_PATIENCE = 5
# ...and never fewer attempts than this.
MIN_LIST_ATTEMPTS = 20


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

    ``max_attempts`` counts the first try and every failure after it, 429s excepted.
    ``max_total_seconds`` bounds one call from its first attempt to its last, waits included,
    the waits on 429s excepted. Backoff for attempt *n* is
    ``min(max_wait, initial_wait * 2**(n-1))`` reduced by a random share of up to
    ``jitter`` (``0 <= jitter < 1``).
    """

    max_attempts: int = 6
    max_total_seconds: float = 120.0
    initial_wait: float = 0.5
    max_wait: float = 30.0
    jitter: float = 0.5
    # A provider that answers nothing but 429 for this long (no run budget given) is left for
    # the next run rather than waited on forever.
    max_rate_limited_seconds: float = 3600.0
    # Answers refused for their body (not JSON, too deep, too large, a bad shape) are often the
    # same answer again (a proxy's error page, a provider bug): they get a sync's attempts even
    # on a list page, whose walk asks for an unread page again in its later passes anyway.
    max_refused_attempts: int = 6

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.max_total_seconds <= 0:
            raise ValueError("max_total_seconds must be positive")
        if self.initial_wait <= 0 or self.max_wait < self.initial_wait:
            raise ValueError("need 0 < initial_wait <= max_wait")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if self.max_rate_limited_seconds <= 0:
            raise ValueError("max_rate_limited_seconds must be positive")
        if self.max_refused_attempts < 1:
            raise ValueError("max_refused_attempts must be at least 1")

    def for_lists(self) -> RetryPolicy:
        """The patience of a list page: everything of the run depends on the list, which is a
        few dozen requests, so a page gets many more attempts and much more time (with the
        same backoff, growing to ``max_wait``) than one per-order sync."""
        return replace(
            self,
            max_attempts=max(self.max_attempts * LIST_PATIENCE, MIN_LIST_ATTEMPTS),
            max_total_seconds=self.max_total_seconds * LIST_PATIENCE,
        )

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Backoff before attempt ``attempt + 1``; always strictly positive."""
        growth = 2.0 ** max(attempt - 1, 0)
        base = min(self.max_wait, self.initial_wait * growth)
        return base * (1.0 - self.jitter * rng())

    def retrying(
        self,
        *,
        deadline: float | None = None,
        patience: float | None = None,
        describe: Callable[[], str] = lambda: "request",
        on_retry: Callable[[ProviderError, float], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> AsyncRetrying:
        """A tenacity ``AsyncRetrying`` for one call; the last error is re-raised as is.

        ``deadline`` (``time.monotonic()`` seconds) shortens the policy's total budget and
        bounds everything, 429s included; ``patience`` bounds only the waiting on 429s (the
        run's time budget: a failure being retried still gets its usual retries)."""
        budget = _CallBudget(self, deadline, patience)

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
            sleep=sleep,
            reraise=True,
        )


class _CallBudget:
    """Wait and stop decisions for one call: failures against the policy's attempts and time,
    429s against the patience only (see the module docstring)."""

    __slots__ = (
        "_deadline",
        "_failures",
        "_giving_up",
        "_limited_since",
        "_own_deadline",
        "_patience",
        "_policy",
        "_rate_limited",
        "_refused",
    )

    def __init__(self, policy: RetryPolicy, deadline: float | None, patience: float | None) -> None:
        self._policy = policy
        start = time.monotonic()
        self._own_deadline = start + policy.max_total_seconds
        self._deadline = deadline
        self._patience = patience if deadline is None else min(patience or deadline, deadline)
        self._giving_up = False
        self._failures = 0  # attempts that failed other than with a 429
        self._refused = 0  # of which answers refused for their body
        self._rate_limited = 0  # 429s in a row
        self._limited_since: float | None = None

    def remaining(self) -> float:
        """Seconds left for retrying failures."""
        end = self._own_deadline
        if self._deadline is not None:
            end = min(end, self._deadline)
        return end - time.monotonic()

    def _patience_left(self, now: float) -> float:
        since = self._limited_since if self._limited_since is not None else now
        end = since + self._policy.max_rate_limited_seconds
        if self._patience is not None:
            end = min(end, self._patience)
        return end - now

    def wait(self, state: RetryCallState) -> float:
        self._giving_up = False
        exc = _exception(state)
        hint = getattr(exc, "retry_after", None)
        usable = float(hint) if isinstance(hint, int | float) and hint > 0 else None
        if isinstance(exc, RateLimitedError):
            now = time.monotonic()
            if self._limited_since is None:
                self._limited_since = now
            self._rate_limited += 1
            left = self._patience_left(now)
            pause = usable if usable is not None else self._policy.backoff(self._rate_limited)
            if pause >= left:
                self._giving_up = True
                return 0.0
            # Waiting on the provider's limit is not time spent failing.
            self._own_deadline += pause
            return pause
        self._failures += 1
        if isinstance(exc, BadPayloadError):
            self._refused += 1
        self._rate_limited = 0
        self._limited_since = None
        remaining = self.remaining()
        if usable is not None:
            if usable > remaining:
                self._giving_up = True
                return 0.0
            return usable
        return max(min(self._policy.backoff(self._failures), remaining), 0.0)

    def stop(self, state: RetryCallState) -> bool:
        if self._giving_up:
            return True
        if isinstance(_exception(state), RateLimitedError):
            return False  # wait() already weighed the 429 against the patience
        if self._failures >= self._policy.max_attempts:
            return True
        if self._refused >= self._policy.max_refused_attempts:
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
