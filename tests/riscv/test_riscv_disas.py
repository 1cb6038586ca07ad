"""The -d in_asm disassembler: capstone where it can, raw words where it cannot."""

from __future__ import annotations

import struct

from pemu.target.riscv.disas import disassemble


def test_mixed_lengths_and_unknown_words() -> None:
    code = struct.pack("<IHI", 0x00A50533, 0x0505, 0x20B54533) + struct.pack("<I", 0x00000073)
    lines = disassemble(code, 0x10000)
    assert lines == [
        "0x10000:  00a50533  add a0, a0, a0",
        "0x10004:      0505  c.addi a0, 1",
        "0x10006:  20b54533  .insn 4, 0x20b54533",  # sh2add: Zba is unknown to capstone 5
        "0x1000a:  00000073  ecall",
    ]


def test_truncated_tail_is_dropped() -> None:
    assert disassemble(struct.pack("<H", 0x0533), 0x2000) == []
    lines = disassemble(struct.pack("<HB", 0x0505, 0x13), 0x2000)
    assert lines == ["0x2000:      0505  c.addi a0, 1"]
