"""Which vCPU is making the memory access a device is answering.

``AddressSpace.load``/``store`` do not say who accessed: almost no device cares.  The
few that bank registers per CPU (the GICv2 distributor's SGI/PPI registers and its
memory-mapped CPU interface) ask ``current_cpu_index()``.  The vCPU loop says whose
turn it is with ``set_current_cpu_index`` before it runs a vCPU; the value is kept per
host thread, so a device reached from the I/O thread or a test sees CPU 0 unless it
says otherwise (``accessing(i)``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_state = threading.local()


def current_cpu_index() -> int:
    return getattr(_state, "index", 0)


def set_current_cpu_index(index: int) -> None:
    _state.index = index


@contextmanager
def accessing(index: int) -> Iterator[None]:
    """Accesses made inside the block come from CPU ``index``."""
    before = current_cpu_index()
    set_current_cpu_index(index)
    try:
        yield
    finally:
        set_current_cpu_index(before)
