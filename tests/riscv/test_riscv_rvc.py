"""RVC expansion checked against GNU objdump over every 16-bit encoding.

objdump decodes each compressed halfword and, separately, our 32-bit expansion of it;
the two must name the same instruction with the same operands (branch and jump
targets compared as offsets from the instruction), and the encodings we call reserved
must be the ones objdump cannot decode.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from pemu.target.riscv import rvc

OBJDUMP = "riscv64-linux-gnu-objdump"
_LINE = re.compile(r"\s*([0-9a-f]+):\s+[0-9a-f]+\s+(\S+)\s*([^#<]*)")
_PC_RELATIVE = {"j", "jal", "beqz", "bnez", "beq", "bne"}


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
    legal = [h for h in halfwords if rvc.expand(h)]
    (work / "e.bin").write_bytes(b"".join(struct.pack("<I", rvc.expand(h)) for h in legal))
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


def test_hints_expand_to_instructions_without_effect(decoded: tuple[list, dict, dict]) -> None:
    _, compressed, expanded = decoded
    for h, (_, mnemonic, operands) in compressed.items():
        if not mnemonic.startswith("c.") or h not in expanded:
            continue
        _, exp_mnemonic, exp_operands = expanded[h]
        ops = exp_operands.split(",")
        writes_zero = ops[0] == "zero" or exp_mnemonic == "nop"
        shift_by_zero = exp_mnemonic in ("sll", "srl", "sra", "slli", "srli", "srai") \
            and ops[-1] == "0x0"
        assert writes_zero or shift_by_zero, f"0x{h:04x} {mnemonic} {operands}"


def test_reserved_encodings(decoded: tuple[list, dict, dict]) -> None:
    halfwords, compressed, expanded = decoded
    reserved = {h for h in halfwords if h not in expanded}
    unknown_to_objdump = {h for h, row in compressed.items() if row[1].startswith(".")}
    # objdump accepts c.addi16sp with a zero immediate, which the spec reserves, and
    # names the all-zero halfword "unimp" (defined to be illegal)
    assert reserved - unknown_to_objdump == {0x0000, 0x6101}
    assert unknown_to_objdump <= reserved
