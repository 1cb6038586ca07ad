"""Zicboz's cbo.zero: generated stores where the envcfgs allow it, the helper elsewhere.

programs/cbo_zero.S runs on ``-cpu rva23s64`` and ``rv64,zicboz=true`` (both
backends): the inline path from S- and U-mode, and each fall-back (menvcfg/senvcfg
off: illegal instruction; read-only page: store page fault; no memory: store access
fault), with one translated cbo.zero that meets menvcfg.CBZE on, off and on again.
On rv64 the hart has no H, so U-mode is entered by the inline sret
(trap_inline.py), which must set U's cbo.zero flag.  QEMU 7.2 has no Zicboz, so the
expected traps come from the specification.  V=1 (henvcfg, virtual-instruction
exceptions) is checked on a hart directly: the helper's verdict, and the block flag
that decides whether translated code asks it.
"""

from __future__ import annotations

import pytest

from pemu.target.riscv.exceptions import ILLEGAL_INSN, RiscvTrap
from pemu.target.riscv.hyp import VIRTUAL_INSN
from pemu.target.riscv.insn_cbo import CBO_CHECK, CBO_ZERO
from pemu.target.riscv.mmu import PRV_M, PRV_S, PRV_U
from pemu.target.riscv.priv import ENVCFG_CBZE, FLAG_CBO_ZERO_OFF
from tests.system.conftest import run_pemu
from tests.system.test_hyp import _csr, _hart


# rva23s64 has H, so its traps go through Python; a hart without H or pointer masking
# enters U-mode by the inline sret (trap_inline.py), which must carry U's cbo.zero flag
@pytest.mark.parametrize("cpu", ["rva23s64", "rv64,zicboz=true"])
@pytest.mark.usefixtures("tcg_backend")
def test_cbo_zero_inline_and_its_traps(build_program, cpu: str) -> None:
    r = run_pemu("-M", "virt", "-bios", "none", "-cpu", cpu, "-nographic",
                 "-kernel", str(build_program("cbo_zero")), timeout=120)
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout


MENVCFG, SENVCFG, HENVCFG = 0x30A, 0x10A, 0x60A
CBO_ZERO_A3 = 0x0046A00F


# (V, privilege, menvcfg.CBZE, henvcfg.CBZE, senvcfg.CBZE) -> what cbo.zero raises
@pytest.mark.parametrize(("virt", "priv", "m", "h", "s", "cause"), [
    (False, PRV_M, 0, 0, 0, None),
    (False, PRV_S, 0, 1, 1, ILLEGAL_INSN),
    (False, PRV_S, 1, 0, 0, None),  # henvcfg and senvcfg do not gate HS-mode
    (False, PRV_U, 1, 1, 0, ILLEGAL_INSN),
    (False, PRV_U, 1, 0, 1, None),
    (True, PRV_S, 0, 1, 1, ILLEGAL_INSN),  # menvcfg first: illegal even from V=1
    (True, PRV_S, 1, 0, 1, VIRTUAL_INSN),
    (True, PRV_S, 1, 1, 0, None),
    (True, PRV_U, 1, 0, 1, VIRTUAL_INSN),
    (True, PRV_U, 1, 1, 0, VIRTUAL_INSN),
    (True, PRV_U, 1, 1, 1, None),
])
def test_envcfg_gates_cbo_zero_by_mode(virt: bool, priv: int, m: int, h: int, s: int,
                                       cause: int | None) -> None:
    hart = _hart("rva23s64")
    ps = hart.ps
    _csr(hart, 0x30C, (1 << 63) | (1 << 62))  # mstateen0: S may use senvcfg, henvcfg
    _csr(hart, MENVCFG, ENVCFG_CBZE * m)
    _csr(hart, HENVCFG, ENVCFG_CBZE * h)
    _csr(hart, SENVCFG, ENVCFG_CBZE * s)
    ps.set_priv(priv)
    ps.set_virt(virt)
    assert bool(ps.block_flags() & FLAG_CBO_ZERO_OFF) is (cause is not None)
    if cause is None:
        CBO_CHECK.fn(hart, CBO_ZERO, CBO_ZERO_A3)
    else:
        with pytest.raises(RiscvTrap) as e:
            CBO_CHECK.fn(hart, CBO_ZERO, CBO_ZERO_A3)
        assert (e.value.cause, e.value.tval) == (cause, CBO_ZERO_A3)


# (henvcfg writes re-derive them whatever changed: VSTIP may follow vstimecmp)
@pytest.mark.parametrize("csr", [MENVCFG, SENVCFG])
def test_a_cbze_write_re_derives_the_block_flags(csr: int) -> None:
    hart = _hart("rva23s64")
    ps = hart.ps
    _csr(hart, 0x30C, (1 << 63) | (1 << 62))
    calls = []
    ps.on_flags_changed = lambda: calls.append(csr)
    _csr(hart, csr, ENVCFG_CBZE)
    assert calls, "translated code would keep the old cbo.zero verdict"
    calls.clear()
    _csr(hart, csr, ENVCFG_CBZE)  # no change: nothing to re-derive
    assert not calls
