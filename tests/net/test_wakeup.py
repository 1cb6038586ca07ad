"""The backend threads' wake-up pipe: a write only while the thread sleeps (or is about
to), so that a guest sending many frames costs no system call per frame."""

from __future__ import annotations

import select

from pemu.net.wakeup import Wakeup


def readable(w: Wakeup) -> bool:
    return bool(select.select([w.fd], [], [], 0)[0])


def test_wake_writes_only_while_the_thread_is_asleep():
    w = Wakeup()
    try:
        for _ in range(100):  # the thread is running: it will see the work itself
            w.wake()
        assert w.writes == 0 and not readable(w)
        w.going_to_sleep()
        w.wake()
        assert w.writes == 1 and readable(w)
        w.woke(select.POLLIN)  # drains the pipe and marks the thread awake
        assert not readable(w)
        w.wake()
        assert w.writes == 1
    finally:
        w.close()


def test_forced_wake_always_writes():
    w = Wakeup()
    try:
        w.wake(force=True)
        assert readable(w)
    finally:
        w.close()
