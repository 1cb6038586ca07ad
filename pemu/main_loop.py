"""The I/O thread: one selector loop that drives every chardev, socket and timer.

Device models run on the vCPU thread(s); host I/O (terminal input, sockets, pty
masters) arrives here.  Callbacks registered with ``add_reader`` run on the I/O
thread, so a device that receives bytes must take its own lock.  Other threads hand
work to the loop with ``call_soon``, which is the only thread-safe entry point
besides ``add_reader``/``remove_reader``/``add_timer`` (those wake the loop up too).
"""

from __future__ import annotations

import heapq
import itertools
import os
import selectors
import sys
import threading
import time
import traceback
from collections.abc import Callable

from pemu import threads


class Timer:
    """A one-shot timer; ``cancel`` is safe from any thread."""

    def __init__(self, deadline: float, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class MainLoop:
    """A selector loop in a daemon thread.  Start it once with ``start``."""

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._lock = threading.RLock()
        self._pending: list[Callable[[], None]] = []
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        # A self-pipe wakes select() when another thread changes what we wait for.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, self._drain_wakeup)
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- registration (any thread) ----------------------------------------------
    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback()`` on the I/O thread whenever ``fd`` is readable."""
        with self._lock:
            if fd in self._sel.get_map():
                # Possibly a stale entry for a closed fd whose number was reused.
                try:
                    self._sel.unregister(fd)
                except (KeyError, ValueError, OSError):
                    pass
            self._sel.register(fd, selectors.EVENT_READ, callback)
        self._wakeup()

    def remove_reader(self, fd: int) -> None:
        with self._lock:
            try:
                self._sel.unregister(fd)
            except (KeyError, ValueError):
                pass
        self._wakeup()

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback()`` on the I/O thread as soon as possible."""
        with self._lock:
            self._pending.append(callback)
        self._wakeup()

    def add_timer(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback()`` on the I/O thread after ``delay`` seconds."""
        timer = Timer(time.monotonic() + max(0.0, delay), callback)
        with self._lock:
            heapq.heappush(self._timers, (timer.deadline, next(self._seq), timer))
        self._wakeup()
        return timer

    def _wakeup(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # pipe full: a wakeup is already pending

    def _drain_wakeup(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    # -- running -----------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threads.start_daemon(self._run, name="pemu-io")

    def stop(self) -> None:
        self._stopping = True
        self._wakeup()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run_once(self, timeout: float | None = 0.0) -> None:
        """One iteration: fire due timers, run pending calls, poll fds."""
        now = time.monotonic()
        due: list[Timer] = []
        with self._lock:
            while self._timers and self._timers[0][0] <= now:
                due.append(heapq.heappop(self._timers)[2])
            pending, self._pending = self._pending, []
            if self._timers:
                until_timer = max(0.0, self._timers[0][0] - now)
                timeout = until_timer if timeout is None else min(timeout, until_timer)
        for timer in due:
            if not timer.cancelled:
                self._guarded(timer.callback)
        for cb in pending:
            self._guarded(cb)
        if pending or due:
            timeout = 0.0
        try:
            events = self._sel.select(timeout)
        except (OSError, ValueError):
            # A callback closed an fd without removing it; drop the dead ones.
            self._prune_closed()
            return
        for key, _ in events:
            self._guarded(key.data)

    def _prune_closed(self) -> None:
        with self._lock:
            for key in list(self._sel.get_map().values()):
                try:
                    os.fstat(key.fd)
                except OSError:
                    self._sel.unregister(key.fd)

    @staticmethod
    def _guarded(cb: Callable[[], None]) -> None:
        # One broken callback must not kill the I/O thread for every other chardev.
        try:
            cb()
        except Exception:  # noqa: BLE001
            print("pemu: error in I/O callback:", file=sys.stderr)
            traceback.print_exc()

    def _run(self) -> None:
        while not self._stopping:
            self.run_once(timeout=None)
        self._stopping = False


_default: MainLoop | None = None
_default_lock = threading.Lock()


def get_main_loop() -> MainLoop:
    """The process-wide I/O loop, started on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = MainLoop()
            _default.start()
        return _default
