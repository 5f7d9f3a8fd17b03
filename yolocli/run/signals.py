"""Ctrl-C and SIGTERM during a run: raised as exceptions, but only where it is safe.

Python raises a KeyboardInterrupt wherever the main thread happens to be, and that may be
inside the Python half of a lock: `threading.Condition.__enter__` after its lock is taken but
before the ``with`` block that would release it has begun, say. A queue, a `Future` or a
video's frame queue left locked so deadlocks the clean-up that was meant to finish the run's
outputs: Ctrl-C then hangs instead of stopping.

So while a run holds a `Signals`, the first Ctrl-C (or SIGTERM) is only recorded. It is raised
at the next safe point: after the record being written (`Signals.deferred`), or inside one of
the waits below, which look for it every `POLL` seconds instead of blocking for good. A second
one is raised at once, wherever the run is: the way out when a clean-up is itself stuck.
SIGTERM is `Terminated` (exit status 143).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

POLL = 0.1  # seconds between looks at a recorded signal while a safe wait waits


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (outputs finalized) but exiting with status 143."""


_active: Signals | None = None  # the run's Signals, while one is entered


class Signals:
    """Ctrl-C and SIGTERM as exceptions, raised only at safe points (see the module).

    ``at_once``: outside a record, the first signal too is raised where it finds the run (a
    run whose waits are not safe ones: Ray's iterators). Only the main thread can own signal
    handlers: on any other, this does nothing.
    """

    def __init__(self, *, at_once: bool = False) -> None:
        self.at_once = at_once
        self.pending: type[KeyboardInterrupt] | None = None
        self.received = 0
        self.holding = False  # a record is being written: not even a safe wait raises
        self.previous: dict[int, Any] = {}
        self.owner: int | None = None  # the thread whose waits may raise

    def __enter__(self) -> Signals:
        import signal

        global _active
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(signum) is not signal.SIG_IGN:  # nohup: stay deaf to it
                    self.previous[signum] = signal.signal(signum, self._handle)
            self.owner = threading.get_ident()
            _active = self
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        import signal

        global _active
        if _active is self:
            _active = None
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        if exc_type is None and self.pending is not None:
            # Arrived after the last safe point: the work is done, but it was asked to stop.
            kind, self.pending = self.pending, None
            raise kind()

    def _handle(self, signum: int, _frame: Any) -> None:
        import signal

        kind = KeyboardInterrupt if signum == signal.SIGINT else Terminated
        self.received += 1
        if self.received == 1 and (self.holding or not self.at_once):
            self.pending = kind  # raised at the next safe point
            return
        self.pending = None
        raise kind()  # insisting: now

    def check(self) -> None:
        """A safe point: raise the signal recorded, if any (on the owning thread only)."""
        if self.pending is not None and not self.holding and threading.get_ident() == self.owner:
            kind, self.pending = self.pending, None
            raise kind()

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Write a record and its journal line: a signal meanwhile is raised after them."""
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
            self.check()


def check() -> None:
    """A safe point of the run in progress, if there is one (else nothing)."""
    if _active is not None:
        _active.check()


def result(future: Future[T]) -> T:
    """``future.result()``, raising a recorded Ctrl-C or SIGTERM while it waits."""
    while True:
        try:
            return future.result(timeout=POLL)
        except TimeoutError:
            if future.done():  # its own TimeoutError, or done just now
                return future.result()
            check()


def get(inbox: queue.Queue[T]) -> T:
    """``inbox.get()``, raising a recorded Ctrl-C or SIGTERM while it waits."""
    while True:
        try:
            return inbox.get(timeout=POLL)
        except queue.Empty:
            check()


def put(outbox: queue.Queue[T], item: T) -> None:
    """``outbox.put(item)``, raising a recorded Ctrl-C or SIGTERM while it waits."""
    while True:
        try:
            outbox.put(item, timeout=POLL)
            return
        except queue.Full:
            check()
