"""Zvbb/Zvkb (vector basic bit-manipulation), which QEMU 7.2 lacks, checked against
the spec's definitions: each instruction runs on known vectors in user mode (both
backends), the program stores the destination registers, and the test compares them
with element-wise reference functions written here from the spec text.  binutils 2.40
does not know Zvbb: the instructions are hand-encoded."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pemu.target.riscv.exceptions import ILLEGAL_INSN
from pemu.target.riscv.isa import parse_cpu
from tests.native.native_harness import needs_native
from tests.riscv.rvtest_harness import build, run_image

BACKENDS = ["python", pytest.param("native", marks=needs_native)]
OPIVV, OPMVV, OPIVI, OPIVX = 0, 2, 3, 4
T0 = 5
A32 = [0x8000_0001, 0x1234_5678, 0x0000_0000, 0xF0F0_0F0F]
B32 = [3, 36, 0x55AA_55AA, 31]
X_OPERAND = 0x1_0000_0007  # rs1 (t0); the low SEW bits are the operand
VL = 4  # e32, LMUL 1 at VLEN 128: one register
PAIRS = list(zip(A32, B32, strict=True))
MASK = 0b0101  # v0: elements 0 and 2 active (masked instructions)


def op_v(funct6: int, f3: int, vd: int, vs2: int, src1: int, vm: int = 1) -> int:
    return funct6 << 26 | vm << 25 | vs2 << 20 | src1 << 15 | f3 << 12 | vd << 7 | 0x57


# -- references, from the spec's definitions ------------------------------------------------

def rotr(x: int, s: int, n: int) -> int:
    s %= n
    return ((x >> s) | (x << (n - s))) & ((1 << n) - 1)


def brev(x: int, n: int) -> int:
    return sum(1 << (n - 1 - i) for i in range(n) if x >> i & 1)


def brev8(x: int, n: int) -> int:
    return sum(brev(x >> (8 * b) & 0xFF, 8) << (8 * b) for b in range(n // 8))


def rev8(x: int, n: int) -> int:
    return sum((x >> (8 * b) & 0xFF) << (8 * (n // 8 - 1 - b)) for b in range(n // 8))


def clz(x: int, n: int) -> int:
    return next((n - 1 - i for i in range(n - 1, -1, -1) if x >> i & 1), n)


def ctz(x: int, n: int) -> int:
    return next((i for i in range(n) if x >> i & 1), n)


def _run(tmp: Path, ops: list[tuple[int, int]], backend: str, cpu: str = "max",
         sew: int = 32) -> tuple[list[list[int]], object]:
    """Run each (encoding, destination register) after loading v1 = A32, v2 = B32 and
    store the destination's register group of 2 (vd is 4: even, as the widening
    vwsll needs); return each group's bytes."""
    body = [f"vsetivli zero, {VL}, e32, m1, ta, mu", "la t1, va", "vle32.v v1, (t1)",
            "la t1, vb", "vle32.v v2, (t1)", f"vsetivli zero, {VL}, e{sew}, m1, ta, mu",
            f"vmv.v.i v0, {MASK}", f"li t0, {X_OPERAND}", "la s11, out"]
    for insn, vd in ops:
        body += [f"vmv.v.i v{vd}, 0", f"vmv.v.i v{vd + 1}, 0", f".word 0x{insn:08x}",
                 f"vs2r.v v{vd}, (s11)", "addi s11, s11, 32"]
    size = 32 * len(ops)
    source = "\n".join([
        ".option arch, +v", ".globl _start", "_start:", *body,
        "li a0, 1", "la a1, out", f"li a2, {size}", "li a7, 64", "ecall",
        "li a0, 0", "li a7, 93", "ecall", ".data", ".align 4",
        "va:", *(f".word 0x{a:08x}" for a in A32), "vb:", *(f".word 0x{b:08x}" for b in B32),
        ".align 4", "out:", f".zero {size}"])
    _, image = build(source, tmp)
    outcome = run_image(image, linux=True, isa=parse_cpu(cpu), backend=backend)
    if outcome.trap is not None:
        return [], outcome
    data = bytes(outcome.stdout)
    groups = [data[i:i + 32] for i in range(0, len(data), 32)]
    return groups, outcome


def _elems(group: bytes, size: int, count: int) -> list[int]:
    fmt = {4: "<I", 8: "<Q"}[size]
    return [v for (v,) in struct.iter_unpack(fmt, group[:size * count])]


