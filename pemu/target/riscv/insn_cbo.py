"""Zicbom and Zicboz: the cache-block operations cbo.inval/clean/flush/zero (MISC-MEM,
funct3 2).  Zicbop's prefetch.i/r/w are ORI hints (rd = x0) and need nothing here.

pemu has no caches, so cbo.inval/clean/flush only check what the spec makes them check:
that the hart may use them (menvcfg/senvcfg/henvcfg below M: an illegal or virtual
instruction, PrivState.envcfg_refusal) and that the block is accessible (a probe load
of its first byte that needs store permission in system mode, so it faults as a
store, as the spec says).  cbo.zero writes zeros to the whole naturally aligned block
of CBO_BLOCK_SIZE bytes (the device tree's riscv,cbom-block-size and
riscv,cboz-block-size) with inline stores; its envcfg check is a helper call only in
blocks whose flags say the envcfgs refuse it (priv.FLAG_CBO_ZERO_OFF).
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.accel.tcg.ir import CALL_SIDE_EFFECTS, Const, Helper, MemOp
from pemu.accel.tcg.opcodes import ADD, AND
from pemu.target.decode import Args
from pemu.target.riscv.context import DisasContext
from pemu.target.riscv.exceptions import RiscvTrap
from pemu.target.riscv.mmu import PRV_M
from pemu.target.riscv.priv import ENVCFG_CBCFE, ENVCFG_CBIE, ENVCFG_CBZE, FLAG_CBO_ZERO_OFF

CBO_BLOCK_SIZE = 64
CBO_INVAL, CBO_CLEAN, CBO_FLUSH, CBO_ZERO = 0, 1, 2, 4
_EXTENSION = {CBO_INVAL: "zicbom", CBO_CLEAN: "zicbom", CBO_FLUSH: "zicbom",
              CBO_ZERO: "zicboz"}
# the envcfg field that enables each operation below M
_ENABLE = {CBO_INVAL: ENVCFG_CBIE, CBO_CLEAN: ENVCFG_CBCFE, CBO_FLUSH: ENVCFG_CBCFE,
           CBO_ZERO: ENVCFG_CBZE}


def _cbo_check(env: object, op: int, insn: int) -> None:
    """Raise what the envcfg registers make ``op`` raise in the current mode
    (PrivState.envcfg_refusal).  Linux user mode has no envcfg: everything is enabled
    there, as in QEMU."""
    ps = getattr(env, "ps", None)
    if ps is None:
        return
    cause = ps.envcfg_refusal(_ENABLE[op])
    if cause is not None:
        raise RiscvTrap(cause, insn)


CBO_CHECK = Helper("cbo_check", _cbo_check, flags=CALL_SIDE_EFFECTS, n_out=0, needs_env=True)


def _cbo(op: int) -> Callable[[DisasContext, Args], bool | None]:
    def trans(ctx: DisasContext, a: Args) -> bool | None:
        if _EXTENSION[op] not in ctx.ext:
            return False
        _emit_cbo(ctx, op, a.rs1)
        return None
    return trans


def _emit_cbo(ctx: DisasContext, op: int, rs1: int) -> None:
    b = ctx.b
    # cbo.zero: the block flags say whether the envcfgs refuse it here (the kernel
    # clears pages with it: no helper on that path); the rarer cbo.clean/flush/inval
    # ask the helper below M
    refused = ctx.flags & FLAG_CBO_ZERO_OFF if op == CBO_ZERO else ctx.priv != PRV_M
    if refused:
        b.call(CBO_CHECK, [], [Const(op), Const(ctx.insn)])
    block = b.temp()
    b.binop(AND, block, ctx.masked(ctx.xr[rs1]), Const(-CBO_BLOCK_SIZE & (2**64 - 1)))
    if op == CBO_ZERO:
        for offset in range(0, CBO_BLOCK_SIZE, 8):
            addr = block
            if offset:
                addr = b.temp()
                b.binop(ADD, addr, block, Const(offset))
            b.st(Const(0), addr, MemOp(8))
        return
    # for_store (a store's permission and fault) only where the memory model has it:
    # system mode, which is also where atomics are inline
    b.ld(b.temp(), block, MemOp(1, for_store=ctx.inline_atomics))


HANDLERS = {"CBO_INVAL": _cbo(CBO_INVAL), "CBO_CLEAN": _cbo(CBO_CLEAN),
            "CBO_FLUSH": _cbo(CBO_FLUSH), "CBO_ZERO": _cbo(CBO_ZERO)}
