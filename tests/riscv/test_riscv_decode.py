"""Decoder coverage: which 32-bit words are legal, compared with GNU objdump, and the
structure of every block the translator produces (``ir.check_block``)."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pemu.accel.tcg.ir import Block, Const, check_block
from pemu.accel.tcg.opcodes import ADD, CALL, GOTO_PC, INSN_START
from pemu.linux_user.vmem import GuestFault
from pemu.target.riscv.helpers import RAISE_EXCEPTION
from pemu.target.riscv.isa import DEFAULT_ISA, RiscvIsa, parse_cpu
from pemu.target.riscv.translate import translate_block

MARCH = "rv64gc_zba_zbb_zbc_zbs_zicsr_zifencei"  # the default -cpu rv64
# every extension pemu has that binutils 2.40 knows (it has no Zicond)
MARCH_MAX = ("rv64gc_zba_zbb_zbc_zbkb_zbkc_zbkx_zbs_zicsr_zifencei_zfh_zknd_zkne_zknh_zksed"
             "_zksh_zawrs_zicbom_zicboz_zicbop")
# what binutils 2.40 does not know of max
# (V: its legality depends on vtype at run time, which a decode-only check cannot see;
# H: its instructions exist only on a system-mode hart, and this decodes user-mode code)
MAX_UNKNOWN_TO_BINUTILS = ("max,zicond=off,zfa=off,zimop=off,zacas=off,zcb=off,zcmop=off,"
                           "v=off,h=off")
_LINE = re.compile(r"\s*[0-9a-f]+:\s+([0-9a-f]{8})\s+(\S+)\s*([^#<]*)")

# Interesting values for the fields that select an operation, so that random words
# land on real instructions often.
_MAJOR = [0x03, 0x07, 0x0F, 0x13, 0x17, 0x1B, 0x23, 0x27, 0x2F, 0x33, 0x37, 0x3B, 0x43, 0x47,
          0x4B, 0x4F, 0x53, 0x63, 0x67, 0x6F, 0x73, 0x0B, 0x2B, 0x57, 0x5B, 0x77, 0x7B]
_FUNCT7 = [0x00, 0x01, 0x04, 0x05, 0x10, 0x14, 0x20, 0x24, 0x30, 0x34, 0x08, 0x09, 0x0C, 0x0D,
           0x2C, 0x2D, 0x50, 0x51, 0x60, 0x61, 0x68, 0x69, 0x70, 0x71, 0x78, 0x79, 0x10, 0x11,
           0x14, 0x15, 0x20, 0x21, 0x02, 0x03, 0x06, 0x07, 0x0A, 0x0B, 0x0E, 0x2E]
_IMM12_HI = [0x000, 0x400, 0x600, 0x280, 0x480, 0x680, 0x6B8, 0x287, 0x080, 0x180, 0x300]


def _interesting_word(rng: random.Random) -> int:
    word = rng.getrandbits(32) | 3
    word = (word & ~0x7F) | rng.choice(_MAJOR)
    choice = rng.random()
    if choice < 0.5:
        word = (word & 0x01FF_FFFF) | rng.choice(_FUNCT7) << 25
    elif choice < 0.7:
        hi = rng.choice(_IMM12_HI)
        word = (word & 0x000F_FFFF) | (hi | rng.getrandbits(6) * (hi != 0x6B8 and hi != 0x287)
                                       * rng.randint(0, 1)) << 20
    if rng.random() < 0.3:  # small register numbers and rm fields
        word &= ~(0x1F << 20)
        word |= rng.randint(0, 3) << 20
    return word


def _is_illegal(block: Block) -> bool:
    """The translation is just 'raise illegal instruction' (not a run-time frm check)."""
    ops = [op for op in block.ops if op.opc is not INSN_START]
    return (len(ops) == 2 and ops[0].opc is CALL and ops[0].aux is RAISE_EXCEPTION
            and ops[0].ins[0] == Const(2))


def _translate_word(word: int, isa: RiscvIsa = DEFAULT_ISA) -> Block:
    def fetch(addr: int, size: int) -> int:
        return (word >> ((addr - 0x1000) * 8)) & ((1 << (size * 8)) - 1)
    block = translate_block(0x1000, 0, fetch, max_insns=1, isa=isa)
    check_block(block)
    return block


def _objdump_words(words: list[int], work: Path, march: str = MARCH) -> list[tuple[str, str]]:
    for tool in ("as", "objdump"):
        if shutil.which(f"riscv64-linux-gnu-{tool}") is None:
            pytest.skip(f"riscv64-linux-gnu-{tool} is not installed")
    (work / "w.s").write_text("".join(f".insn 4, 0x{w:08x}\n" for w in words))
    subprocess.run(["riscv64-linux-gnu-as", f"-march={march}", "-o", str(work / "w.o"),
                    str(work / "w.s")], check=True, capture_output=True)
    out = subprocess.run(["riscv64-linux-gnu-objdump", "-d", str(work / "w.o")],
                         capture_output=True, text=True, check=True).stdout
    rows = [(m.group(2), m.group(3).strip()) for m in map(_LINE.match, out.splitlines()) if m]
    assert len(rows) == len(words)
    return rows


def _objdump_accepts(mnemonic: str, operands: str) -> bool:
    if mnemonic.startswith("."):
        return False
    return "unknown" not in operands  # a reserved rounding mode is illegal to execute


def _exact_fcvt_with_rm(word: int, isa: RiscvIsa) -> bool:
    funct7, rs2, major = word >> 25, (word >> 20) & 31, word & 0x7F
    widen_half = isa.has("zfhmin") and (funct7, rs2) in ((0x20, 2), (0x21, 2))  # fcvt.s/d.h
    return major == 0x53 and (word >> 12) & 7 != 0 and (
        (funct7, rs2) == (0x21, 0) or (funct7 == 0x69 and rs2 in (0, 1)) or widen_half)


@pytest.mark.parametrize(("march", "cpu"), [(MARCH, "rv64"),
                                                  (MARCH_MAX, MAX_UNKNOWN_TO_BINUTILS)])
def test_legality_matches_objdump(march: str, cpu: str, tmp_path: Path) -> None:
    isa = parse_cpu(cpu)
    rng = random.Random(1234)
    words = sorted({_interesting_word(rng) for _ in range(12_000)})
    rows = _objdump_words(words, tmp_path, march)
    mismatches = []
    legal = 0
    for word, (mnemonic, operands) in zip(words, rows, strict=True):
        ours = not _is_illegal(_translate_word(word, isa))
        legal += ours
        if word & 0x707F in (0x000F, 0x100F):
            # fence/fence.i: the spec has implementations ignore the fields objdump checks
            assert ours
            continue
        if _exact_fcvt_with_rm(word, isa):
            # binutils only decodes these with rm=0; the spec (and QEMU) accept any
            # valid rm since the conversion is exact
            assert ours == ((word >> 12) & 7 not in (5, 6))
            continue
        if ours != _objdump_accepts(mnemonic, operands):
            mismatches.append(f"0x{word:08x}: objdump '{mnemonic} {operands}', "
                              f"pemu {'legal' if ours else 'illegal'}")
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches[:30])
    assert legal > 4000  # the generator reaches real instructions


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 0xFFFF_FFFF))
def test_any_word_translates_to_a_valid_block(word: int) -> None:
    block = _translate_word(word)
    assert block.n_insns == 1
    assert block.guest_size == (4 if word & 3 == 3 else 2)


def _memory_fetch(code: bytes, base: int, limit: int | None = None):
    def fetch(addr: int, size: int) -> int:
        end = base + len(code) if limit is None else limit
        if addr < base or addr + size > end:
            raise GuestFault(addr, "x", False)
        off = addr - base
        return int.from_bytes(code[off:off + size], "little")
    return fetch


ADDI = (0x00150513).to_bytes(4, "little")  # addi a0, a0, 1
C_ADDI = (0x0505).to_bytes(2, "little")  # c.addi a0, 1


def test_block_stops_at_page_end() -> None:
    code = ADDI * 2048
    block = translate_block(0x1FF8, 0, _memory_fetch(code, 0x1000))
    check_block(block)
    assert (block.n_insns, block.guest_size) == (2, 8)
    assert block.ops[-1].opc is GOTO_PC and block.ops[-1].aux == 0x2000


def test_straddling_instruction_is_last() -> None:
    code = C_ADDI + ADDI * 1100  # misaligns the 4-byte instructions by 2
    block = translate_block(0x1FF2, 0, _memory_fetch(code, 0x1000))
    assert block.guest_size == 0x2002 - 0x1FF2 and block.ops[-1].aux == 0x2002


def test_fault_on_first_fetch_propagates() -> None:
    with pytest.raises(GuestFault):
        translate_block(0x3000, 0, _memory_fetch(ADDI * 4, 0x1000))
    # the second half of a straddling first instruction is fetched too
    with pytest.raises(GuestFault):
        translate_block(0x1FFE, 0, _memory_fetch(bytes(0xFFE) + ADDI[:2], 0x1000))


def test_fault_on_later_fetch_ends_block() -> None:
    block = translate_block(0x1000, 0, _memory_fetch(ADDI * 3, 0x1000))
    check_block(block)
    assert (block.n_insns, block.guest_size) == (3, 12)
    assert block.ops[-1].aux == 0x100C


def test_max_insns() -> None:
    block = translate_block(0x1000, 0, _memory_fetch(ADDI * 10, 0x1000), max_insns=1)
    assert block.n_insns == 1
    assert [op.opc for op in block.ops] == [INSN_START, ADD, GOTO_PC]
    assert translate_block(0x1000, 0, _memory_fetch(ADDI * 10, 0x1000)).n_insns == 10


def test_insn_start_marks_every_instruction() -> None:
    code = ADDI + C_ADDI + ADDI + C_ADDI + bytes(4)  # (fetches are 4 bytes inside a page)
    block = translate_block(0x1000, 0, _memory_fetch(code, 0x1000))
    starts = [op.aux for op in block.ops if op.opc is INSN_START]
    assert starts == [0x1000, 0x1004, 0x1006, 0x100A, 0x100C]  # the last: illegal 0x0000
