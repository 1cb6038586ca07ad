"""The counter CSRs of system mode, on the hart's ``Pmu`` (pmu.py).

  mcycle, minstret, mhpmcounter3..18    read/write (19..31: illegal, QEMU 7.2's pmu-num)
  cycle, instret, hpmcounter3..18       read-only views, gated by mcounteren/scounteren
  mhpmevent3..31                        the event each counter counts (+ Sscofpmf bits)
  mcountinhibit                         stops counters (TM does not exist)
  scountovf                             Sscofpmf: the OF bits, as mcounteren lets S see

In user mode (an env without ``ps``) cycle and instret keep their host-clock values
(csr.py) and the hpmcounters are illegal.  Registered after csr_system's table, whose
entries for these numbers it replaces.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from pemu.target.riscv import csr
from pemu.target.riscv.csr import CsrDef, register_csr
from pemu.target.riscv.exceptions import ILLEGAL_INSN, RiscvTrap
from pemu.target.riscv.mmu import PRV_M, PRV_U
from pemu.target.riscv.pmu import CY, FIRST_HPM, IR, N_COUNTERS, Pmu


def _illegal() -> RiscvTrap:
    return RiscvTrap(ILLEGAL_INSN, 0)


def _pmu(env: object) -> Pmu:
    return env.pmu  # type: ignore[attr-defined]


def _existing(index: int) -> None:
    if not Pmu.exists(index):
        raise _illegal()


def _counter_allowed(ps, index: int) -> None:
    if ps.priv < PRV_M and not ps.mcounteren >> index & 1:
        raise _illegal()
    if ps.priv == PRV_U and not ps.scounteren >> index & 1:
        raise _illegal()


def _machine_counter(index: int) -> CsrDef:
    name = {CY: "mcycle", IR: "minstret"}.get(index, f"mhpmcounter{index}")

    def read(env: object) -> int:
        _existing(index)
        return _pmu(env).read(index)

    def write(env: object, value: int) -> None:
        _existing(index)
        _pmu(env).write(index, value)
        env.ps.request_exit()  # type: ignore[attr-defined]  (a new overflow deadline)

    return CsrDef(name, read, write)


def _user_counter(index: int) -> CsrDef:
    user: Callable[[object], int] | None = None
    if index in (CY, IR):
        user = csr.CSR_TABLE[0xC00 + index].read  # user mode's host-clock counter
    name = {CY: "cycle", IR: "instret"}.get(index, f"hpmcounter{index}")

    def read(env: object) -> int:
        ps = getattr(env, "ps", None)
        if ps is None:
            if user is None:
                raise _illegal()  # user mode has no hardware performance counters
            return user(env)
        _existing(index)
        _counter_allowed(ps, index)
        return _pmu(env).read(index)

    return CsrDef(name, read)


def _latched(env: object) -> Pmu:
    """The PMU with every overflow until now latched: what reads of OF and LCOFIP see
    (the vCPU loop latches them only at its next look at the timer)."""
    pmu = _pmu(env)
    pmu.latch_overflows()
    return pmu


def _event(index: int) -> CsrDef:
    def write(env: object, value: int) -> None:
        _pmu(env).write_event(index, value)
        env.ps.request_exit()  # type: ignore[attr-defined]

    return CsrDef(f"mhpmevent{index}", lambda env: _latched(env).event[index], write)


def _latching_read(number: int) -> None:
    """mip/sip: latch overflows before the read (wraps the table's entry)."""
    entry = csr.CSR_TABLE[number]
    read = entry.read

    def latched_read(env: object) -> int:
        if getattr(env, "pmu", None) is not None:
            _latched(env)
        return read(env)

    register_csr(number, dataclasses.replace(entry, read=latched_read))


def _write_mcountinhibit(env: object, value: int) -> None:
    pmu = _pmu(env)
    pmu.write_inhibit(value)
    env.ps.mcountinhibit = pmu.inhibit  # type: ignore[attr-defined]  (what vmstate saves)
    env.ps.request_exit()  # type: ignore[attr-defined]


def _read_scountovf(env: object) -> int:
    pmu = _latched(env)
    if not pmu.sscofpmf:
        raise _illegal()
    ps = env.ps  # type: ignore[attr-defined]
    bits = pmu.overflow_bits()
    return bits if ps.priv == PRV_M else bits & ps.mcounteren


_registered = False


def register_pmu_csrs() -> None:
    """Put the counter CSRs into the table (idempotent)."""
    global _registered
    if _registered:
        return
    _registered = True
    for index in (CY, IR, *range(FIRST_HPM, N_COUNTERS)):
        register_csr(0xB00 + index, _machine_counter(index))
        register_csr(0xC00 + index, _user_counter(index))
    for index in range(FIRST_HPM, N_COUNTERS):
        register_csr(0x320 + index, _event(index))
    register_csr(0x320, CsrDef("mcountinhibit", lambda env: _pmu(env).inhibit,
                               _write_mcountinhibit))
    register_csr(0xDA0, CsrDef("scountovf", _read_scountovf))
    for number in (0x344, 0x144):  # mip, sip
        _latching_read(number)


__all__ = ["register_pmu_csrs"]
