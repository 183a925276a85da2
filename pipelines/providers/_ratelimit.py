"""Admission control for one client: bounded concurrency, pacing and a shared pause.

:class:`RequestGate` is entered around every HTTP request of a client:

1. an ``asyncio.Semaphore`` bounds the requests in flight;
2. a shared "not before" instant holds every request back while the provider has told the
   client to slow down (a 429's ``Retry-After``, or ``X-RateLimit-Remaining: 0`` with its
   ``X-RateLimit-Reset``), so concurrent workers do not all run into the same 429;
3. an ``aiolimiter.AsyncLimiter`` paces requests to ``requests_per_minute``. It is configured
   with a capacity of one request, so that no burst can exceed the provider's per-minute quota
   whatever window the provider counts in.

:class:`BatchStream` runs one coroutine per key with a bounded number in flight and yields the
results as they complete; it stops starting new work at a deadline or a request budget.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aiolimiter import AsyncLimiter

__all__ = ["BatchStats", "BatchStream", "PauseBeyondDeadline", "RequestGate", "deadline_in"]

R = TypeVar("R")


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
        self._limiter = AsyncLimiter(1, 60.0 / requests_per_minute) if requests_per_minute else None
        self._max_pause = max_pause
        self._not_before = 0.0

    def pause_for(self, seconds: float) -> None:
        """Hold every request of this client back for ``seconds`` from now (never shortens
        a pause already in place)."""
        if seconds <= 0:
            return
        until = time.monotonic() + min(seconds, self._max_pause)
        self._not_before = max(self._not_before, until)

    async def _honour_pause(self, deadline: float | None) -> None:
        while True:
            now = time.monotonic()
            if now >= self._not_before:
                return
            if deadline is not None and self._not_before > deadline:
                raise PauseBeyondDeadline(self._not_before - now)
            await asyncio.sleep(self._not_before - now)

    @asynccontextmanager
    async def slot(self, *, deadline: float | None = None) -> AsyncIterator[None]:
        """Admit one request. Raises :class:`PauseBeyondDeadline` instead of waiting past
        ``deadline`` (``time.monotonic()`` seconds)."""
        async with self._semaphore:
            await self._honour_pause(deadline)
            if self._limiter is not None:
                await self._limiter.acquire()
                # A pause may have begun while this request waited for its turn.
                await self._honour_pause(deadline)
            yield


@dataclass(slots=True)
class BatchStats:
    """Progress of one :class:`BatchStream`. ``skipped`` lists the keys never started
    because the deadline or the request budget was reached."""

    submitted: int = 0
    started: int = 0
    completed: int = 0
    skipped: list[str] = field(default_factory=list)
    stop_reason: str | None = None


class BatchStream(Generic[R]):
    """Async iterator over ``worker(key, deadline)`` results, at most ``window`` running.

    Keys are de-duplicated (first occurrence wins). An exception from a worker cancels the
    others and propagates; workers are expected to turn per-key failures into results and
    raise only for failures that concern the whole batch.
    """

    def __init__(
        self,
        keys: Iterable[str],
        worker: Callable[[str, float | None], Coroutine[Any, Any, R]],
        *,
        window: int,
        deadline: float | None = None,
        budget_requests: int | None = None,
        requests_used: Callable[[], int] = lambda: 0,
    ) -> None:
        self.stats = BatchStats()
        self._keys = keys
        self._worker = worker
        self._window = max(window, 1)
        self._deadline = deadline
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

    def _blocked(self, in_flight: int) -> str | None:
        if self._deadline is not None and time.monotonic() >= self._deadline:
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
                    not exhausted and self.stats.stop_reason is None and len(tasks) < self._window
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
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    tasks.pop(task)
                    result = task.result()
                    self.stats.completed += 1
                    yield result
            if self.stats.stop_reason is not None:
                self.stats.skipped.extend(pending_keys)
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
