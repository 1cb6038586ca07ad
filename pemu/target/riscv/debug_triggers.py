"""Sdtrig: the trigger module of the RISC-V Debug spec, as QEMU 7.2 implements it.

A hart has ``N_TRIGGERS`` triggers, selected with ``tselect`` and programmed through
``tdata1``/``tdata2`` (``tdata3`` reads zero, ``tinfo`` says which types exist).  Each
trigger is an address match: type 2 (mcontrol) or type 6 (mcontrol6), with
``tdata2`` the address, the execute/store/load bits and the M/S/U mode bits.  Their
only action is 0: a breakpoint exception (cause 3) taken *before* the instruction or
the access completes, with the address in the trap value.

What QEMU 7.2 keeps of a tdata1 write (and pemu with it): the type (2 or 6; a write
of any other type is ignored), the mode and access bits and a supported size; dmode,
maskmax, hit, select, timing, action, chain and match read back as zero.  A load or
store matches when it touches any byte of [tdata2, tdata2 + size), where size "any"
covers 8 bytes (XLEN), as in QEMU.

How the hart makes them fire (hart.py applies ``TriggerSet`` changes at the next block
boundary, outside translated code):

* execute: the translator gets the armed pcs of every hart (``break_pcs``) and emits
  ``TRIGGER_EXEC`` before each such instruction; the helper checks this hart's
  triggers against the privilege now.  Blocks translated before are dropped.
* load/store: the virtual pages holding a watched address never enter the TLB, so
  every access to them takes the softmmu's slow path, which calls ``check_data``.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.accel.tcg.ir import CALL_SIDE_EFFECTS, Helper
from pemu.target.riscv.csr import CsrDef, register_csr
from pemu.target.riscv.exceptions import BREAKPOINT, ILLEGAL_INSN, RiscvTrap

N_TRIGGERS = 2  # QEMU 7.2's RV_MAX_TRIGGERS
MASK64 = 0xFFFF_FFFF_FFFF_FFFF
PAGE_SHIFT = 12

TYPE_SHIFT = 60
TYPE_MCONTROL = 2
TYPE_MCONTROL6 = 6
TINFO = 1 << TYPE_MCONTROL | 1 << TYPE_MCONTROL6

# tdata1 bits common to both address-match types
LOAD, STORE, EXECUTE = 1, 2, 4
MODE_U, MODE_S, MODE_M = 1 << 3, 1 << 4, 1 << 6
ACCESS_MODE_BITS = LOAD | STORE | EXECUTE | MODE_U | MODE_S | MODE_M
# mcontrol's size: sizelo (17:16) and sizehi (22:21); mcontrol6's: 19:16
MCONTROL_SIZELO, MCONTROL_SIZEHI = 3 << 16, 3 << 21
MCONTROL6_SIZE = 0xF << 16
MCONTROL6_VU, MCONTROL6_VS = 1 << 23, 1 << 24

# size encoding -> bytes matched (0: any = XLEN bytes, as QEMU); others unsupported
_SIZE_BYTES = {0: 8, 1: 1, 2: 2, 3: 4, 5: 8}
_MODE_BIT = {0: MODE_U, 1: MODE_S, 3: MODE_M}  # privilege -> its tdata1 bit
RESET_TDATA1 = TYPE_MCONTROL << TYPE_SHIFT

ACCESS_READ, ACCESS_WRITE = 0, 1  # softmmu's access kinds (a read-for-store is WRITE)


def _size_field(tdata1: int) -> int:
    if tdata1 >> TYPE_SHIFT == TYPE_MCONTROL6:
        return tdata1 >> 16 & 0xF
    return (tdata1 >> 21 & 3) << 2 | tdata1 >> 16 & 3


def legal_tdata1(value: int) -> int | None:
    """What a tdata1 write leaves in the register; None: the write is ignored."""
    kind = value >> TYPE_SHIFT & 0xF
    if kind == TYPE_MCONTROL:
        kept, size_bits = ACCESS_MODE_BITS, MCONTROL_SIZELO | MCONTROL_SIZEHI
    elif kind == TYPE_MCONTROL6:
        kept = ACCESS_MODE_BITS | MCONTROL6_VU | MCONTROL6_VS
        size_bits = MCONTROL6_SIZE
    else:  # types QEMU 7.2 does not have (0 and 15 included): nothing changes
        return None
    if _size_field(value) in _SIZE_BYTES:
        kept |= size_bits
    return kind << TYPE_SHIFT | value & kept


class TriggerSet:
    """One hart's triggers; ``on_change`` runs after a write that may arm or disarm."""

    def __init__(self, on_change: Callable[[], None] = lambda: None) -> None:
        self.on_change = on_change
        self.tselect = 0
        self.tdata1 = [RESET_TDATA1] * N_TRIGGERS
        self.tdata2 = [0] * N_TRIGGERS

    def reset(self) -> None:
        self.tselect = 0
        self.tdata1 = [RESET_TDATA1] * N_TRIGGERS
        self.tdata2 = [0] * N_TRIGGERS
        self.on_change()

    # -- the CSRs ------------------------------------------------------------------------
    def write_tselect(self, value: int) -> None:
        if value < N_TRIGGERS:  # WARL: a trigger that does not exist is not selected
            self.tselect = value

    def write_tdata1(self, value: int) -> None:
        new = legal_tdata1(value)
        if new is not None and new != self.tdata1[self.tselect]:
            self.tdata1[self.tselect] = new
            self.on_change()

    def write_tdata2(self, value: int) -> None:
        if value != self.tdata2[self.tselect]:
            self.tdata2[self.tselect] = value & MASK64
            self.on_change()

    # -- what is armed ---------------------------------------------------------------------
    def _armed(self, access_bits: int) -> list[tuple[int, int]]:
        """(tdata1, tdata2) of the triggers with any of ``access_bits``, in any mode."""
        return [(t1, t2) for t1, t2 in zip(self.tdata1, self.tdata2, strict=True)
                if t1 & access_bits and t1 & (MODE_U | MODE_S | MODE_M)]

    def exec_pcs(self) -> frozenset[int]:
        return frozenset(t2 for _, t2 in self._armed(EXECUTE))

    def data_pages(self) -> frozenset[int]:
        """Virtual page numbers holding a byte some load/store trigger watches."""
        pages: set[int] = set()
        for t1, t2 in self._armed(LOAD | STORE):
            last = (t2 + _SIZE_BYTES.get(_size_field(t1), 8) - 1) & MASK64
            pages.update({t2 >> PAGE_SHIFT, last >> PAGE_SHIFT})
        return frozenset(pages)

    # -- matching ----------------------------------------------------------------------------
    def check_exec(self, pc: int, priv: int) -> None:
        """Raise the breakpoint if an execute trigger matches ``pc`` at ``priv``."""
        mode = _MODE_BIT.get(priv, 0)
        for t1, t2 in zip(self.tdata1, self.tdata2, strict=True):
            if t1 & EXECUTE and t1 & mode and t2 == pc:
                raise RiscvTrap(BREAKPOINT, pc)

    def check_data(self, vaddr: int, size: int, access: int, priv: int) -> None:
        """Raise the breakpoint if a load (``access`` READ) or store trigger watches a
        byte of [vaddr, vaddr + size) at ``priv``."""
        kind = STORE if access == ACCESS_WRITE else LOAD
        mode = _MODE_BIT.get(priv, 0)
        for t1, t2 in zip(self.tdata1, self.tdata2, strict=True):
            if t1 & kind and t1 & mode:
                length = _SIZE_BYTES.get(_size_field(t1), 8)
                if vaddr < t2 + length and t2 < vaddr + size:
                    raise RiscvTrap(BREAKPOINT, vaddr)


