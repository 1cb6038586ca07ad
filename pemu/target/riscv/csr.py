"""Control and status registers: a table of read/write functions keyed by number.

User mode has the floating-point CSRs and the read-only counters.  System mode adds
its M/S-mode registers with ``register_csr``; the privilege and read-only rules come
from the CSR number itself (bits 9:8 = lowest privilege, bits 11:10 == 3 = read-only),
as the privileged spec lays them out.

Translated code reaches all of this through one helper, ``CSR_ACCESS``, that gets the
CSR number, what to do (``ACTION_*``), the source value and the instruction bits (for
the illegal-instruction trap value).

The FP CSRs (fflags, frm, fcsr) also follow mstatus.FS in system mode (an env with
``ps``): any access is illegal while FS is Off, and a write marks FS Dirty.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pemu.accel.tcg import counters
from pemu.accel.tcg.ir import Helper
from pemu.target.riscv.cpu_state import FFLAGS, FRM, PRIV
from pemu.target.riscv.exceptions import ILLEGAL_INSN, RiscvTrap

CsrRead = Callable[[object], int]
CsrWrite = Callable[[object, int], None]

# What a CSR instruction does with the register (bit set); READ is independent.
ACTION_READ = 1  # rd != x0 for csrrw[i]; always for the set/clear forms
ACTION_WRITE = 2  # csrrw[i]
ACTION_SET = 4  # csrrs[i] with a non-zero source register/immediate
ACTION_CLEAR = 8  # csrrc[i] with a non-zero source register/immediate

MASK64 = 0xFFFF_FFFF_FFFF_FFFF
VIRTUAL_INSN = 22  # H's virtual-instruction exception (hyp.py): V=1 code's refusals
# CSR number bits 9:8 -> the privilege that may access it: the hypervisor/VS CSRs
# (level 2) belong to HS-mode, which runs at privilege S
_LOWEST_PRIV = (0, 1, 1, 3)


@dataclass(frozen=True)
class CsrDef:
    name: str
    read: CsrRead
    write: CsrWrite | None = None  # None: writes are illegal (counters, ids)
    ends_block: bool = False  # a write changes how later code must be translated
    fp_state: bool = False  # part of the FP state that mstatus.FS guards
    # What csrrs/csrrc combine their operand with, where it is not what a read returns:
    # mip's SEIP reads as the software bit OR the interrupt controller's line, but a
    # set/clear must write back only the software bit (spec 3.1.9), or firmware that
    # sets SSIP while a device interrupt is pending latches SEIP on for good.
    read_for_update: CsrRead | None = None


CSR_TABLE: dict[int, CsrDef] = {}


def register_csr(number: int, csr: CsrDef) -> None:
    CSR_TABLE[number] = csr


def csr_name(number: int) -> str:
    csr = CSR_TABLE.get(number)
    return csr.name if csr else f"csr_0x{number:03x}"


def write_ends_block(number: int) -> bool:
    """Whether translation must stop after an instruction that writes this CSR."""
    csr = CSR_TABLE.get(number)
    return bool(csr and csr.ends_block)


def _slots(env: object) -> memoryview:
    return env.state.slots  # type: ignore[attr-defined]


def csr_access(env: object, number: int, action: int, value: int, insn: int) -> int:
    """Perform a csrr* instruction; returns the old value (0 when not read)."""
    csr = CSR_TABLE.get(number)
    slots = _slots(env)
    writes = action & (ACTION_WRITE | ACTION_SET | ACTION_CLEAR)
    if counters.ENABLED:
        counters.count(f"csr:{csr_name(number)} {'write' if writes else 'read'}")
    if (csr is None or slots[PRIV] < _LOWEST_PRIV[(number >> 8) & 3]
            or (writes and (csr.write is None or number >> 10 == 3))):
        raise RiscvTrap(ILLEGAL_INSN, insn)
    if csr.fp_state:
        _check_fs(env, writes, insn)
    try:
        old = csr.read(env) if action & (ACTION_READ | ACTION_SET | ACTION_CLEAR) else 0
        if writes:
            base = old
            if csr.read_for_update is not None and action & (ACTION_SET | ACTION_CLEAR):
                base = csr.read_for_update(env)
            if action & ACTION_WRITE:
                new = value
            elif action & ACTION_SET:
                new = base | value
            else:
                new = base & ~value
            csr.write(env, new & MASK64)  # type: ignore[misc]
    except RiscvTrap as trap:
        if trap.cause in (ILLEGAL_INSN, VIRTUAL_INSN) and not trap.tval:
            raise RiscvTrap(trap.cause, insn) from None  # refused by the CSR (TVM, ...)
        raise
    return old if action & ACTION_READ else 0


def _check_fs(env: object, writes: int, insn: int) -> None:
    ps = getattr(env, "ps", None)  # PrivState; None in user mode, which has no mstatus
    if ps is None:
        return
    if ps.fp_off():
        raise RiscvTrap(ILLEGAL_INSN, insn)
    if writes:
        ps.mark_fs_dirty()


CSR_ACCESS = Helper("csr_access", csr_access, needs_env=True)


# -- user-level CSRs -------------------------------------------------------------------

def _read_fflags(env: object) -> int:
    return _slots(env)[FFLAGS] & 0x1F


def _write_fflags(env: object, v: int) -> None:
    _slots(env)[FFLAGS] = v & 0x1F


def _read_frm(env: object) -> int:
    return _slots(env)[FRM] & 7


def _write_frm(env: object, v: int) -> None:
    _slots(env)[FRM] = v & 7


def _read_fcsr(env: object) -> int:
    s = _slots(env)
    return (s[FRM] & 7) << 5 | (s[FFLAGS] & 0x1F)


def _write_fcsr(env: object, v: int) -> None:
    s = _slots(env)
    s[FFLAGS] = v & 0x1F
    s[FRM] = (v >> 5) & 7


def _read_time(env: object) -> int:
    # The time CSR ticks at 10 MHz (the timebase the virt machine advertises).
    return time.monotonic_ns() // 100


def _read_counter(env: object) -> int:
    # Like QEMU user mode, cycle and instret report a host time stamp (nanoseconds):
    # monotonic, and cheap, without counting guest instructions.
    return time.monotonic_ns()


for _number, _def in {
    0x001: CsrDef("fflags", _read_fflags, _write_fflags, fp_state=True),
    0x002: CsrDef("frm", _read_frm, _write_frm, fp_state=True),
    0x003: CsrDef("fcsr", _read_fcsr, _write_fcsr, fp_state=True),
    0xC00: CsrDef("cycle", _read_counter),
    0xC01: CsrDef("time", _read_time),
    0xC02: CsrDef("instret", _read_counter),
}.items():
    register_csr(_number, _def)
