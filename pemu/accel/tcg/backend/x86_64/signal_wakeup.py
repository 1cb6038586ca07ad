"""Host signals while the main thread runs generated code.

CPython runs a Python signal handler in the main thread, between two bytecodes.  A
guest loop that is chained block to block never returns from the ctypes call into
generated code, so without help the handler (which queues the guest signal and asks
the CPU to exit) would wait until the next syscall or translation miss - forever for
``while (!flag);``.  The C-level handler CPython installs does write a byte to the
``signal.set_wakeup_fd`` descriptor, from any thread, at once: a watcher thread waits
on that pipe and sets ``exit_request`` on the CPU the main thread is running.  The
generated code checks it at every block entry, returns to Python, and the handler runs.
"""

from __future__ import annotations

import os
import signal

from pemu import threads
from pemu.accel.tcg.host_fds import moved_up


class SignalWakeup:
    """One per process: owns the wakeup pipe and its watcher thread."""

    def __init__(self) -> None:
        self._pid = -1  # the process the pipe and thread belong to (fork: start again)
        self._fds: tuple[int, int] | None = None
        self.main_cpu: object | None = None  # the CPU the main thread runs now
        self.enabled = True

    def enter_main(self, cpu: object) -> None:
        """Called by the main thread before it runs ``cpu``'s generated code."""
        self.main_cpu = cpu
        if self._pid != os.getpid() and self.enabled:
            self._start()

    def _start(self) -> None:
        inherited = self._fds if self._fds is not None else ()
        # close-on-exec: an exec'd program starts its own; high: the guest's descriptors
        # are this process's, and Python writes each signal's number into ``w``
        r, w = (moved_up(fd) for fd in os.pipe())
        os.set_blocking(w, False)
        try:
            old = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except ValueError:  # not the main thread after all: nothing to do
            os.close(r)
            os.close(w)
            return
        if old != -1 and old not in inherited:
            # Someone else (an event loop) owns the wakeup fd: leave it to them.
            signal.set_wakeup_fd(old)
            os.close(r)
            os.close(w)
            self.enabled = False
            return
        for fd in inherited:  # the parent's pipe, inherited by fork
            os.close(fd)
        self._fds = (r, w)
        self._pid = os.getpid()
        threads.start_bare(self._watch, r, name="pemu-signal-wakeup")

    def _watch(self, r: int) -> None:
        while True:
            try:
                if not os.read(r, 256):
                    return
            except OSError:
                return
            cpu = self.main_cpu
            if cpu is not None:
                cpu.request_exit()


WAKEUP = SignalWakeup()

__all__ = ["SignalWakeup", "WAKEUP"]
