"""The decode-table mechanism (pemu/target/decode): parsing, checks, the decision tree."""

from __future__ import annotations

import random

import pytest

from pemu.target.decode import DecodeError, build_decoder, parse_table
from pemu.target.decode.decodetree import overlap

TABLE = """
%simm   5:s7 0:3          # two pieces, signed, first the most significant
@r      ........ ........ rm:4 rn:4 rd:4 ....
ADD     00000001 00000000 .... .... .... 0000 @r
SUB     00000001 00000000 .... .... .... 0001 @r
LDI     00000010 ......  imm:s9 . rd:4 ....  # signed inline field
MOVK    00000011 hw:2 ...... val:16  shift=16
SPLIT   00000100 00000000 ........ ........ %simm  # %simm: bits 11:5 and 2:0
{
  NOP     00000101 00000000 00000000 00000000
  HINT    00000101 00000000 0000000 op:9
}
"""


class Handlers:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict]] = []

    def _record(self, name, a):
        self.seen.append((name, a.fields()))

    def trans_ADD(self, ctx, a): self._record("ADD", a)
    def trans_SUB(self, ctx, a): self._record("SUB", a)
    def trans_LDI(self, ctx, a): self._record("LDI", a)
    def trans_MOVK(self, ctx, a): self._record("MOVK", a)
    def trans_SPLIT(self, ctx, a): self._record("SPLIT", a)

    def trans_NOP(self, ctx, a):
        return False  # refuses: the group's next pattern is tried

    def trans_HINT(self, ctx, a):
        if a.op == 511:
            return False  # a reserved value: unallocated
        self._record("HINT", a)


def _decoder():
    h = Handlers()
    return build_decoder(TABLE, h), h


def test_formats_and_fields_are_extracted() -> None:
    dec, h = _decoder()
    assert dec(None, 0x0100_ABC0)
    assert h.seen[-1] == ("ADD", {"rm": 0xA, "rn": 0xB, "rd": 0xC})
    assert dec(None, 0x0100_1231)
    assert h.seen[-1] == ("SUB", {"rm": 1, "rn": 2, "rd": 3})


def test_signed_fields_are_sign_extended() -> None:
    dec, h = _decoder()
    # imm:s9 at bits 17..9, rd at 7..4; all ones = -1
    assert dec(None, 0x0200_0000 | 0x1FF << 9 | 5 << 4)
    assert h.seen[-1] == ("LDI", {"imm": -1, "rd": 5})
    assert dec(None, 0x0200_0000 | 0x0FF << 9)
    assert h.seen[-1] == ("LDI", {"imm": 255, "rd": 0})


def test_a_field_of_two_pieces_and_constants() -> None:
    dec, h = _decoder()
    # %simm: bits 11:5 (signed, high part) then 2:0
    word = 0x0400_0000 | (0b1000000 << 5) | 0b101
    assert dec(None, word)
    assert h.seen[-1] == ("SPLIT", {"simm": -(1 << 9) + 0b101})
    assert dec(None, 0x0300_0000 | 2 << 22 | 0xBEEF)
    assert h.seen[-1] == ("MOVK", {"hw": 2, "val": 0xBEEF, "shift": 16})


def test_overlap_group_tries_in_order_and_handlers_may_refuse() -> None:
    dec, h = _decoder()
    assert dec(None, 0x0500_0000)  # NOP refuses, HINT op=0 takes it
    assert h.seen[-1] == ("HINT", {"op": 0})
    assert not dec(None, 0x0500_01FF)  # HINT refuses too: unallocated
    assert not dec(None, 0xFF00_0000)  # no pattern at all


def test_the_tree_agrees_with_a_linear_scan() -> None:
    patterns = parse_table(TABLE)
    dec, _ = _decoder()
    rng = random.Random(5)
    words = [rng.getrandbits(32) for _ in range(3000)]
    words += [(p.bits | rng.getrandbits(32) & ~p.mask) for p in patterns for _ in range(50)]
    for w in words:
        assert list(dec.candidates(w)) == [p for p in patterns if p.matches(w)], hex(w)


