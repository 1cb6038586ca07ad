"""The A64 decode table: it builds, words reach the right pattern with the right
fields, reserved encodings are refused, and the immediate expanders are exact."""

from __future__ import annotations

import pytest

from pemu.accel.tcg.ir import Block
from pemu.target.aarch64.context import DisasContext
from pemu.target.aarch64.insn_dp import decode_bit_masks
from pemu.target.aarch64.insn_fp import fp_immediate
from pemu.target.aarch64.translate import DECODE


@pytest.mark.parametrize("word, name, fields", [
    (0x8B020020, "ADDSUB_shift", {"sf": 1, "op": 0, "s": 0, "rm": 2, "rn": 1, "rd": 0}),
    (0xF1000C3F, "ADDSUB_imm", {"sf": 1, "op": 1, "s": 1, "imm": 3, "rn": 1, "rd": 31}),
    (0x17FFFFFF, "B_imm", {"op": 0, "imm": -1}),  # b .-4: a signed field
    (0x54FFFFE1, "B_cond", {"imm": -1, "cond": 1}),
    (0x10000020, "ADR", {"rd": 0, "adr_imm": 4}),  # adr x0, .+4: immhi:immlo
    (0x70000000, "ADR", {"rd": 0, "adr_imm": 3}),  # immlo only
    (0xF9400421, "LDST_uimm", {"size": 3, "v": 0, "opc": 1, "imm": 1, "rn": 1, "rt": 1}),
    (0xA9BF7BFD, "LDST_pair", {"opc": 2, "idx": 3, "l": 0, "imm": -2, "rt2": 30, "rn": 31,
                               "rt": 29}),  # stp x29, x30, [sp, #-16]!
    (0xC85F7C20, "LDST_excl", {"size": 3, "l": 1, "rs": 31, "rn": 1, "rt": 0}),
    (0xD503233F, "HINT", {"op": 0x19}),  # paciasp
    (0xD53B4200, "MRS", {"rt": 0}),
    (0xD4000001, "SVC", {"imm": 0}),
    (0x4E209C00, "SIMD_3SAME", {"q": 1, "u": 0, "size": 0, "opcode": 0x13}),
    (0x1E601000, "FP_IMM", {"type": 1, "imm8": 0}),  # fmov d0, #2.0
])
def test_words_decode_to_their_pattern(word: int, name: str, fields: dict) -> None:
    found = DECODE.decode(word)
    assert found is not None
    pattern, args = found
    assert pattern.name == name
    assert {k: getattr(args, k) for k in fields} == fields


@pytest.mark.parametrize("word", [
    0x00000000,  # UDF #0
    0xD4A00001,  # an unallocated exception-generation form
    0x13800000 | 1 << 22,  # EXTR with sf=0 and N=1
    0x9240FC00,  # AND (imm) with N=1 imms=111111: all ones is reserved
])
def test_unallocated_words_reach_no_pattern_or_are_refused(word: int) -> None:
    ctx = DisasContext(Block(0x1000, 0))
    ctx.insn = word
    assert not DECODE(ctx, word)


def test_decode_bit_masks() -> None:
    # N=1, imms=000111, immr=0: eight ones in a 64-bit element
    assert decode_bit_masks(1, 0b000111, 0, True, 64)[0] == 0xFF
    # N=0, imms=111100 (2-bit elements), one bit set: 0x5555...
    assert decode_bit_masks(0, 0b111100, 0, True, 64)[0] == 0x5555_5555_5555_5555
    # rotated: immr=1 moves the run to the top bit
    assert decode_bit_masks(1, 0b000000, 1, True, 64)[0] == 1 << 63
    assert decode_bit_masks(1, 0b111111, 0, True, 64) is None  # all ones: reserved
    assert decode_bit_masks(0, 0b111111, 0, True, 32) is None


@pytest.mark.parametrize("imm8, t, bits", [
    (0x70, 1, 0x3FF0_0000_0000_0000), (0x00, 1, 0x4000_0000_0000_0000),
    (0xF0, 1, 0xBFF0_0000_0000_0000), (0x70, 0, 0x3F80_0000), (0x60, 0, 0x3F00_0000),
])
def test_fp_immediates(imm8: int, t: int, bits: int) -> None:
    assert fp_immediate(imm8, t) == bits
