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

import _thread
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
    _name_native(thread.native_id, thread.name)


def _name_native(native_id: int | None, name: str) -> None:
    try:
        with open(f"/proc/self/task/{native_id}/comm", "w") as comm:
            comm.write(name[:15])  # the kernel keeps 15 bytes
    except OSError:
        pass  # the thread has already ended, or no /proc: only the name is lost


def start_daemon(target, *args, name: str) -> threading.Thread:
    """A daemon thread running ``target(*args)``, started as :func:`start` does."""
    return start(threading.Thread(target=target, args=args, name=name, daemon=True))


def start_bare(target, *args, name: str) -> None:
    """A thread running ``target(*args)`` outside the threading module (no Thread
    object, no wait for it to start), with the same signals blocked: for a helper
    every process starts (user mode's signal wakeup, in each program the binfmt server
    forks), where threading's bookkeeping was half the cost, 0.4 ms and 70 page faults
    of a forked process.  It lives as a daemon thread does: until the process ends."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, MAIN_THREAD_SIGNALS)
    try:
        _thread.start_new_thread(_named if name_host_threads else target,
                                 (target, name, *args) if name_host_threads else args)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _named(target, name: str, *args) -> None:
    _name_native(threading.get_native_id(), name)
    target(*args)
