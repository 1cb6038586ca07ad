"""The decoders' memo of decoded words (pemu/target/decode ``Decoder.words``).

A word's decoding is kept by the whole word and reused by every later translation, on
every hart.  It may hold only what the word alone decides (the matching patterns and
their fields): whether a handler takes the word (the hart's extensions, the privilege
level, mstatus.FS, virtualisation) is asked again at every translation.  These tests
check both halves: memoised decoding of real code equals the decision tree's, and the
translation of a word whose legality or IR depends on the hart's state is, after that
word was translated under every other state, what it is with an empty memo.
"""

from __future__ import annotations

import struct

import pytest
from rvtest_harness import executable_segment

from pemu.accel.tcg.opcodes import CALL
from pemu.guests import guest_file
from pemu.target.decode import decodetree
from pemu.target.riscv.helpers import RAISE_EXCEPTION
from pemu.target.riscv.insn_hyp import register_hyp_instructions
from pemu.target.riscv.insn_priv import register_privileged_instructions
from pemu.target.riscv.isa import DEFAULT_ISA, RiscvIsa, parse_cpu
from pemu.target.riscv.priv import FLAG_FS_CLEAN, FLAG_FS_OFF, FLAG_VIRT
from pemu.target.riscv.translate import DECODE_16, DECODE_32, translate_block

BUSYBOX = guest_file("riscv64/busybox")
PRV_U, PRV_S, PRV_M = 0, 1, 3

MAX = parse_cpu("max")
NO_ZBB = parse_cpu("rv64,zbb=off")
NO_ZCB = parse_cpu("max,zcb=off")

# word -> the hart states (ISA, block flags) it is translated under; the IR differs
# between some of them (checked), so a memo that kept one state's answer would fail
STATE_DEPENDENT: dict[str, tuple[int, int, list[tuple[RiscvIsa, int]]]] = {
    # Zbb's clz: legal with Zbb only
    "clz a0, a1": (0x6005_9513, 4, [(DEFAULT_ISA, 0), (NO_ZBB, 0)]),
    # one overlap group: packw (Zbkb) takes it first, zext.h (Zbb) without Zbkb,
    # illegal with neither
    "zext.h a0, a1": (0x0805_C53B, 4, [(MAX, 0), (DEFAULT_ISA, 0), (NO_ZBB, 0)]),
    # F/D: illegal with FS Off, marks FS Dirty with FS Clean
    "fadd.d fa0, fa1, fa2": (0x02C5_F553, 4, [(DEFAULT_ISA, PRV_M),
                                              (DEFAULT_ISA, PRV_M | FLAG_FS_OFF),
                                              (DEFAULT_ISA, PRV_M | FLAG_FS_CLEAN)]),
    # privileged: illegal in U-mode
    "mret": (0x3020_0073, 4, [(DEFAULT_ISA, PRV_M), (DEFAULT_ISA, PRV_U)]),
    # H: hlv.d from HS-mode loads, from VS-mode it is a virtual instruction
    "hlv.d a0, (a1)": (0x6C05_C573, 4, [(MAX, PRV_S), (MAX, PRV_S | FLAG_VIRT),
                                         (MAX, PRV_U)]),
    # Zcb's c.mul: a compressed word whose legality is the extension's
    "c.mul a0, a1": (0x9D4D, 2, [(MAX, 0), (NO_ZCB, 0)]),
}


def _translate(word: int, length: int, isa: RiscvIsa, flags: int) -> str:
    """The IR of a one-instruction block of ``word`` at 0x1000."""
    def fetch(addr: int, size: int) -> int:
        if addr != 0x1000:
            raise IndexError(addr)
        return word if length == 4 else word | 0x0001_0000  # (the next halfword)
    block = translate_block(0x1000, flags, fetch, max_insns=1, isa=isa)
    return f"{block.guest_size} {block.n_insns}\n{block.dump()}"


def _cold(word: int, length: int, isa: RiscvIsa, flags: int) -> str:
    DECODE_32.words.clear()
    DECODE_16.words.clear()
    return _translate(word, length, isa, flags)


@pytest.mark.parametrize("name", sorted(STATE_DEPENDENT))
def test_a_memoised_word_is_translated_as_the_hart_says(name: str) -> None:
    register_privileged_instructions()
    register_hyp_instructions()
    word, length, states = STATE_DEPENDENT[name]
    cold = [_cold(word, length, isa, flags) for isa, flags in states]
    assert len(set(cold)) > 1, "the states chosen do not change this word's IR"
    # every state after every other, both ways round, the memo kept throughout
    for order in (list(range(len(states))), list(reversed(range(len(states))))):
        for _ in range(2):
            for i in order:
                isa, flags = states[i]
                assert _translate(word, length, isa, flags) == cold[i], (name, i)
    memo = DECODE_32.words if length == 4 else DECODE_16.words
    assert word in memo  # (the warm translations above did use the memo)


def test_illegal_and_legal_of_one_word_alternate() -> None:
    """The plainest case of the above, by its effect: clz traps without Zbb."""
    word = STATE_DEPENDENT["clz a0, a1"][0]
    for _ in range(3):
        for isa, traps in ((NO_ZBB, True), (DEFAULT_ISA, False)):
            block = translate_block(0x1000, 0, lambda a, s: word, max_insns=1, isa=isa)
            raised = any(op.opc is CALL and op.aux is RAISE_EXCEPTION for op in block.ops)
            assert raised == traps


def _tree_decoding(decoder: decodetree.Decoder, insn: int) -> list[tuple[object, dict]]:
    """The decision tree's answer (no memo): each matching pattern's handler and fields."""
    return [(decoder.handlers[p.name], p.values(insn)) for p in decoder.candidates(insn)]


def _memo_decoding(decoder: decodetree.Decoder, insn: int) -> list[tuple[object, dict]]:
    return [(handler, fields.fields()) for handler, fields in decoder.decoded(insn)]


def test_memoised_decoding_of_real_code_is_the_decision_tree_s() -> None:
    if not BUSYBOX.exists():
        pytest.skip(f"{BUSYBOX} is missing (see the shared guests README)")
    code = executable_segment(BUSYBOX.read_bytes())[1][:256 << 10]
    halfwords = struct.unpack(f"<{len(code) // 2}H", code[:len(code) // 2 * 2])
    checked = 0
    for i in range(len(halfwords) - 1):  # every halfword boundary: instructions, and not
        low = halfwords[i]
        if low & 3 == 3:
            decoder, insn = DECODE_32, low | halfwords[i + 1] << 16
        else:
            decoder, insn = DECODE_16, low
        first = _memo_decoding(decoder, insn)
        assert first == _tree_decoding(decoder, insn), hex(insn)
        assert decoder.decoded(insn) is decoder.words[insn]  # a hit: the same answer
        checked += 1
    assert checked > 100_000


def test_the_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """At its bound the memo starts afresh (in place: the translator holds it), and
    decoding stays right."""
    monkeypatch.setattr(decodetree, "MAX_WORDS", 8)
    memo = DECODE_32.words
    memo.clear()
    words = [0x0000_0013 | rd << 7 | rs1 << 15 for rd in range(1, 6) for rs1 in range(1, 6)]
    for insn in words + words:
        assert _memo_decoding(DECODE_32, insn) == _tree_decoding(DECODE_32, insn)
        assert len(memo) <= 8
    assert DECODE_32.words is memo
