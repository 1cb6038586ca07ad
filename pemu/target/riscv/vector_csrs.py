"""The vector CSRs (vstart, vxsat, vxrm, vcsr, vl, vtype, vlenb) in the CSR table.

They live in the hart's ``VectorState``.  Without V (vlenb 0) every one of them is an
illegal instruction; in system mode mstatus.VS Off makes them illegal too, and a
write marks VS Dirty.  vl, vtype and vlenb are read-only (their numbers say so).
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.target.riscv.csr import CsrDef, register_csr
from pemu.target.riscv.exceptions import ILLEGAL_INSN, RiscvTrap
from pemu.target.riscv.vector_exec import vs_check
from pemu.target.riscv.vector_state import VectorState

CSR_VSTART, CSR_VXSAT, CSR_VXRM, CSR_VCSR = 0x008, 0x009, 0x00A, 0x00F
CSR_VL, CSR_VTYPE, CSR_VLENB = 0xC20, 0xC21, 0xC22


def _vector(env: object, dirty: bool) -> VectorState:
    vs: VectorState = env.state.vector  # type: ignore[attr-defined]
    if not vs.vlenb:
        raise RiscvTrap(ILLEGAL_INSN, 0)  # no V: csr_access reports the instruction
    vs_check(env, dirty)
    return vs


def _reader(get: Callable[[VectorState], int]) -> Callable[[object], int]:
    return lambda env: get(_vector(env, False))


def _writer(put: Callable[[VectorState, int], None]) -> Callable[[object, int], None]:
    return lambda env, value: put(_vector(env, True), value)


def _set_vstart(vs: VectorState, value: int) -> None:
    vs.vstart = value & (vs.vlenb * 8 - 1)  # as QEMU: the bits an element index needs


def _set_vxsat(vs: VectorState, value: int) -> None:
    vs.vxsat = value & 1


def _set_vxrm(vs: VectorState, value: int) -> None:
    vs.vxrm = value & 3


def _set_vcsr(vs: VectorState, value: int) -> None:
    vs.vxsat, vs.vxrm = value & 1, (value >> 1) & 3


for _number, _def in {
    CSR_VSTART: CsrDef("vstart", _reader(lambda vs: vs.vstart), _writer(_set_vstart)),
    CSR_VXSAT: CsrDef("vxsat", _reader(lambda vs: vs.vxsat), _writer(_set_vxsat)),
    CSR_VXRM: CsrDef("vxrm", _reader(lambda vs: vs.vxrm), _writer(_set_vxrm)),
    CSR_VCSR: CsrDef("vcsr", _reader(lambda vs: vs.vxrm << 1 | vs.vxsat), _writer(_set_vcsr)),
    CSR_VL: CsrDef("vl", _reader(lambda vs: vs.vl)),
    CSR_VTYPE: CsrDef("vtype", _reader(lambda vs: vs.vtype.raw)),
    CSR_VLENB: CsrDef("vlenb", _reader(lambda vs: vs.vlenb)),
}.items():
    register_csr(_number, _def)
