"""Guest clock reads in translated code: ticks from the host clock, without Python.

A guest timer counter that runs off the host's monotonic clock (the RISC-V ACLINT's
mtime, the Arm generic timer's counter) is ``(monotonic_ns - epoch) // ns_per_tick +
offset``.  Python keeps epoch, ns_per_tick and offset in per-CPU state slots; the
frontend reads them as IR globals and calls ``HOST_MONOTONIC_NS``, which the native
backend runs as machine code (backend/x86_64/host_clock.py) and the python backend
as ``time.monotonic_ns``: the same clock, so the value is the one the helper gives.
"""

from __future__ import annotations

import time

from pemu.accel.tcg.backend.x86_64.host_clock import host_monotonic_ns_address
from pemu.accel.tcg.ir import (
    CALL_READS_STATE,
    CALL_SIDE_EFFECTS,
    CALL_WRITES_STATE,
    Helper,
    IRBuilder,
    Operand,
    Temp,
)
from pemu.accel.tcg.opcodes import ADD, DIVU, SUB

# Not pure: two reads must not be merged or hoisted (each is a new clock value).
# "Writes state": not this routine, but Python may have rewritten the clock slots since
# the block loaded them (an MMIO write of mtime is a memory access, which no backend
# expects to change globals), so they are read again after the call; and a backend
# that reloads globals after such a call must write its dirty ones first ("reads").
HOST_MONOTONIC_NS = Helper("host_monotonic_ns", time.monotonic_ns,
                           flags=CALL_SIDE_EFFECTS | CALL_READS_STATE | CALL_WRITES_STATE,
                           native=host_monotonic_ns_address)


def ns_per_tick(hz: int) -> int:
    """The divisor for a ``hz`` counter, 0 if 1 s is not a whole number of ticks (then
    ``ns * hz // 10**9`` is not ``ns // divisor`` and the helper must compute it)."""
    return 1_000_000_000 // hz if hz and 1_000_000_000 % hz == 0 else 0


def emit_guest_ticks(b: IRBuilder, dest: Temp, epoch: Operand, divisor: Operand,
                     offset: Operand) -> None:
    """dest = (host monotonic ns - epoch) // divisor + offset, modulo 2**64.
    ``divisor`` must be nonzero (the caller tests the slot that enables this path)."""
    ns = b.temp()
    b.call(HOST_MONOTONIC_NS, [ns], [])
    b.binop(SUB, ns, ns, epoch)
    b.binop(DIVU, ns, ns, divisor)
    b.binop(ADD, dest, ns, offset)
