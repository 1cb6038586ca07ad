"""Zbc, Zbkb, Zbkc, Zbkx, Zbb's one-source operations and Zicond, and switching
extensions with ``-cpu`` properties.

Random operands (plus edge values) for each new instruction go into one program that
stores every result and writes them to stdout.  It runs on qemu-riscv64 7.2 with the
same extensions enabled and on both pemu backends; all three must agree, and with the
reference models below, written from the specifications' pseudocode.  QEMU 7.2 has no
Zicond, so czero.* are checked against the specification only.  The instructions are
hand-encoded (``.word``): binutils 2.40 does not know Zicond.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pemu.accel.tcg.backend.x86_64 import host_supported
from pemu.target.riscv.exceptions import ECALL_U, ILLEGAL_INSN
from pemu.target.riscv.isa import DEFAULT_ISA, MAX_ISA, CpuOptionError, parse_cpu
from tests.native.native_harness import needs_native
from tests.riscv.rvtest_harness import build, run_image, run_qemu

M64 = (1 << 64) - 1
QEMU_CPU = "rv64,zbc=true,zbkb=true,zbkc=true,zbkx=true"
A0, A1, A2 = 10, 11, 12


def _sext32(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v | (M64 ^ 0xFFFF_FFFF) if v >> 31 else v


# -- reference models, from the specifications' pseudocode --------------------------------

def _clmul(a: int, b: int) -> int:
    return _fold(a << i for i in range(64) if b >> i & 1) & M64


def _clmulh(a: int, b: int) -> int:
    return _fold(a >> (64 - i) for i in range(1, 64) if b >> i & 1)


def _clmulr(a: int, b: int) -> int:
    return _fold(a >> (63 - i) for i in range(64) if b >> i & 1)


def _fold(values: object) -> int:
    out = 0
    for v in values:  # type: ignore[attr-defined]
        out ^= v
    return out


def _xperm(lane: int) -> Callable[[int, int], int]:
    def model(a: int, b: int) -> int:
        out = 0
        for i in range(0, 64, lane):
            index = b >> i & ((1 << lane) - 1)
            if index * lane < 64:
                out |= (a >> (index * lane) & ((1 << lane) - 1)) << i
        return out
    return model


def _brev8(a: int, b: int) -> int:
    return int.from_bytes(bytes(int(f"{x:08b}"[::-1], 2) for x in a.to_bytes(8, "little")),
                          "little")


@dataclass(frozen=True)
class Op:
    name: str
    word: Callable[[int, int, int], int]  # (rd, rs1, rs2) -> encoding
    model: Callable[[int, int], int]
    extension: str


def _r(f7: int, f3: int, opcode: int = 0x33) -> Callable[[int, int, int], int]:
    return lambda rd, rs1, rs2: f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | opcode


def _unary(imm12: int, f3: int) -> Callable[[int, int, int], int]:
    return lambda rd, rs1, rs2: imm12 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | 0x13


QEMU_OPS = [
    Op("clmul", _r(0x05, 1), _clmul, "zbc"),
    Op("clmulr", _r(0x05, 2), _clmulr, "zbc"),
    Op("clmulh", _r(0x05, 3), _clmulh, "zbc"),
    Op("pack", _r(0x04, 4), lambda a, b: (a & 0xFFFF_FFFF) | (b << 32 & M64), "zbkb"),
    Op("packh", _r(0x04, 7), lambda a, b: (a & 0xFF) | (b & 0xFF) << 8, "zbkb"),
    Op("packw", _r(0x04, 4, 0x3B), lambda a, b: _sext32((a & 0xFFFF) | (b & 0xFFFF) << 16),
       "zbkb"),
    Op("brev8", _unary(0x687, 5), _brev8, "zbkb"),
    Op("xperm4", _r(0x14, 2), _xperm(4), "zbkx"),
    Op("xperm8", _r(0x14, 4), _xperm(8), "zbkx"),
]
# Zbb orc.b and the other one-source Zbb operations, all generated code (no helper)
ZBB_OPS = [
    Op("orc.b", _unary(0x287, 5),
       lambda a, b: int.from_bytes(bytes(0xFF if x else 0 for x in a.to_bytes(8, "little")),
                                   "little"), "zbb"),
    Op("clz", _unary(0x600, 1), lambda a, b: 64 - a.bit_length(), "zbb"),
    Op("ctz", _unary(0x601, 1), lambda a, b: (a & -a).bit_length() - 1 if a else 64, "zbb"),
    Op("cpop", _unary(0x602, 1), lambda a, b: a.bit_count(), "zbb"),
    Op("rev8", _unary(0x6B8, 5), lambda a, b: int.from_bytes(a.to_bytes(8, "little"), "big"),
       "zbb"),
]
ZICOND_OPS = [
    Op("czero.eqz", _r(0x07, 5), lambda a, b: 0 if b == 0 else a, "zicond"),
    Op("czero.nez", _r(0x07, 7), lambda a, b: a if b == 0 else 0, "zicond"),
]
EDGES = [0, 1, M64, 1 << 63, 0x0123_4567_89AB_CDEF, 0x8000_0000, 0xFFFF_FFFF, 0x7F]


@dataclass(frozen=True)
class Case:
    op: Op
    a: int
    b: int
    rd: int  # a0, or a1/a2 to check that rd may be one of the sources


def _cases(ops: list[Op], seed: int, per_op: int) -> list[Case]:
    rng = random.Random(seed)

    def operand() -> int:
        r = rng.random()
        if r < 0.25:
            return rng.choice(EDGES)
        if r < 0.35:
            return rng.randrange(16)  # small: in range of the xperm lanes, czero's zero
        return rng.getrandbits(64)
    return [Case(op, operand(), operand(), rng.choice((A0, A0, A1, A2)))
            for op in ops for _ in range(per_op)]


def _program(cases: list[Case]) -> str:
    lines = [".globl _start", "_start:", "la s0, buf"]
    for c in cases:
        lines += [f"li a1, {c.a}", f"li a2, {c.b}", f".word 0x{c.op.word(c.rd, A1, A2):08x}",
                  f"sd x{c.rd}, 0(s0)", "addi s0, s0, 8"]
    lines += ["li a0, 1", "la a1, buf", f"li a2, {8 * len(cases)}", "li a7, 64", "ecall",
              "li a0, 0", "li a7, 93", "ecall",
              ".data", "buf:", f".zero {8 * len(cases)}"]
    return "\n".join(lines)


def _results(out: bytes) -> list[int]:
    return [v for (v,) in struct.iter_unpack("<Q", out)]


def _expected(cases: list[Case]) -> list[int]:
    return [c.op.model(c.a, c.b) & M64 for c in cases]


def _pemu(image: bytes, backend: str, isa: object = MAX_ISA) -> list[int]:
    out = run_image(image, linux=True, isa=isa, backend=backend)  # type: ignore[arg-type]
    assert out.trap is None, f"stopped by {out.trap} at pc 0x{out.pc:x}"
    assert out.exit_code == 0
    return _results(bytes(out.stdout))


def _mismatches(cases: list[Case], got: list[int], want: list[int]) -> list[str]:
    return [f"{c.op.name} x{c.rd}, 0x{c.a:x}, 0x{c.b:x}: got 0x{g:x}, want 0x{w:x}"
            for c, g, w in zip(cases, got, want, strict=True) if g != w][:20]


BACKENDS = ["python", pytest.param("native", marks=needs_native)]


@pytest.mark.parametrize("seed", [1, 2])
def test_zbc_zbkb_zbkx_match_qemu_and_the_spec(seed: int, tmp_path: Path) -> None:
    cases = _cases(QEMU_OPS, seed, 24)
    elf, image = build(_program(cases), tmp_path, rvc=False)
    status, qemu_out = run_qemu(elf, QEMU_CPU)
    assert status == 0, "the program failed under qemu-riscv64 itself"
    theirs = _results(qemu_out)
    assert not _mismatches(cases, theirs, _expected(cases)), "reference model vs qemu"
    for backend in ("python", "native") if host_supported() else ("python",):
        ours = _pemu(image, backend, parse_cpu(QEMU_CPU))
        assert not _mismatches(cases, ours, theirs), backend


def _byte_mix(rng: random.Random) -> int:
    """A value of bytes that sit on orc.b's edges: 0, 1, 0x7F, 0x80, 0xFF, random."""
    return int.from_bytes(bytes(rng.choice((0, 0, 1, 0x7F, 0x80, 0xFF, rng.getrandbits(8)))
                                for _ in range(8)), "little")


