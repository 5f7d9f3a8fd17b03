"""Ctrl-C and SIGTERM during a run: raised as exceptions, but never inside a record.

Whoever writes records (the command line, a library caller with its own loop) wraps each
record and its journal line in `Signals.deferred`, so that an interruption finishes the record
it arrived in and only then stops the run; SIGTERM is `Terminated` (exit status 143).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (outputs finalized) but exiting with status 143."""


class Signals:
    """Ctrl-C and SIGTERM as exceptions, held back while a record is being written.

    A record and its journal line are written whole or not at all; a signal that arrives in
    between is raised right after them. Only the main thread can own signal handlers: on any
    other, this does nothing.
    """

    def __init__(self) -> None:
        self.pending: type[KeyboardInterrupt] | None = None
        self.holding = False
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> Signals:
        import signal

        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(signum) is not signal.SIG_IGN:  # nohup: stay deaf to it
                    self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: Any) -> None:
        import signal

        kind = KeyboardInterrupt if signum == signal.SIGINT else Terminated
        if self.holding and self.pending is None:
            self.pending = kind  # the first one waits for the record; a second one does not
            return
        raise kind()

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
            if self.pending is not None:
                kind, self.pending = self.pending, None
                raise kind()
