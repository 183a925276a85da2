"""Progress of long work inside a run (pages listed, syncs done), for whoever is watching.

Ingestion assets report through `track(...)`; nothing listens unless a front end installs a
`ProgressListener` with `listening(...)` around the run (the CLI does, when stderr is a
terminal). Under the Dagster daemon nobody listens and every call is a cheap no-op. Provider
clients never see this module: the assets count what the clients hand back.

`waiting(kind, message)` tells whoever is `hearing_waits(...)` that the run is held back (the
run lock, the DuckDB file's lock, a provider's rate limit), once per kind: the CLI prints it
whether or not stderr is a terminal, since a silent wait looks like a hang.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import count
from typing import Protocol, TypeVar

T = TypeVar("T")
logger = logging.getLogger("esim_recon.progress")


class ProgressListener(Protocol):
    """Receives the progress of every tracked task of a run."""

    def started(self, task: Task) -> None: ...

    def advanced(self, task: Task) -> None: ...

    def finished(self, task: Task) -> None: ...


@dataclass
class Task:
    """One piece of long work: `done` of `total` `unit` (total None while unknown)."""

    id: int
    name: str
    unit: str
    total: int | None = None
    done: int = 0
    items: int = 0  # records carried by the units so far (rows of the pages listed)
    _listener: ProgressListener | None = field(default=None, repr=False)

    def advance(self, units: int = 1, *, items: int = 0) -> None:
        self.done += units
        self.items += items
        self._notify("advanced")

    def step(self, value: T, *, items: int = 0) -> T:
        """Count one unit and hand `value` on (for use inside a comprehension)."""
        self.advance(1, items=items)
        return value

    def _notify(self, event: str) -> None:
        """Tell the listener; a display that fails is dropped, the work goes on."""
        if self._listener is None:
            return
        try:
            getattr(self._listener, event)(self)
        except Exception:
            logger.warning("progress display failed; continuing without it", exc_info=True)
            self._listener = None


_lock = threading.Lock()
_listener: ProgressListener | None = None
_ids = count(1)


@contextmanager
def listening(listener: ProgressListener) -> Iterator[ProgressListener]:
    """Send the progress of tasks started inside the block to `listener`."""
    global _listener
    with _lock:
        previous, _listener = _listener, listener
    try:
        yield listener
    finally:
        with _lock:
            _listener = previous


@contextmanager
def track(name: str, *, unit: str, total: int | None = None) -> Iterator[Task]:
    """A task for the current listener, if any; finished when the block ends."""
    with _lock:
        listener = _listener
    task = Task(id=next(_ids), name=name, unit=unit, total=total, _listener=listener)
    task._notify("started")
    try:
        yield task
    finally:
        task._notify("finished")


# Waits a person should hear about: a run held back by a lock or a rate limit looks hung
# otherwise. Each kind is told once per listening block, with what the run waits for.
_wait_lock = threading.Lock()
_wait_listener: Callable[[str], None] | None = None
_waits_told: set[str] = set()


@contextmanager
def hearing_waits(listener: Callable[[str], None]) -> Iterator[None]:
    """Send `waiting(...)` messages raised inside the block to `listener` (each kind once)."""
    global _wait_listener
    with _wait_lock:
        previous, _wait_listener = _wait_listener, listener
        told = set(_waits_told)
        _waits_told.clear()
    try:
        yield
    finally:
        with _wait_lock:
            _wait_listener = previous
            _waits_told.clear()
            _waits_told.update(told)


def waiting(kind: str, message: str) -> None:
    """Say once per `kind` (e.g. `run-lock`, `esimtrade-rate`) that work waits, and for what."""
    with _wait_lock:
        listener = _wait_listener
        if listener is None or kind in _waits_told:
            return
        _waits_told.add(kind)
    try:
        listener(message)
    except Exception:
        logger.warning("wait notice failed; continuing without it", exc_info=True)
