"""Ctrl-C and SIGTERM during a run (yolocli.run.signals): raised only where it is safe."""

from __future__ import annotations

import queue
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from yolocli.run import signals
from yolocli.run.signals import Signals, Terminated

pytestmark = pytest.mark.usefixtures("python_signals")


class Gate:
    """A lock whose Python ``__enter__`` is interrupted just after taking it, as Ctrl-C can
    interrupt `threading.Condition.__enter__` (inside every queue and `Future`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __enter__(self) -> Gate:
        self.lock.acquire()
        signal.raise_signal(signal.SIGINT)  # the signal arrives here, lock held
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def test_python_alone_leaves_the_lock_taken() -> None:
    """The hazard itself, with Python's own Ctrl-C: the lock is never released."""
    gate = Gate()
    with pytest.raises(KeyboardInterrupt), gate:
        pass
    assert gate.lock.locked()


def test_a_run_raises_ctrl_c_at_the_next_safe_point_with_the_lock_released() -> None:
    gate = Gate()
    with Signals():
        with pytest.raises(KeyboardInterrupt), gate:
            signals.check()
        assert not gate.lock.locked()


def test_a_second_signal_is_raised_at_once() -> None:
    with Signals() as run:
        signal.raise_signal(signal.SIGINT)
        assert run.pending is KeyboardInterrupt
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert run.pending is None


def test_sigterm_is_terminated() -> None:
    with Signals():
        signal.raise_signal(signal.SIGTERM)
        with pytest.raises(Terminated):
            signals.check()


def _write_record(run: Signals, written: list[str]) -> None:
    with run.deferred():
        signal.raise_signal(signal.SIGINT)
        signals.check()  # not inside a record
        written.append("record")
        written.append("journal line")


def test_a_record_is_finished_before_the_signal_is_raised() -> None:
    written: list[str] = []
    with Signals() as run, pytest.raises(KeyboardInterrupt):
        _write_record(run, written)
    assert written == ["record", "journal line"]


def test_one_that_arrives_after_the_last_safe_point_ends_the_run_as_interrupted() -> None:
    with pytest.raises(KeyboardInterrupt), Signals():
        signal.raise_signal(signal.SIGINT)


def test_at_once_raises_the_first_outside_a_record() -> None:
    with Signals(at_once=True) as run:
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)  # a second: at once too
    written: list[str] = []
    with Signals(at_once=True) as run, pytest.raises(KeyboardInterrupt):
        _write_record(run, written)
    assert written == ["record", "journal line"]  # a record is still finished first


def test_handlers_are_put_back() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with Signals():
        assert signal.getsignal(signal.SIGINT) is not before[0]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    signals.check()  # no run: nothing to raise


def test_an_ignored_signal_stays_ignored() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # nohup, or a background job
    with Signals() as run:
        signal.raise_signal(signal.SIGINT)
        assert run.pending is None
        signals.check()


def test_another_thread_neither_installs_nor_raises() -> None:
    seen: list[Any] = []

    def other() -> None:
        with Signals() as run:
            seen.append(run.previous)
            run.pending = KeyboardInterrupt
            run.check()  # not its thread: nothing
            seen.append("checked")
            run.pending = None

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen == [{}, "checked"]


def _interrupt_later(delay: float) -> threading.Timer:
    timer = threading.Timer(delay, signal.raise_signal, (signal.SIGINT,))
    timer.start()
    return timer


def test_a_waiting_get_sees_the_signal_and_leaves_the_queue_usable() -> None:
    inbox: queue.Queue[int] = queue.Queue()
    with Signals():
        _interrupt_later(0.05)
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            signals.get(inbox)
        assert time.monotonic() - start < 2  # seen within a few looks, not never
    inbox.put_nowait(1)
    assert inbox.get_nowait() == 1


def test_a_waiting_put_sees_the_signal() -> None:
    outbox: queue.Queue[int] = queue.Queue(maxsize=1)
    outbox.put(0)
    with Signals():
        _interrupt_later(0.05)
        with pytest.raises(KeyboardInterrupt):
            signals.put(outbox, 1)
    assert outbox.get_nowait() == 0


def test_waits_return_what_they_wait_for() -> None:
    inbox: queue.Queue[int] = queue.Queue()
    threading.Timer(0.25, inbox.put, (7,)).start()  # after a few looks
    with ThreadPoolExecutor(1) as pool, Signals():
        assert signals.get(inbox) == 7
        assert signals.result(pool.submit(time.sleep, 0.25)) is None
        signals.put(inbox, 8)
    assert inbox.get_nowait() == 8


def test_a_waiting_result_sees_the_signal() -> None:
    future: Future[int] = Future()
    with Signals():
        _interrupt_later(0.05)
        with pytest.raises(KeyboardInterrupt):
            signals.result(future)
    future.set_result(1)  # its lock was left free


def test_a_task_that_raises_timeout_error_raises_it() -> None:
    def slow() -> None:
        raise TimeoutError("the task's own")

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(slow)
        with pytest.raises(TimeoutError, match="the task's own"):
            signals.result(future)