def test_zbb_unary_ops_match_qemu_and_the_spec(tmp_path: Path) -> None:
    cases = _cases(ZBB_OPS, 4, 24)
    rng = random.Random(5)
    cases += [Case(ZBB_OPS[0], _byte_mix(rng), 0, rng.choice((A0, A1))) for _ in range(48)]
    elf, image = build(_program(cases), tmp_path, rvc=False)
    status, qemu_out = run_qemu(elf, "rv64")
    assert status == 0, "the program failed under qemu-riscv64 itself"
    theirs = _results(qemu_out)
    assert not _mismatches(cases, theirs, _expected(cases)), "reference model vs qemu"
    for backend in ("python", "native") if host_supported() else ("python",):
        ours = _pemu(image, backend, parse_cpu("rv64"))
        assert not _mismatches(cases, ours, theirs), backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_zicond_follows_the_spec(backend: str, tmp_path: Path) -> None:
    cases = _cases(ZICOND_OPS, 3, 40)
    assert {c.b == 0 for c in cases} == {True, False}  # both outcomes are exercised
    _, image = build(_program(cases), tmp_path, rvc=False)
    got = _pemu(image, backend, parse_cpu("rv64,zicond=on"))
    assert not _mismatches(cases, got, _expected(cases))


# -- extensions switched off decode as illegal instructions ------------------------------

