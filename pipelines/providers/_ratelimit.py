"""Admission control for one client: bounded concurrency, pacing and a shared pause.

:class:`RequestGate` is entered around every HTTP request of a client:

1. an ``asyncio.Semaphore`` bounds the requests in flight;
2. a shared "not before" instant holds every request back while the provider has told the
   client to slow down (a 429's ``Retry-After``, or ``X-RateLimit-Remaining: 0`` with its
   ``X-RateLimit-Reset``), so concurrent workers do not all run into the same 429;
3. a pacer spaces request starts ``1 / rate`` apart on a fixed schedule: each request takes the
   next free slot (the previous slot plus one interval, or now when the client was idle), so
   late wake-ups do not accumulate and a busy client spends its whole budget. There is no
   burst: no window of any length sees more than its share of ``requests_per_minute``,
   whatever window the provider counts in.

The pacer learns what the provider allows and keeps it: a 429 (for a request sent at the
current pace: those already in flight were sent faster and say nothing new) slows the pace by
``SLOWDOWN``; an unpaced client starts pacing at half the rate its recent successes came at.
The slower pace becomes the client's *learned* pace, which only successes move, and slowly
(``PROBE`` per success): the client probes back towards the configured rate, a provider that
still limits says so with another 429, and the client settles just below the provider's rate
for the rest of its life instead of bouncing off it. An ``X-RateLimit-Remaining`` that is low
but not zero spreads the remaining requests evenly until ``X-RateLimit-Reset``.

:class:`BatchStream` runs one coroutine per key with a bounded number in flight and yields the
results as they complete; it stops starting new work at a deadline or a request budget.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = [
    "BatchStats",
    "BatchStream",
    "Parking",
    "PauseBeyondDeadline",
    "RequestGate",
    "deadline_in",
]

R = TypeVar("R")

# A 429 stretches the pacing interval by this factor...
SLOWDOWN = 1.25
# ...but never below this share of the configured rate (unpaced: of the first pace set, and
# never slower than UNPACED_SLOWEST).
MIN_RATE_SHARE = 0.1
UNPACED_SLOWEST = 2.0
# An unpaced client's first 429 sets a pace this many times slower than its recent successes.
FIRST_SLOWDOWN = 2.0
# Each success moves the learned pace this much back towards the configured one.
PROBE = 0.999
# The successes an unpaced client's first pace is measured on: at most this many, this recent.
OBSERVED_SUCCESSES = 32
OBSERVED_SECONDS = 2.0
# Each success shrinks a stretched interval by this factor, back to the configured one.
RECOVERY = 0.99
# Shorter holds are the normal rhythm of pacing, not worth a word to anyone watching.
WAIT_WORTH_TELLING = 1.0


def deadline_in(seconds: float) -> float:
    """A ``deadline`` argument (``time.monotonic()`` based) ``seconds`` from now."""
    return time.monotonic() + seconds


class PauseBeyondDeadline(Exception):
    """The client-wide pause lasts longer than the caller's deadline allows."""

    def __init__(self, resume_in: float) -> None:
        super().__init__(f"client paused for another {resume_in:.1f}s")
        self.resume_in = resume_in


