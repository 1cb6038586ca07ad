"""RISC-V 64 frontend: guest instructions -> TCG IR blocks.

A block is a run of instructions on one guest page, starting at ``pc``, that ends at
the first control transfer, trap, fence.i, after ``max_insns`` instructions, or at the
end of the page (a 4-byte instruction straddling the page end may be the last one).
Decoding is a table lookup on the major opcode (bits 6:2); the per-extension emitters
(insn_*.py) use further dicts on funct fields.  Compressed instructions are expanded
to their 32-bit form (rvc.py) and translated through the same tables.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.accel.tcg.ir import Block
from pemu.target.riscv import rvc
from pemu.target.riscv.context import FLAG_PRIV_MASK, DisasContext, imm
from pemu.target.riscv.debug_triggers import TRIGGER_EXEC
from pemu.target.riscv.insn_atomic import trans_amo
from pemu.target.riscv.insn_fp import trans_fma, trans_load_fp, trans_op_fp, trans_store_fp
from pemu.target.riscv.insn_int import (
    int_tables,
    trans_auipc,
    trans_branch,
    trans_jal,
    trans_jalr,
    trans_load,
    trans_lui,
    trans_op,
    trans_op32,
    trans_op_imm,
    trans_op_imm32,
    trans_store,
)
from pemu.target.riscv.insn_system import trans_misc_mem, trans_system
from pemu.target.riscv.insn_vector import trans_vector
from pemu.target.riscv.isa import DEFAULT_ISA, RiscvIsa

PAGE_SIZE = 4096
Fetch = Callable[[int, int], int]
Emitter = Callable[[DisasContext, int], None]

__all__ = ["FLAG_PRIV_MASK", "translate_block", "insn_length"]


def _illegal(ctx: DisasContext, insn: int) -> None:
    ctx.illegal()


# major opcode (insn >> 2 & 31) -> emitter
_MAJOR: list[Emitter] = [_illegal] * 32
for _opcode, _emit in {
    0x03: trans_load, 0x07: trans_load_fp, 0x0F: trans_misc_mem, 0x13: trans_op_imm,
    0x17: trans_auipc, 0x1B: trans_op_imm32, 0x23: trans_store, 0x27: trans_store_fp,
    0x2F: trans_amo, 0x33: trans_op, 0x37: trans_lui, 0x3B: trans_op32,
    0x43: trans_fma, 0x47: trans_fma, 0x4B: trans_fma, 0x4F: trans_fma,
    0x53: trans_op_fp, 0x63: trans_branch, 0x67: trans_jalr, 0x6F: trans_jal,
    0x73: trans_system, 0x57: trans_vector,
    0x77: trans_vector,  # OP-VE: the vector crypto extensions (Zvkned)
}.items():
    _MAJOR[_opcode >> 2] = _emit


def insn_length(first_halfword: int) -> int:
    """2 for compressed instructions, 4 otherwise (longer encodings are not supported)."""
    return 4 if first_halfword & 3 == 3 else 2


def _fetch_insn(fetch: Fetch, pc: int) -> tuple[int, int]:
    """(instruction bits, length); fetches the second half separately at a page end."""
    if (pc & (PAGE_SIZE - 1)) <= PAGE_SIZE - 4:
        word = fetch(pc, 4)
        return (word, 4) if word & 3 == 3 else (word & 0xFFFF, 2)
    low = fetch(pc, 2)
    if low & 3 != 3:
        return low, 2
    return low | fetch(pc + 2, 2) << 16, 4


def translate_block(pc: int, flags: int, fetch: Fetch, *, max_insns: int = 256,
                    inline_atomics: bool = False, isa: RiscvIsa = DEFAULT_ISA,
                    break_pcs: frozenset[int] = frozenset(), host_cas: bool = False) -> Block:
    """Translate the guest code at ``pc`` into one IR block.

    ``fetch(addr, size)`` reads code (little-endian) and raises if it cannot; a raise
    on the first instruction propagates, a later one ends the block before it.
    ``inline_atomics``: emit the A extension as IR loads and stores (only where no
    other thread runs guest code: see insn_atomic.py).  ``isa``: the hart's extensions;
    the encodings of the others are illegal instructions.  ``break_pcs``: pcs an
    execute trigger watches; each such instruction first calls ``TRIGGER_EXEC``.
    ``host_cas``: harts run on parallel threads (MTTCG): AMOs and SC end in a host
    compare-and-swap (insn_atomic.py).
    """
    block = Block(pc, flags)
    ctx = DisasContext(block, inline_atomics)
    ctx.host_cas = host_cas
    ctx.int_tables = int_tables(isa.extensions)
    ctx.vlenb = isa.vlenb
    ctx.elen = isa.elen
    ctx.ext = isa.extensions
    b = ctx.b
    page_end = (pc | (PAGE_SIZE - 1)) + 1
    major = _MAJOR
    expand = rvc.expander(isa.extensions)
    cur = pc
    n = 0
    while True:
        try:
            insn, length = _fetch_insn(fetch, cur)
        except Exception:
            if n == 0:
                raise
            break
        b.insn_start(cur)
        if cur in break_pcs:
            b.call(TRIGGER_EXEC, [], [imm(cur)])
        ctx.pc = cur
        ctx.insn = insn
        ctx.next_pc = cur + length
        word = insn if length == 4 else expand(insn)
        if word:
            major[(word >> 2) & 31](ctx, word)
        else:
            ctx.illegal()  # reserved compressed encoding
        n += 1
        cur += length
        if ctx.end or n >= max_insns or cur >= page_end:
            break
    if not ctx.end:
        b.goto_pc(cur)
    block.guest_size = cur - pc
    block.n_insns = n
    return block