def test_overlaps_outside_a_group_are_refused() -> None:
    with pytest.raises(DecodeError, match="A .*B .*overlap"):
        parse_table("A 0000 ....\nB .... 0000\n", width=8)
    with pytest.raises(DecodeError):
        parse_table("A 0000 1...\nB 0000 1.1.\n", width=8)
    parse_table("A 0000 1...\nB 0000 0...\n", width=8)  # disjoint: fine
    p, q = parse_table("{\nA 0000 ....\nB .... 0000\n}\n", width=8)
    assert overlap(p, q)


@pytest.mark.parametrize("bad", [
    "A 0000 000\n",                      # 7 bits of 8
    "A 0000 00000\n",                    # 9 bits
    "A 0000 x:5\n",                      # field past the width
    "A 0000 .... @nofmt\n",              # unknown format
    "A 0000 .... %nofield\n",            # unknown field
    "@f 1... ....\nA 0... .... @f\n",    # fixed bits disagree with the format
    "@f .... x:4\nA .... 0000 @f\n",     # fixed bits over a format's field
    "%f 0:s2 2:s2\n",                    # sign on a later piece
    "{\n{\n",                            # nested groups
    "}\n",
    "A 0000 0000 ???\n",
    "%f 4:2 <<1 0:2\n",                  # pieces after the modifiers
    "A 0000 .... x=%nofield\n",          # an alias of an unknown field
])
def test_malformed_tables_are_refused(bad: str) -> None:
    with pytest.raises(DecodeError):
        parse_table(bad, width=8)


def test_every_pattern_needs_a_handler() -> None:
    with pytest.raises(DecodeError, match="trans_ handler for: B"):
        build_decoder("A 0000 0000\nB 0000 0001\n", type("H", (), {
            "trans_A": staticmethod(lambda ctx, a: None)}), width=8)


def test_scaled_offset_and_aliased_fields() -> None:
    table = """
%imm    6:s1 0:3 <<2         # an immediate with two implied low zeros
%reg    3:3 +8               # a register of 8..15
LD      1 ....... rd=%reg rs1=%reg imm=%imm base=2
"""
    (ld,) = parse_table(table, width=8)
    assert ld.args(0b1110_1111).fields() == {"rd": 13, "rs1": 13, "imm": -4, "base": 2}
    assert ld.args(0b1100_0011).fields() == {"rd": 8, "rs1": 8, "imm": -20, "base": 2}
    for word in range(0x80, 0x100):
        assert ld.encode(ld.values(word)) == word  # the table as an assembler
    with pytest.raises(ValueError):
        ld.encode({"rd": 8, "rs1": 8, "imm": 2, "base": 2})  # not a multiple of 4
    with pytest.raises(ValueError):
        ld.encode({"rd": 8, "rs1": 9, "imm": 0, "base": 2})  # one field, two values
    with pytest.raises(ValueError):
        ld.encode({"rd": 7, "rs1": 7, "imm": 0, "base": 2})  # below the offset
    with pytest.raises(ValueError):
        ld.encode({"rd": 8, "rs1": 8, "imm": 0, "base": 3})  # a constant differs


def test_the_memo_of_calls_agrees_with_the_tree() -> None:
    """__call__ finds candidates by key bits in a memo: it must run the same pattern,
    with the same fields, as decode() finds through the tree."""
    dec, h = _decoder()
    rng = random.Random(9)
    patterns = parse_table(TABLE)
    words = [rng.getrandbits(32) for _ in range(2000)]
    words += [(p.bits | rng.getrandbits(32) & ~p.mask) for p in patterns for _ in range(50)]
    for w in words:
        h.seen.clear()
        taken = dec(None, w)
        first = dec.decode(w)
        if first is None or first[0].name == "NOP":  # NOP refuses: HINT or nothing
            continue
        assert taken and h.seen == [(first[0].name, first[1].fields())], hex(w)
