"""RISC-V 64 frontend: guest instructions -> TCG IR blocks.

A block is a run of instructions on one guest page, starting at ``pc``, that ends at
the first control transfer, trap, fence.i, after ``max_insns`` instructions, or at the
end of the page (a 4-byte instruction straddling the page end may be the last one).
Decoding is the tables of riscv_decode.py (32-bit and 16-bit compressed), built into
decoders at import (pemu/target/decode); the handlers are the HANDLERS of the
insn_*.py.  A word's decoding is memoised by the word (``Decoder.words``, read inline
here): the handlers, which decide by the hart's state whether they take it, run at
every translation.  A word no pattern takes, or whose handlers refuse it (the hart lacks the
extension, a reserved field value), is an illegal instruction.
"""

from __future__ import annotations

import types
from collections.abc import Callable

from pemu.accel.tcg.ir import Block
from pemu.target.decode import Args, build_decoder
from pemu.target.riscv import (
    insn_atomic,
    insn_cbo,
    insn_fp,
    insn_int,
    insn_system,
    insn_vector,
)
from pemu.target.riscv.context import FLAG_PRIV_MASK, DisasContext
from pemu.target.riscv.debug_triggers import TRIGGER_EXEC
from pemu.target.riscv.isa import DEFAULT_ISA, RiscvIsa
from pemu.target.riscv.riscv_decode import RV_DECODE, RVC_DECODE

PAGE_SIZE = 4096
Fetch = Callable[[int, int], int]

__all__ = ["DECODE_16", "DECODE_32", "FLAG_PRIV_MASK", "translate_block", "insn_length"]


def trans_ILLEGAL(ctx: DisasContext, a: Args) -> None:
    """An encoding the ISA reserves explicitly (inside an overlap group, so that the
    patterns after it do not take it)."""
    ctx.illegal()


_HANDLERS = types.SimpleNamespace(
    trans_ILLEGAL=trans_ILLEGAL,
    **{f"trans_{name}": handler
       for module in (insn_int, insn_fp, insn_atomic, insn_system, insn_cbo, insn_vector)
       for name, handler in module.HANDLERS.items()})
DECODE_32 = build_decoder(RV_DECODE, _HANDLERS, source="pemu/target/riscv/riscv_decode.py")
DECODE_16 = build_decoder(RVC_DECODE, _HANDLERS, width=16,
                          source="pemu/target/riscv/riscv_decode.py (RVC)")


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
                    break_pcs: frozenset[int] = frozenset(), host_cas: bool = False,
                    pause_ends_turn: bool = False) -> Block:
    """Translate the guest code at ``pc`` into one IR block.

    ``fetch(addr, size)`` reads code (little-endian) and raises if it cannot; a raise
    on the first instruction propagates, a later one ends the block before it.
    ``inline_atomics``: emit the A extension as IR loads and stores (only where no
    other thread runs guest code: see insn_atomic.py).  ``isa``: the hart's extensions;
    the encodings of the others are illegal instructions.  ``break_pcs``: pcs an
    execute trigger watches; each such instruction first calls ``TRIGGER_EXEC``.
    ``host_cas``: harts run on parallel threads (MTTCG): AMOs and SC end in a host
    compare-and-swap (insn_atomic.py).  ``pause_ends_turn``: harts take turns on one
    thread (system mode, ``thread=single``): ``pause`` ends the hart's turn.
    """
    block = Block(pc, flags)
    ctx = DisasContext(block, inline_atomics)
    ctx.host_cas = host_cas
    ctx.pause_ends_turn = pause_ends_turn
    ctx.vlenb = isa.vlenb
    ctx.elen = isa.elen
    ctx.ext = isa.extensions
    b = ctx.b
    page_end = (pc | (PAGE_SIZE - 1)) + 1
    # the decoders' memos of decoded words, read here rather than through a call per
    # instruction (Decoder.__call__, inline): most words were decoded before
    words_32, words_16 = DECODE_32.words, DECODE_16.words
    last_word_at = page_end - 4
    cur = pc
    n = 0
    while True:
        try:
            if cur <= last_word_at:  # (the common case, inline: no call)
                insn = fetch(cur, 4)
                length = 4 if insn & 3 == 3 else 2
                if length == 2:
                    insn &= 0xFFFF
            else:
                insn, length = _fetch_insn(fetch, cur)
        except Exception:
            if n == 0:
                raise
            break
        b.insn_start(cur)
        if cur in break_pcs:
            b.call(TRIGGER_EXEC, [], [ctx.pc_value(cur)])
        ctx.pc = cur
        ctx.insn = insn
        ctx.next_pc = cur + length
        if length == 4:
            found = words_32.get(insn) or DECODE_32.decoded(insn)
        else:
            found = words_16.get(insn) or DECODE_16.decoded(insn)
        for handler, fields in found:
            if handler(ctx, fields) is not False:
                break
        else:  # no pattern, or every handler refused the word
            ctx.illegal()
        n += 1
        cur += length
        if ctx.end or n >= max_insns or cur >= page_end:
            break
    if not ctx.end:
        b.goto_pc(cur)
    block.guest_size = cur - pc
    block.n_insns = n
    return block
