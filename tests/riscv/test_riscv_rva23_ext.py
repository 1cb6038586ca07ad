"""The RVA23 unprivileged extensions that QEMU 7.2 lacks, checked against the spec:
Zimop, Zcmop, Zcb, Zawrs, Zihintntl, Zacas and Zicbom/Zicboz/Zicbop in user mode.

One program per check runs on both backends; it stores what each instruction left in
its registers and memory, and the test compares that with values worked out from the
specifications.  binutils 2.40 knows none of Zimop/Zcmop/Zcb/Zacas, so they are
hand-encoded (``.word``/``.half``).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pemu.target.riscv.exceptions import ECALL_U, ILLEGAL_INSN
from pemu.target.riscv.isa import parse_cpu
from tests.native.native_harness import needs_native
from tests.riscv.rvtest_harness import build, run_image

M64 = (1 << 64) - 1
A0, A1, A2, A3, A4, A5, S0, S1 = 10, 11, 12, 13, 14, 15, 8, 9
BACKENDS = ["python", pytest.param("native", marks=needs_native)]
MAX = "max"
ARCH = ".option arch, +zawrs, +zicbom, +zicboz, +zicbop"  # what binutils 2.40 knows


def mop_r(n: int, rd: int, rs1: int) -> int:
    return (1 << 31 | (n >> 4 & 1) << 30 | (n >> 2 & 3) << 26 | 0b0111 << 22 | (n & 3) << 20
            | rs1 << 15 | 4 << 12 | rd << 7 | 0x73)


def mop_rr(n: int, rd: int, rs1: int, rs2: int) -> int:
    return (1 << 31 | (n >> 2 & 1) << 30 | (n & 3) << 26 | 1 << 25 | rs2 << 20 | rs1 << 15
            | 4 << 12 | rd << 7 | 0x73)


def c_mop(n: int) -> int:  # n odd, 1..15
    return 0x6081 | (n >> 1) << 8


def amocas(f3: int, rd: int, rs1: int, rs2: int) -> int:
    return 0x05 << 27 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | 0x2F


def _creg(r: int) -> int:
    return r - 8


def c_zcb_unary(op: int, rd: int) -> int:
    return 0b100111 << 10 | _creg(rd) << 7 | 3 << 5 | op << 2 | 1


def c_mul(rd: int, rs2: int) -> int:
    return 0b100111 << 10 | _creg(rd) << 7 | 2 << 5 | _creg(rs2) << 2 | 1


def c_mem(funct6: int, bit6: int, uimm1: int, rs1: int, r: int) -> int:
    """c.lbu/c.lhu/c.lh/c.sb/c.sh: bit 6 (uimm[0] or the c.lh flag), bit 5 (uimm[1])."""
    return funct6 << 10 | _creg(rs1) << 7 | bit6 << 6 | uimm1 << 5 | _creg(r) << 2


C_LBU, C_LHU_LH, C_SB, C_SH = 0b100000, 0b100001, 0b100010, 0b100011


def _run(tmp: Path, body: list[str], n_results: int, backend: str, cpu: str = MAX
         ) -> list[int]:
    """Run ``body`` (it stores ``n_results`` doublewords at s11) and return them."""
    source = "\n".join([
        ARCH, ".globl _start", "_start:", "la s11, out", "la s10, data", *body,
        "li a0, 1", "la a1, out", f"li a2, {8 * n_results}", "li a7, 64", "ecall",
        "li a0, 0", "li a7, 93", "ecall",
        ".data", ".align 6", "data:", *(f".dword 0x{0x1111_1111_1111_1111 * (i + 1) & M64:x}"
                                        for i in range(16)),
        "out:", f".zero {8 * n_results}"])
    _, image = build(source, tmp)
    outcome = run_image(image, linux=True, isa=parse_cpu(cpu), backend=backend)
    assert outcome.trap is None, f"stopped by {outcome.trap} at pc 0x{outcome.pc:x}"
    return [v for (v,) in struct.iter_unpack("<Q", bytes(outcome.stdout))]


def _store(*regs: str) -> list[str]:
    """Append the registers to the results at s11."""
    return [f"sd {r}, {8 * i}(s11)" for i, r in enumerate(regs)] + [
        f"addi s11, s11, {8 * len(regs)}"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_may_be_operations_write_zero_or_nothing(backend: str, tmp_path: Path) -> None:
    body = ["li a0, -1", "li a1, 5", "li a2, 7", "li ra, 0x1234",
            f".word 0x{mop_r(0, A0, A1):08x}",  # a0 = 0
            "li a3, -1", f".word 0x{mop_r(31, A3, A1):08x}",
            "li a4, 99", f".word 0x{mop_rr(7, A4, A1, A2):08x}",
            f".half 0x{c_mop(1):04x}", f".half 0x{c_mop(15):04x}",  # write nothing
            "add x0, x0, x2", ".half 0x9016",  # ntl.p1, c.ntl.all
            "wrs.nto", "wrs.sto", *_store("a0", "a3", "a4", "ra", "a1")]
    assert _run(tmp_path, body, 5, backend) == [0, 0, 0, 0x1234, 5]


@pytest.mark.parametrize("backend", BACKENDS)
def test_zcb_instructions(backend: str, tmp_path: Path) -> None:
    body = [
        "li a0, 0x8081828384858687", f".half 0x{c_zcb_unary(0, A0):04x}",  # zext.b
        "li a1, 0x80", f".half 0x{c_zcb_unary(1, A1):04x}",  # sext.b
        "li a2, -1", f".half 0x{c_zcb_unary(2, A2):04x}",  # zext.h
        "li a3, 0x18000", f".half 0x{c_zcb_unary(3, A3):04x}",  # sext.h
        "li a4, -2", f".half 0x{c_zcb_unary(4, A4):04x}",  # zext.w
        "li a5, 0x0f0f", f".half 0x{c_zcb_unary(5, A5):04x}",  # not
        *_store("a0", "a1", "a2", "a3", "a4", "a5"),
        "li s0, -7", "li s1, 6", f".half 0x{c_mul(S0, S1):04x}",
        "mv s1, s10", "li a0, 0xa5b6c7d8e9fa",  # s1 = data
        f".half 0x{c_mem(C_SB, 1, 1, S1, A0):04x}",  # sb a0, 3(s1)
        f".half 0x{c_mem(C_SH, 0, 1, S1, A0):04x}",  # sh a0, 2(s1)... overwrites 2, 3
        f".half 0x{c_mem(C_LBU, 1, 0, S1, A1):04x}",  # lbu a1, 1(s1)
        f".half 0x{c_mem(C_LHU_LH, 0, 1, S1, A2):04x}",  # lhu a2, 2(s1)
        f".half 0x{c_mem(C_LHU_LH, 1, 1, S1, A3):04x}",  # lh a3, 2(s1)
        "ld a4, 0(s1)", *_store("s0", "a1", "a2", "a3", "a4")]
    got = _run(tmp_path, body, 11, backend)
    assert got[:6] == [0x87, M64 - 0x7F, 0xFFFF, M64 - 0x7FFF, 0xFFFF_FFFE, M64 ^ 0x0F0F]
    stored = 0x1111_1111_1111_1111 & ~0xFFFF_0000 | 0xE9FA_0000
    assert got[6:] == [-42 & M64, 0x11, 0xE9FA, M64 - 0xFFFF + 0xE9FA, stored]


@pytest.mark.parametrize("backend", BACKENDS)
def test_amocas_swaps_only_on_a_match(backend: str, tmp_path: Path) -> None:
    d0, d1, d2 = (0x1111_1111_1111_1111 * i for i in (1, 2, 3))
    body = [
        # amocas.d: a mismatch (memory keeps d0), then a match (memory gets 77)
        "li a0, 5", "li a2, 77", f".word 0x{amocas(3, A0, 26, A2):08x}", "mv t0, a0",
        f".word 0x{amocas(3, A0, 26, A2):08x}", "ld t1, 0(s10)",
        # amocas.w compares 32 bits: rd's upper half does not matter; the old word is
        # sign-extended
        "addi t2, s10, 8", "li a1, 0x9999999922222222", "li a3, 0x80000000",
        f".word 0x{amocas(2, A1, 7, A3):08x}", "ld t3, 8(s10)",
        # amocas.q on data+16: the pair a4/a5 against the two doublewords (d2, d3)
        "addi t4, s10, 16", "ld a4, 16(s10)", "ld a5, 24(s10)", "li a2, 1", "li a3, 2",
        f".word 0x{amocas(4, A4, 29, A2):08x}", "ld t5, 16(s10)", "ld t6, 24(s10)",
        *_store("t0", "a0", "t1", "a1", "t3", "a4", "a5", "t5", "t6")]
    d3 = 0x1111_1111_1111_1111 * 4
    got = _run(tmp_path, body, 9, backend)
    assert got[:3] == [d0, d0, 77]  # the old value both times; stored on the match only
    assert got[3] == 0x2222_2222  # the old low word, sign-extended (positive)
    assert got[4] == (d1 & ~0xFFFF_FFFF) | 0x8000_0000  # matched: the low word replaced
    assert got[5:] == [d2, d3, 1, 2]


@pytest.mark.parametrize("backend", BACKENDS)
def test_cbo_zero_clears_one_aligned_block(backend: str, tmp_path: Path) -> None:
    body = ["addi a0, s10, 77",  # inside the second 64-byte block of data (128 bytes)
            "cbo.zero (a0)", "cbo.clean (a0)", "cbo.flush (a0)", "cbo.inval (a0)",
            "prefetch.r 0(a0)", "prefetch.w 64(a0)", "prefetch.i 0(a0)",
            "ld t0, 56(s10)", "ld t1, 64(s10)", "ld t2, 120(s10)",
            *_store("t0", "t1", "t2")]
    assert _run(tmp_path, body, 3, backend) == [0x1111_1111_1111_1111 * 8, 0, 0]


@pytest.mark.parametrize(("text", "extension"), [
    (f".word 0x{mop_r(3, A0, A1):08x}", "zimop"), (f".word 0x{mop_rr(2, A0, A1, A2):08x}",
                                                     "zimop"),
    (f".half 0x{c_mop(5):04x}\nnop", "zcmop"), (f".half 0x{c_mul(S0, S1):04x}\nnop", "zcb"),
    (f".half 0x{c_mem(C_LBU, 0, 0, A0, A1):04x}\nnop", "zcb"),
    ("wrs.nto", "zawrs"), (f".word 0x{amocas(3, A1, A0, A2):08x}", "zacas"),
    ("cbo.zero (a0)", "zicboz"), ("cbo.clean (a0)", "zicbom"),
])
def test_instructions_need_their_extension(text: str, extension: str, tmp_path: Path
                                           ) -> None:
    # a0: a doubleword-aligned address inside the stack, for the memory instructions
    _, image = build(f"{ARCH}\n.globl _start\n_start:\naddi a0, sp, -128\nandi a0, a0, -64\n"
                     f"{text}\necall", tmp_path)
    for cpu, legal in ((f"max,{extension}=off", False), ("rv64", False),
                       (f"rv64,{extension}=on", True)):
        trap = run_image(image, isa=parse_cpu(cpu)).trap
        assert trap is not None
        assert trap.cause == (ECALL_U if legal else ILLEGAL_INSN), cpu
