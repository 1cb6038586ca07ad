"""Starting pemu's helper threads so that process signals reach the main thread.

The kernel hands a process-directed signal (SIGTERM from ``kill``, SIGHUP when the
terminal goes away, SIGINT from Ctrl-C) to any thread that does not block it.
CPython's C handler only sets a flag; the Python handler then runs in the main
thread at its next bytecode.  If the signal lands on an I/O thread while the main
thread sleeps in a lock or event wait, nothing wakes the main thread, and pemu
neither restores the terminal nor exits until that wait ends on its own.

So every helper thread starts with those signals blocked: it inherits the mask of
the thread that starts it, which blocks them for just the moment of ``start()``
(a signal arriving then stays pending and is delivered when the mask is restored).
"""

from __future__ import annotations

import signal
import threading

MAIN_THREAD_SIGNALS = frozenset({signal.SIGTERM, signal.SIGHUP, signal.SIGINT,
                                 signal.SIGQUIT})
# -name ...,debug-threads=on: give each helper thread its name in the host (top -H,
# gdb, /proc/PID/task/TID/comm), as QEMU does
name_host_threads = False


def start(thread: threading.Thread) -> threading.Thread:
    """Start ``thread`` with the termination signals blocked in it; returns it."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, MAIN_THREAD_SIGNALS)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    if name_host_threads:
        _name_in_host(thread)
    return thread


def _name_in_host(thread: threading.Thread) -> None:
    try:
        with open(f"/proc/self/task/{thread.native_id}/comm", "w") as comm:
            comm.write(thread.name[:15])  # the kernel keeps 15 bytes
    except OSError:
        pass  # the thread has already ended, or no /proc: only the name is lost


def start_daemon(target, *args, name: str) -> threading.Thread:
    """A daemon thread running ``target(*args)``, started as :func:`start` does."""
    return start(threading.Thread(target=target, args=args, name=name, daemon=True))