@pytest.mark.parametrize("backend", BACKENDS)
def test_zvbb_binary_and_unary_ops_follow_the_spec(backend: str, tmp_path: Path) -> None:
    n, x = 32, X_OPERAND & 0xFFFF_FFFF
    cases = [
        (op_v(0x01, OPIVV, 4, 1, 2), [a & ~b & 0xFFFF_FFFF for a, b in PAIRS]),
        (op_v(0x01, OPIVX, 4, 1, T0), [a & ~x & 0xFFFF_FFFF for a in A32]),
        (op_v(0x14, OPIVV, 4, 1, 2), [rotr(a, b, n) for a, b in PAIRS]),
        (op_v(0x14, OPIVX, 4, 1, T0), [rotr(a, x, n) for a in A32]),
        (op_v(0x14, OPIVI, 4, 1, 13), [rotr(a, 13, n) for a in A32]),
        (op_v(0x15, OPIVV, 4, 1, 2), [rotr(a, n - b % n, n) for a, b in PAIRS]),
        (op_v(0x15, OPIVX, 4, 1, T0), [rotr(a, n - x % n, n) for a in A32]),
        (op_v(0x12, OPMVV, 4, 1, 0x08), [brev8(a, n) for a in A32]),
        (op_v(0x12, OPMVV, 4, 1, 0x09), [rev8(a, n) for a in A32]),
        (op_v(0x12, OPMVV, 4, 1, 0x0A), [brev(a, n) for a in A32]),
        (op_v(0x12, OPMVV, 4, 1, 0x0C), [clz(a, n) for a in A32]),
        (op_v(0x12, OPMVV, 4, 1, 0x0D), [ctz(a, n) for a in A32]),
        (op_v(0x12, OPMVV, 4, 1, 0x0E), [bin(a).count("1") for a in A32]),
    ]
    groups, _ = _run(tmp_path, [(insn, 4) for insn, _ in cases], backend)
    for (insn, want), got in zip(cases, groups, strict=True):
        assert _elems(got, 4, VL) == want, f"0x{insn:08x}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_vwsll_widens_and_masked_elements_stay(backend: str, tmp_path: Path) -> None:
    cases = [
        (op_v(0x35, OPIVV, 4, 1, 2), [a << (b % 64) & (1 << 64) - 1 for a, b in PAIRS]),
        (op_v(0x35, OPIVX, 4, 1, T0), [a << 7 for a in A32]),  # 2^32 + 7: mod 64 is 7
        (op_v(0x35, OPIVI, 4, 1, 31), [a << 31 for a in A32]),
        # masked (vm=0): inactive elements keep the 0 written before
        (op_v(0x35, OPIVI, 4, 1, 1, vm=0), [a << 1 if MASK >> i & 1 else 0
                                            for i, a in enumerate(A32)]),
    ]
    groups, _ = _run(tmp_path, [(insn, 4) for insn, _ in cases], backend)
    for (insn, want), got in zip(cases, groups, strict=True):
        assert _elems(got, 8, VL) == want, f"0x{insn:08x}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_vror_vi_amount_bit_5_at_sew_64(backend: str, tmp_path: Path) -> None:
    # e64: v1 holds A32 as two doublewords; funct6 010101 + OPIVI = vror.vi by 32 + imm
    groups, _ = _run(tmp_path, [(op_v(0x15, OPIVI, 4, 1, 4), 4)], backend, sew=64)
    words = [A32[0] | A32[1] << 32, A32[2] | A32[3] << 32]
    assert _elems(groups[0], 8, 2) == [rotr(w, 36, 64) for w in words]


@pytest.mark.parametrize("cpu,insn", [
    ("rv64,v=true", op_v(0x01, OPIVV, 4, 1, 2)),  # vandn: needs Zvkb
    ("rv64,v=true,zvkb=true", op_v(0x12, OPMVV, 4, 1, 0x0C)),  # vclz: Zvbb only
    ("rv64,v=true,zvkb=true", op_v(0x35, OPIVV, 4, 1, 2)),  # vwsll: Zvbb only
])
def test_without_the_extension_the_encodings_are_illegal(cpu: str, insn: int,
                                                         tmp_path: Path) -> None:
    _, outcome = _run(tmp_path, [(insn, 4)], "python", cpu=cpu)
    assert outcome.trap is not None and outcome.trap.cause == ILLEGAL_INSN


def test_zvkb_alone_runs_its_subset(tmp_path: Path) -> None:
    groups, outcome = _run(tmp_path, [(op_v(0x12, OPMVV, 4, 1, 0x09), 4)], "python",
                           cpu="rv64,v=true,zvkb=true")
    assert outcome.trap is None
    assert _elems(groups[0], 4, VL) == [rev8(a, 32) for a in A32]
