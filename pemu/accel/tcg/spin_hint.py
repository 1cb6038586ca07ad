"""A guest's spin-wait hint (RISC-V ``pause``) as a host yield, where vCPUs have threads.

Linux's ``cpu_relax()`` (RISC-V: ``div x,x,zero; pause``) sits in every loop that waits
for another CPU: csd locks, stop_machine, spinlock slow paths.  With a host thread per
vCPU on a host that has no core to spare, the CPU waited for may be descheduled while
the waiting one spins on a core for its whole time slice.  ``HOST_YIELD`` gives the
core up (``sched_yield``) at each turn of such a loop; with an idle core at hand it
returns at once (one system call).  The native backend calls libc's ``sched_yield``
straight from generated code: no GIL, no big lock, which a Python helper would take
from the vCPU doing the work at every turn of the loop.
"""

from __future__ import annotations

import ctypes
import functools
import os

from pemu.accel.tcg.ir import CALL_SIDE_EFFECTS, Helper


@functools.cache
def _sched_yield_address() -> int:
    address = ctypes.cast(ctypes.CDLL(None).sched_yield, ctypes.c_void_p).value
    assert address is not None
    return address


# Touches no guest state: nothing to write back or reload around it.
HOST_YIELD = Helper("host_yield", os.sched_yield, flags=CALL_SIDE_EFFECTS, n_out=0,
                    native=_sched_yield_address)


def _end_turn(env: object) -> None:
    end_turn = env.end_turn  # type: ignore[attr-defined]
    if end_turn is not None:  # (None: the only vCPU)
        end_turn()


# Where vCPUs take turns on one thread (``thread=single``), the vCPU waited for runs
# only once the spinning one's turn is over: the hint ends it at once, rather than
# after a whole quantum of spinning (SystemCPU.end_turn, the round-robin machine's).
END_TURN = Helper("end_turn", _end_turn, flags=CALL_SIDE_EFFECTS, n_out=0, needs_env=True)