ANDN = _r(0x20, 7)(A0, A1, A2)
MIN = _r(0x05, 4)(A0, A1, A2)
ZEXT_H = _r(0x04, 4, 0x3B)(A0, A1, 0)  # also packw a0, a1, x0
REV8 = _unary(0x6B8, 5)(A0, A1, 0)
SH1ADD = _r(0x10, 2)(A0, A1, A2)


def _legal(word: int, cpu: str, tmp_path: Path) -> bool:
    _, image = build(f".globl _start\n_start:\n.word 0x{word:08x}\necall", tmp_path, rvc=False)
    trap = run_image(image, isa=parse_cpu(cpu)).trap
    assert trap is not None and trap.cause in (ECALL_U, ILLEGAL_INSN)
    if trap.cause == ILLEGAL_INSN:
        assert trap.tval == word  # stopped at the instruction itself, not the ecall
    return trap.cause == ECALL_U


@pytest.mark.parametrize("op", QEMU_OPS + ZICOND_OPS, ids=lambda op: op.name)
def test_new_instructions_need_their_extension(op: Op, tmp_path: Path) -> None:
    word = op.word(A0, A1, A2)
    assert not _legal(word, f"rv64,{op.extension}=off", tmp_path)
    assert _legal(word, f"rv64,{op.extension}=true", tmp_path)
    # the default model as QEMU 7.2's rv64: Zbc on, the scalar-crypto ones and Zicond off
    assert _legal(word, "rv64", tmp_path) is (op.extension == "zbc")
    also_zbkc = op.name in ("clmul", "clmulh")  # still there in max without Zbc
    assert _legal(word, f"max,{op.extension}=off", tmp_path) is also_zbkc


@pytest.mark.parametrize(("word", "cpu", "legal"), [
    (ANDN, "rv64,zbb=off", False), (ANDN, "rv64,zbb=off,zbkb=on", True),
    (MIN, "rv64,zbb=off,zbkb=on", False), (REV8, "rv64,zbb=false,zbkb=true", True),
    (REV8, "rv64,zbb=off", False), (ZEXT_H, "rv64,zbb=off", False),
    (ZEXT_H, "rv64,zbb=off,zbkb=on", True), (ZEXT_H, "rv64", True),
    (SH1ADD, "rv64,zba=off", False), (SH1ADD, "rv64", True),
    (_r(0x05, 1)(A0, A1, A2), "rv64,zbc=off,zbkc=on", True),  # clmul: Zbkc
    (_r(0x05, 2)(A0, A1, A2), "rv64,zbc=off,zbkc=on", False),  # clmulr: Zbc only
])
def test_shared_encodings_follow_every_extension_that_has_them(
        word: int, cpu: str, legal: bool, tmp_path: Path) -> None:
    assert _legal(word, cpu, tmp_path) is legal


def test_cpu_properties_parse_as_qemu_spells_them() -> None:
    assert parse_cpu(None) == DEFAULT_ISA == parse_cpu("rv64")
    # QEMU 7.2's rv64 says rv64imafdch_zicsr_zifencei_zihintpause_zba_zbb_zbc_zbs_sstc
    # (pemu has no H)
    assert DEFAULT_ISA.isa_string == ("rv64imafdc_zicsr_zifencei_zihintpause_zba_zbb_zbc_zbs"
                                      "_sstc")
    isa = parse_cpu("rv64,zbkb=on,zbs=off,zicond=yes")
    assert isa.isa_string == ("rv64imafdc_zicond_zicsr_zifencei_zihintpause_zba_zbb_zbc_zbkb"
                              "_sstc")
    assert parse_cpu("max") == MAX_ISA and MAX_ISA.has("zbkx") and MAX_ISA.has("zicond")
    assert not parse_cpu("max,zbkx=off").has("zbkx")
    assert parse_cpu("rv64,m=true") == DEFAULT_ISA
    for bad in ("rv32", "rv64,zbc=maybe", "rv64,vlen=100", "rv64,m=false"):
        with pytest.raises(CpuOptionError):
            parse_cpu(bad)
