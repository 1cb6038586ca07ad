"""Advanced SIMD structure loads and stores: LD1-LD4/ST1-ST4 (multiple structures,
the 2-4 element forms interleaving lanes across registers), LD1-LD4/ST1-ST4 of one
lane, and LD1R-LD4R (one structure replicated to every lane); post-index by the
transfer size or by a register."""

from __future__ import annotations

from pemu.accel.tcg.ir import Const, MemOp, Operand, Temp
from pemu.accel.tcg.opcodes import ADD, OR, SHL, SHR
from pemu.target.aarch64.context import DisasContext
from pemu.target.aarch64.insn_ldst import offset_address
from pemu.target.aarch64.simd_common import dup, get_element, set_element

# opcode -> (registers, elements per structure): LD1 with 1-4 registers, LD2, LD3, LD4
_MULTI = {7: (1, 1), 10: (2, 1), 6: (3, 1), 2: (4, 1), 8: (2, 2), 4: (3, 3), 0: (4, 4)}


def _post_index(ctx: DisasContext, a, base: Operand, size: int) -> None:
    if a.p:
        moved = ctx.temp()
        step: Operand = Const(size) if a.rm == 31 else ctx.read(a.rm)
        ctx.b.binop(ADD, moved, base, step)
        ctx.write(a.rn, moved, sp=True)


def trans_SIMD_LDST_MULTI(ctx: DisasContext, a) -> bool | None:
    """Structure k's element j goes to lane k of register rt + j; LD1/ST1 with several
    registers is the one-element case: memory in register order."""
    shape = _MULTI.get(a.opcode)
    if shape is None or (not a.p and a.rm) or (a.size == 3 and not a.q and shape[1] > 1):
        return False
    nregs, selem = shape
    b = ctx.b
    regbytes = 16 if a.q else 8
    base = ctx.read(a.rn, sp=True)
    if selem == 1 or a.size == 3:  # whole 64-bit words, in order
        ebytes = 8
        lanes_per_reg = regbytes // 8
        for k in range(lanes_per_reg * (nregs // selem)):
            for j in range(selem):
                if selem == 1:
                    r, half = (a.rt + k // lanes_per_reg) % 32, k % lanes_per_reg
                else:
                    r, half = (a.rt + j) % 32, k
                addr = offset_address(ctx, base, (k * selem + j) * ebytes)
                if a.l:
                    t = ctx.temp()
                    b.ld(t, addr, MemOp(8))
                    b.mov(ctx.v(r, half), t)
                else:
                    b.st(ctx.v(r, half), addr, MemOp(8))
    else:
        ebytes = 1 << a.size
        esize = 8 * ebytes
        per_half = 64 // esize
        for j in range(selem):
            r = (a.rt + j) % 32
            for half in range(regbytes // 8):
                value: Temp | None = None
                for i in range(per_half):
                    k = half * per_half + i
                    addr = offset_address(ctx, base, (k * selem + j) * ebytes)
                    if a.l:
                        t = ctx.temp()
                        b.ld(t, addr, MemOp(ebytes))
                        if i:
                            b.binop(SHL, t, t, Const(i * esize))
                            b.binop(OR, value, value, t)
                        else:
                            value = t
                    else:
                        t = ctx.temp()
                        b.binop(SHR, t, ctx.v(r, half), Const(i * esize))
                        b.st(t, addr, MemOp(ebytes))
                if a.l:
                    b.mov(ctx.v(r, half), value)
    if a.l and not a.q:
        for j in range(nregs):
            b.movi(ctx.v((a.rt + j) % 32, 1), 0)
    _post_index(ctx, a, base, nregs * regbytes)
    return None


def trans_SIMD_LDST_SINGLE(ctx: DisasContext, a) -> bool | None:
    scale = a.opcode >> 1
    selem = ((a.opcode & 1) << 1 | a.r) + 1
    replicate = scale == 3
    if replicate:
        if not a.l or a.s:
            return False
        scale, index = a.size, 0
    elif scale == 0:
        index = a.q << 3 | a.s << 2 | a.size
    elif scale == 1:
        if a.size & 1:
            return False
        index = a.q << 2 | a.s << 1 | a.size >> 1
    elif a.size == 0:
        index = a.q << 1 | a.s
    elif a.size == 1 and not a.s:
        scale, index = 3, a.q
    else:
        return False
    ebytes = 1 << scale
    base = ctx.read(a.rn, sp=True)
    for j in range(selem):
        r = (a.rt + j) % 32
        addr = offset_address(ctx, base, j * ebytes)
        if a.l:
            t = ctx.temp()
            ctx.b.ld(t, addr, MemOp(ebytes))
            if replicate:
                dup(ctx, t, 8 * ebytes, a.q, r)
            else:
                set_element(ctx, r, 8 * ebytes, index, t)
        else:
            ctx.b.st(get_element(ctx, r, 8 * ebytes, index), addr, MemOp(ebytes))
    _post_index(ctx, a, base, selem * ebytes)
    return None


__all__ = [name for name in dir() if name.startswith("trans_")]
