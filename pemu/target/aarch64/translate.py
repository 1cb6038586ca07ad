"""A64 frontend: guest instructions -> TCG IR blocks.

Decoding is the table of a64_decode.py, built into a decision tree at import
(pemu/target/decode); the handlers are the ``trans_*`` functions of insn_*.py.  A word
no pattern takes, or whose handler refuses it (a reserved field value), raises the
undefined-instruction exception precisely at that instruction.

A block is a run of instructions on one guest page that ends at the first control
transfer, exception, ISB, or after ``max_insns`` instructions.
"""

from __future__ import annotations

import types
from collections.abc import Callable

from pemu.accel.tcg.ir import Block
from pemu.target.aarch64 import (
    insn_dp,
    insn_el1,
    insn_fp,
    insn_ldst,
    insn_simd,
    insn_simd_elem,
    insn_simd_fp,
    insn_simd_ldst,
    insn_simd_misc,
    insn_simd_perm,
    insn_simd_scalar,
    insn_simd_wide,
    insn_system,
)
from pemu.target.aarch64.a64_decode import A64_DECODE
from pemu.target.aarch64.context import DisasContext
from pemu.target.decode import build_decoder

PAGE_SIZE = 4096
Fetch = Callable[[int, int], int]

_HANDLERS = types.SimpleNamespace(**{
    name: getattr(module, name)
    for module in (insn_dp, insn_ldst, insn_system, insn_simd, insn_simd_misc, insn_simd_wide,
                   insn_simd_perm, insn_simd_ldst, insn_simd_fp, insn_simd_scalar, insn_simd_elem,
                   insn_fp, insn_el1)
    for name in dir(module) if name.startswith("trans_")})
DECODE = build_decoder(A64_DECODE + insn_simd.SIMD_DECODE + insn_simd_scalar.SCALAR_DECODE
                       + insn_simd_elem.SIMD_ELEM_DECODE + insn_fp.FP_DECODE, _HANDLERS,
                       source="pemu/target/aarch64/a64_decode.py")


def translate_block(pc: int, flags: int, fetch: Fetch, *, max_insns: int = 256,
                    inline_atomics: bool = False) -> Block:
    """Translate the guest code at ``pc`` into one IR block.

    ``fetch(addr, size)`` reads code (little-endian) and raises if it cannot; a raise
    on the first instruction propagates, a later one ends the block before it."""
    block = Block(pc, flags)
    ctx = DisasContext(block, inline_atomics)
    b = ctx.b
    page_end = (pc | (PAGE_SIZE - 1)) + 1
    decode = DECODE
    cur = pc
    n = 0
    while True:
        try:
            insn = fetch(cur, 4)
        except Exception:
            if n == 0:
                raise
            break
        b.insn_start(cur)
        ctx.pc = cur
        ctx.insn = insn
        ctx.next_pc = cur + 4
        if not decode(ctx, insn):
            ctx.undefined()
        n += 1
        cur += 4
        if ctx.end or n >= max_insns or cur >= page_end:
            break
    if not ctx.end:
        b.goto_pc(cur)
    block.guest_size = cur - pc
    block.n_insns = n
    return block


__all__ = ["DECODE", "translate_block"]
