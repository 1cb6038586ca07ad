"""The RVC decode table checked against GNU objdump over every 16-bit encoding.

A compressed pattern names the 32-bit instruction it stands for and gives its fields,
so the 32-bit table encodes that instruction (``_expand``).  objdump decodes each
compressed halfword and, separately, that 32-bit word; the two must name the same
instruction with the same operands (branch and jump targets compared as offsets from
the instruction), and the encodings we call reserved must be the ones objdump cannot
decode.  (objdump's rv64 has no Zcb or Zcmop: their C_ patterns count as reserved here.)
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from pemu.target.riscv.translate import DECODE_16, DECODE_32

OBJDUMP = "riscv64-linux-gnu-objdump"
_LINE = re.compile(r"\s*([0-9a-f]+):\s+[0-9a-f]+\s+(\S+)\s*([^#<]*)")
_PC_RELATIVE = {"j", "jal", "beqz", "bnez", "beq", "bne"}
_PATTERNS_32 = {p.name: p for p in DECODE_32.patterns}
ILLEGAL = 0  # not an instruction: its low bits are not 11


def _expand(halfword: int) -> int:
    """The 32-bit instruction the RVC table decodes ``halfword`` as, for a hart with C
    alone; ILLEGAL for a reserved encoding."""
    for pattern in DECODE_16.candidates(halfword):
        if pattern.name.startswith("C_"):
            continue  # Zcb, Zcmop: extensions beyond C
        if pattern.name == "ILLEGAL":
            return ILLEGAL
        return _PATTERNS_32[pattern.name].encode(pattern.args(halfword).__dict__)
    return ILLEGAL


def _objdump(path: Path) -> list[tuple[int, str, str]]:
    if shutil.which(OBJDUMP) is None:
        pytest.skip(f"{OBJDUMP} (binutils-riscv64-linux-gnu) is not installed")
    out = subprocess.run([OBJDUMP, "-D", "-b", "binary", "-m", "riscv:rv64", str(path)],
                         capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        m = _LINE.match(line)
        if m:
            rows.append((int(m.group(1), 16), m.group(2), m.group(3).strip()))
    return rows


def _normalise(addr: int, mnemonic: str, operands: str) -> str:
    ops = operands.split(",") if operands else []
    if mnemonic in _PC_RELATIVE and ops:
        ops[-1] = str(int(ops[-1], 16) - addr)  # target -> offset
    if mnemonic == "add" and len(ops) == 3 and ops[2] == "0":
        mnemonic, ops = "mv", ops[:2]  # objdump's spelling of c.addi rd, 0
    if mnemonic == "mv":
        mnemonic, ops = "add", [ops[0], "zero", ops[1]]
    return f"{mnemonic} {','.join(ops)}"


@pytest.fixture(scope="module")
def decoded(tmp_path_factory: pytest.TempPathFactory) -> tuple[list, dict, dict]:
    work = tmp_path_factory.mktemp("rvc")
    halfwords = [h for h in range(1 << 16) if h & 3 != 3]
    (work / "c.bin").write_bytes(b"".join(struct.pack("<H", h) for h in halfwords))
    compressed = dict(zip(halfwords, _objdump(work / "c.bin"), strict=True))
    legal = [h for h in halfwords if _expand(h)]
    (work / "e.bin").write_bytes(b"".join(struct.pack("<I", _expand(h)) for h in legal))
    expanded = dict(zip(legal, _objdump(work / "e.bin"), strict=True))
    return halfwords, compressed, expanded


def test_expansions_match_objdump(decoded: tuple[list, dict, dict]) -> None:
    halfwords, compressed, expanded = decoded
    mismatches = []
    checked = 0
    for h, (addr, mnemonic, operands) in compressed.items():
        if h not in expanded or mnemonic.startswith((".", "c.")):
            # reserved (checked below) or a HINT that objdump shows in c. form
            continue
        mine = _normalise(*expanded[h])
        theirs = _normalise(addr, mnemonic, operands)
        checked += 1
        if mine != theirs:
            mismatches.append(f"0x{h:04x}: objdump {theirs!r}, expansion {mine!r}")
    assert not mismatches, "\n".join(mismatches[:20])
    assert checked > 40_000  # nearly every encoding is a real instruction


def _hints() -> dict[int, str]:
    """Every RV64C HINT encoding (RISC-V unprivileged spec, "RVC HINT Instructions"), built
    from the encoding rules, not from any decoder: halfword -> the instruction it is."""
    def ci(quadrant: int, f3: int, b12: int, rd: int, low: int) -> int:
        return f3 << 13 | b12 << 12 | rd << 7 | low << 2 | quadrant

    hints: dict[int, str] = {}
    for rd in range(32):
        for imm in range(64):
            b12, low = imm >> 5, imm & 31
            if rd == 0:
                if imm:
                    hints[ci(1, 0b000, b12, 0, low)] = "c.nop"  # c.nop with imm != 0
                    hints[ci(1, 0b011, b12, 0, low)] = "c.lui"  # c.lui x0, imm != 0
                hints[ci(1, 0b010, b12, 0, low)] = "c.li"  # c.li x0
                hints[ci(2, 0b000, b12, 0, low)] = "c.slli"  # c.slli x0
            elif imm == 0:
                hints[ci(1, 0b000, 0, rd, 0)] = "c.addi"  # c.addi rd, 0
                hints[ci(2, 0b000, 0, rd, 0)] = "c.slli"  # c.slli64 rd
        if rd:  # here rd is rs2
            hints[ci(2, 0b100, 0, 0, rd)] = "c.mv"  # c.mv x0, rs2
            hints[ci(2, 0b100, 1, 0, rd)] = "c.add"  # c.add x0, rs2
    for rdp in range(8):  # shifts by 0 of x8-x15 (c.srli64, c.srai64)
        hints[ci(1, 0b100, 0, 0b00 << 3 | rdp, 0)] = "c.srli"
        hints[ci(1, 0b100, 0, 0b01 << 3 | rdp, 0)] = "c.srai"
    return hints


HINT_COUNTS = {"c.nop": 63, "c.addi": 31, "c.li": 64, "c.lui": 63, "c.slli": 95, "c.srli": 8,
               "c.srai": 8, "c.mv": 31, "c.add": 31}
HINT_BASE = {"c.nop": "addi", "c.addi": "addi", "c.li": "addi", "c.lui": "lui",
             "c.slli": "slli", "c.srli": "srli", "c.srai": "srai", "c.mv": "add", "c.add": "add"}


def _base_op(word: int) -> str | None:
    """The few RV64I instructions a HINT may stand for; None for anything else."""
    opcode, f3, top6 = word & 0x7F, word >> 12 & 7, word >> 26
    if opcode == 0x37:
        return "lui"
    if opcode == 0x13 and f3 == 0:
        return "addi"
    if opcode == 0x13 and f3 == 1 and top6 == 0:
        return "slli"
    if opcode == 0x13 and f3 == 5 and top6 in (0, 0x10):
        return "srai" if top6 else "srli"
    if opcode == 0x33 and f3 == 0 and word >> 25 == 0:
        return "add"
    return None


def _without_effect(word: int) -> bool:
    """Writes x0 (ignored), or adds/shifts a register into itself by zero."""
    op, rd, rs1 = _base_op(word), word >> 7 & 31, word >> 15 & 31
    if op is None:  # loads, stores, jumps, CSRs, ... all have effects or may trap
        return False
    if rd == 0:
        return True
    if op == "addi":
        return rd == rs1 and word >> 20 == 0
    if op in ("slli", "srli", "srai"):
        return rd == rs1 and word >> 20 & 0x3F == 0
    return False


def test_hints_decode_to_instructions_without_effect() -> None:
    hints = _hints()
    assert Counter(hints.values()) == HINT_COUNTS
    assert len(hints) == 394
    wrong = []
    for h, kind in sorted(hints.items()):
        word = _expand(h)
        if word == ILLEGAL or _base_op(word) != HINT_BASE[kind] or not _without_effect(word):
            wrong.append(f"0x{h:04x} ({kind}) -> 0x{word:08x}")
    assert not wrong, "\n".join(wrong[:20])


def test_hints_are_what_objdump_calls_hints(decoded: tuple[list, dict, dict]) -> None:
    _, compressed, expanded = decoded
    shown = {h for h, (_, mnemonic, _) in compressed.items() if mnemonic.startswith("c.")}
    # objdump spells c.addi rd, 0 as a plain addi; the test above covers those too
    assert shown == {h for h, kind in _hints().items() if kind != "c.addi"}
    for h in shown:
        _, mnemonic, operands = expanded[h]
        ops = operands.split(",")
        writes_zero = ops[0] == "zero" or mnemonic == "nop"
        shift_by_zero = mnemonic in ("sll", "srl", "sra", "slli", "srli", "srai") \
            and ops[-1] == "0x0" and ops[0] == ops[1]
        assert writes_zero or shift_by_zero, f"0x{h:04x} {compressed[h]} -> {expanded[h]}"


def test_reserved_encodings(decoded: tuple[list, dict, dict]) -> None:
    halfwords, compressed, expanded = decoded
    reserved = {h for h in halfwords if h not in expanded}
    unknown_to_objdump = {h for h, row in compressed.items() if row[1].startswith(".")}
    # objdump accepts c.addi16sp with a zero immediate, which the spec reserves, and
    # names the all-zero halfword "unimp" (defined to be illegal)
    assert reserved - unknown_to_objdump == {0x0000, 0x6101}
    assert unknown_to_objdump <= reserved
