"""The big lock of an MTTCG machine (QEMU's BQL).

The GIL makes single bytecodes atomic, not the multi-step Python that a device
register write, a CSR side effect, a TLB fill or a translation is.  With
``-accel tcg,thread=multi`` every vCPU thread therefore holds this lock whenever it
runs Python (its loop, translation, helper callbacks, MMIO) and gives it up only
inside generated code and while it sleeps in WFI or parks at a pause.  Python of
two vCPUs thus never interleaves, exactly as when one thread ran them all; only
their generated code runs in parallel, against guest RAM (atomics: host
``lock cmpxchg``, see backend/x86_64/host_atomics.py).

I/O threads (chardevs, timers, block and network backends) do not take it: as with
one vCPU thread, they synchronise with device models through the devices' own locks.
"""

from __future__ import annotations

import threading
import time

from pemu.accel.tcg import counters


class BigLock:
    """A plain lock that knows its owner (``held``), so that code shared with other
    threads (the gdbstub stepping a parked hart) gives it up only if it has it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None

    def acquire(self) -> None:
        if not self._lock.acquire(blocking=False):
            if counters.ENABLED:  # PEMU_COUNTERS: how often, how long vCPUs wait here
                self._acquire_counted()
            else:
                self._lock.acquire()
        self._owner = threading.get_ident()

    def _acquire_counted(self) -> None:
        start = time.perf_counter_ns()
        self._lock.acquire()
        counters.count("bql:contended acquisitions")
        counters.count("bql:microseconds waited", (time.perf_counter_ns() - start) // 1000)

    def release(self) -> None:
        self._owner = None
        self._lock.release()

    def held(self) -> bool:
        """Whether the calling thread holds it."""
        return self._owner == threading.get_ident()

    def __enter__(self) -> BigLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