class RequestGate:
    """Concurrency bound, pacing and shared pause for all requests of one client.

    ``requests_per_minute=None`` leaves requests unpaced (only a pause holds them back).
    ``max_pause`` caps a single pause, protecting against a bogus far-future reset header.
    """

    def __init__(
        self,
        *,
        max_concurrency: int = 8,
        requests_per_minute: float | None = None,
        max_pause: float = 900.0,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if requests_per_minute is not None and requests_per_minute <= 0:
            raise ValueError("requests_per_minute must be positive or None")
        self.max_concurrency = max_concurrency
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._base_interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._interval = self._base_interval
        self._next_slot = 0.0
        # While the provider says few requests remain: a wider interval, until a moment.
        self._spread_interval = 0.0
        self._spread_until = 0.0
        self._max_pause = max_pause
        self._not_before = 0.0
        # The slowest pace a 429 may bring (unpaced: set by the first one).
        base = self._base_interval
        self._slowest = base / MIN_RATE_SHARE if base else UNPACED_SLOWEST
        # When the pace last slowed for a 429, and when recent requests succeeded.
        self._slowed_at = float("-inf")
        self._successes: deque[float] = deque(maxlen=OBSERVED_SUCCESSES)
        self.slowdowns = 0
        # Called with the seconds a request is about to be held back by pacing or a pause
        # (only waits of at least WAIT_WORTH_TELLING), for whoever shows progress.
        self.on_wait: Callable[[float], None] | None = None

    def _held_back(self, seconds: float) -> None:
        if self.on_wait is not None and seconds >= WAIT_WORTH_TELLING:
            self.on_wait(seconds)

    @property
    def interval(self) -> float:
        """Seconds between request starts now (0.0: unpaced)."""
        if time.monotonic() < self._spread_until:
            return max(self._interval, self._spread_interval)
        return self._interval

    @property
    def requests_per_minute(self) -> float | None:
        """The pace in force, in requests per minute (``None``: unpaced)."""
        interval = self.interval
        return 60.0 / interval if interval else None

    @property
    def paused_for(self) -> float:
        """Seconds the shared pause still lasts (0.0: none)."""
        return max(self._not_before - time.monotonic(), 0.0)

    def pause_for(self, seconds: float) -> None:
        """Hold every request of this client back for ``seconds`` from now (never shortens
        a pause already in place)."""
        if seconds <= 0:
            return
        until = time.monotonic() + min(seconds, self._max_pause)
        self._not_before = max(self._not_before, until)

    def rate_limited(self, sent_at: float | None = None) -> bool:
        """The provider answered 429 to a request sent at ``sent_at`` (``time.monotonic()``;
        ``None``: now): pace more slowly, unless the request left before the last slowdown.
        Returns whether the pace changed."""
        now = time.monotonic()
        if sent_at is not None and sent_at < self._slowed_at:
            return False
        if self._interval:
            interval = self._interval * SLOWDOWN
        else:
            interval = self._observed_interval(now) * FIRST_SLOWDOWN
            if not self._base_interval:
                # The first pace stands in for the configured rate an unpaced client lacks.
                self._slowest = min(interval / MIN_RATE_SHARE, UNPACED_SLOWEST)
        self._interval = min(interval, self._slowest)
        self._slowed_at = now
        self.slowdowns += 1
        return True

    def _observed_interval(self, now: float) -> float:
        """Seconds between recent successes (a 50 ms fallback when there were too few)."""
        recent = [moment for moment in self._successes if moment >= now - OBSERVED_SECONDS]
        if len(recent) < 2 or recent[-1] <= recent[0]:
            return 0.05
        return (recent[-1] - recent[0]) / (len(recent) - 1)

    def succeeded(self) -> None:
        """A request got through: probe, slowly, towards the configured rate."""
        self._successes.append(time.monotonic())
        if self._interval > self._base_interval:
            self._interval = max(self._interval * PROBE, self._base_interval)

    def remaining(self, remaining: int, reset_in: float | None) -> None:
        """The provider says ``remaining`` requests are left until ``reset_in`` seconds from
        now: spread them out when fewer are left than can be in flight at once (0 pauses
        instead, see :meth:`pause_for`)."""
        if remaining <= 0 or not reset_in or reset_in <= 0 or remaining > self.max_concurrency:
            return
        reset_in = min(reset_in, self._max_pause)
        self._spread_interval = reset_in / remaining
        self._spread_until = time.monotonic() + reset_in

    async def _honour_pause(self, deadline: float | None) -> None:
        while True:
            now = time.monotonic()
            if now >= self._not_before:
                return
            if deadline is not None and self._not_before > deadline:
                raise PauseBeyondDeadline(self._not_before - now)
            self._held_back(self._not_before - now)
            await asyncio.sleep(self._not_before - now)

    async def _pace(self, deadline: float | None) -> None:
        """Wait for this request's slot; a pause that begins meanwhile moves it."""
        while True:
            await self._honour_pause(deadline)
            interval = self.interval
            if not interval:
                return
            now = time.monotonic()
            slot = max(self._next_slot, now, self._not_before)
            self._next_slot = slot + interval
            if slot > now:
                self._held_back(slot - now)
                await asyncio.sleep(slot - now)
            if time.monotonic() >= self._not_before:
                return

    @asynccontextmanager
    async def slot(self, *, deadline: float | None = None) -> AsyncIterator[None]:
        """Admit one request. Raises :class:`PauseBeyondDeadline` instead of waiting past
        ``deadline`` (``time.monotonic()`` seconds)."""
        async with self._semaphore:
            await self._pace(deadline)
            yield


class Parking:
    """Calls sleeping a long wait (a per-key quota's ``Retry-After`` of minutes) are *parked*:
    a :class:`BatchStream` does not count them against its window, so one key's quota does not
    hold back the keys behind it. The gate's semaphore still bounds the requests in flight."""

    def __init__(self, after_seconds: float) -> None:
        self.after_seconds = after_seconds
        self.count = 0
        self.changed = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep``, parked when longer than ``after_seconds``."""
        if seconds <= self.after_seconds:
            await asyncio.sleep(seconds)
            return
        self.count += 1
        self.changed.set()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.count -= 1


@dataclass(slots=True)
class BatchStats:
    """Progress of one :class:`BatchStream`. ``skipped`` lists the keys never started
    because the deadline or the request budget was reached; ``deferred`` the keys started but
    still rate limited when the time ran out (not done, not failed: left for the next run)."""

    submitted: int = 0
    started: int = 0
    completed: int = 0
    skipped: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    stop_reason: str | None = None


class BatchStream(Generic[R]):
    """Async iterator over ``worker(key, deadline)`` results, at most ``window`` running.

    No key starts once ``deadline`` or ``start_by`` (``time.monotonic()`` seconds) has passed;
    ``deadline`` also bounds the workers' own retries, ``start_by`` leaves the calls in flight
    to finish normally (a graceful stop).

    Keys are de-duplicated (first occurrence wins). A worker that raises ``deferrable`` (the
    provider still rate limits it when the time is up) yields nothing: its key is listed in
    ``stats.deferred``. Any other exception from a worker cancels the others and propagates;
    workers are expected to turn per-key failures into results and raise only for failures
    that concern the whole batch.
    """

    def __init__(
        self,
        keys: Iterable[str],
        worker: Callable[[str, float | None], Coroutine[Any, Any, R]],
        *,
        window: int,
        deadline: float | None = None,
        start_by: float | None = None,
        budget_requests: int | None = None,
        requests_used: Callable[[], int] = lambda: 0,
        deferrable: type[BaseException] | tuple[type[BaseException], ...] = (),
        parking: Parking | None = None,
    ) -> None:
        self.stats = BatchStats()
        self._deferrable = deferrable
        self._parking = parking
        self._keys = keys
        self._worker = worker
        self._window = max(window, 1)
        self._deadline = deadline
        self._start_by = start_by
        self._budget = budget_requests
        self._used_at_start = requests_used()
        self._requests_used = requests_used
        self._gen = self._run()

    def __aiter__(self) -> BatchStream[R]:
        return self

    async def __anext__(self) -> R:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        await self._gen.aclose()

    def _parked(self) -> int:
        return self._parking.count if self._parking is not None else 0

    async def _wait(self, tasks: dict[asyncio.Task[R], str]) -> set[asyncio.Task[R]]:
        """The tasks done once one is, or as soon as a call parks (a window slot frees)."""
        if self._parking is None:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            return done
        self._parking.changed.clear()
        parked = asyncio.ensure_future(self._parking.changed.wait())
        try:
            await asyncio.wait([*tasks, parked], return_when=asyncio.FIRST_COMPLETED)
        finally:
            parked.cancel()
        return {task for task in tasks if task.done()}

    def _blocked(self, in_flight: int) -> str | None:
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return "deadline reached"
        if self._start_by is not None and time.monotonic() >= self._start_by:
            return "deadline reached"
        if self._budget is not None:
            used = self._requests_used() - self._used_at_start
            if used + in_flight >= self._budget:
                return "request budget exhausted"
        return None

    async def _run(self) -> AsyncGenerator[R, None]:
        seen: set[str] = set()

        def unique_keys() -> Iterable[str]:
            for key in self._keys:
                if key not in seen:
                    seen.add(key)
                    self.stats.submitted += 1
                    yield key

        pending_keys = iter(unique_keys())
        tasks: dict[asyncio.Task[R], str] = {}
        exhausted = False
        try:
            while True:
                while (
                    not exhausted
                    and self.stats.stop_reason is None
                    and len(tasks) < self._window + self._parked()
                ):
                    reason = self._blocked(len(tasks))
                    if reason is not None:
                        # With work in flight, a budget may free up as those calls finish
                        # without retries; a passed deadline never does.
                        if not tasks or reason == "deadline reached":
                            self.stats.stop_reason = reason
                        break
                    key = next(pending_keys, None)
                    if key is None:
                        exhausted = True
                        break
                    task = asyncio.create_task(self._worker(key, self._deadline))
                    tasks[task] = key
                    self.stats.started += 1
                if not tasks:
                    break
                done = await self._wait(tasks)
                for task in done:
                    key = tasks.pop(task)
                    try:
                        result = task.result()
                    except self._deferrable:
                        self.stats.deferred.append(key)
                        continue
                    self.stats.completed += 1
                    yield result
            if self.stats.stop_reason is not None:
                self.stats.skipped.extend(pending_keys)
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