def _trigger_exec(env: object, pc: int) -> None:
    debugger = getattr(env, "debugger", None)  # the gdb stub's (debugger_points.py)
    if debugger is not None:
        debugger.check_exec(pc)
    triggers = getattr(env, "triggers", None)
    if triggers is not None:
        triggers.check_exec(pc, env.ps.priv)  # type: ignore[attr-defined]


# Emitted before an instruction whose pc an execute trigger of some hart watches.
TRIGGER_EXEC = Helper("trigger_exec", _trigger_exec, flags=CALL_SIDE_EFFECTS, n_out=0,
                      needs_env=True)


# -- CSRs 0x7a0..0x7a4 (M-mode): illegal on a hart without triggers (debug=false) --------

def _triggers_of(env: object) -> TriggerSet:
    triggers = getattr(env, "triggers", None)
    if triggers is None:
        raise RiscvTrap(ILLEGAL_INSN, 0)
    return triggers


def _read_tdata1(env: object) -> int:
    t = _triggers_of(env)
    return t.tdata1[t.tselect]


def _read_tdata2(env: object) -> int:
    t = _triggers_of(env)
    return t.tdata2[t.tselect]


def _read_zero(env: object) -> int:
    _triggers_of(env)
    return 0


def _ignore(env: object, value: int) -> None:
    _triggers_of(env)


def register_trigger_csrs() -> None:
    """Add tselect, tdata1-3 and tinfo to the CSR table (idempotent)."""
    # a write that arms or disarms ends the block: the hart applies it before the next
    for number, csr in {
        0x7A0: CsrDef("tselect", lambda env: _triggers_of(env).tselect,
                      lambda env, v: _triggers_of(env).write_tselect(v)),
        0x7A1: CsrDef("tdata1", _read_tdata1,
                      lambda env, v: _triggers_of(env).write_tdata1(v), ends_block=True),
        0x7A2: CsrDef("tdata2", _read_tdata2,
                      lambda env, v: _triggers_of(env).write_tdata2(v), ends_block=True),
        0x7A3: CsrDef("tdata3", _read_zero, _ignore),  # no textra: reads zero
        0x7A4: CsrDef("tinfo", lambda env: TINFO if _triggers_of(env) else 0, _ignore),
    }.items():
        register_csr(number, csr)


__all__ = ["N_TRIGGERS", "TINFO", "TRIGGER_EXEC", "TriggerSet", "legal_tdata1",
           "register_trigger_csrs"]
