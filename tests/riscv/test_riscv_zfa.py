"""Zfa against the specification (QEMU 7.2 does not have it): fli, fminm/fmaxm,
fround/froundnx, fcvtmod.w.d, fltq/fleq, with values worked out by hand from the spec's
definitions (IEEE 754-2019 minimum/maximum, roundToIntegral, quiet comparisons).

binutils 2.40 does not know Zfa: the instructions are hand-encoded.  fmvh.x.d and
fmvp.d.x are RV32-only and absent on RV64.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pemu.target.riscv.exceptions import ECALL_U, ILLEGAL_INSN
from pemu.target.riscv.isa import parse_cpu
from tests.native.native_harness import needs_native
from tests.riscv.rvtest_harness import build, run_image

S, D, H = 0, 1, 2
FA0, FA1, FA2, A0 = 10, 11, 12, 10
RNE, RTZ, RDN, RUP = 0, 1, 2, 3
NV, NX = 0x10, 0x01
QNAN_D, SNAN_D, CANON_D = 0x7FF8_0000_0000_0001, 0x7FF0_0000_0000_0001, 0x7FF8_0000_0000_0000
BOX_S, BOX_H = 0xFFFF_FFFF_0000_0000, 0xFFFF_FFFF_FFFF_0000


def _d(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0]


def _op_fp(funct5: int, fmt: int, rs2: int, rs1: int, f3: int, rd: int) -> int:
    return funct5 << 27 | fmt << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | 0x53


def fli(fmt: int, index: int) -> int:
    return _op_fp(0x1E, fmt, 1, index, 0, FA0)


def fminm(fmt: int) -> int:
    return _op_fp(0x05, fmt, FA2, FA1, 2, FA0)


def fmaxm(fmt: int) -> int:
    return _op_fp(0x05, fmt, FA2, FA1, 3, FA0)


def fround(rm: int, nx: bool = False) -> int:
    return _op_fp(0x08, D, 5 if nx else 4, FA1, rm, FA0)


def fcvtmod(rm: int = RTZ) -> int:
    return _op_fp(0x18, D, 8, FA1, rm, A0)


def fltq() -> int:
    return _op_fp(0x14, D, FA2, FA1, 4, A0)


def fleq() -> int:
    return _op_fp(0x14, D, FA2, FA1, 5, A0)


# (instruction, fa1, fa2, (result, fflags)); the result is fa0's 64 bits, or a0 for the
# instructions that write an x register
CASES = [
    (fli(D, 0), 0, 0, (_d(-1.0), 0)),
    (fli(D, 1), 0, 0, (0x0010_0000_0000_0000, 0)),  # the smallest normal double
    (fli(D, 9), 0, 0, (_d(0.3125), 0)),
    (fli(D, 29), 0, 0, (_d(65536.0), 0)),
    (fli(D, 30), 0, 0, (0x7FF0_0000_0000_0000, 0)),
    (fli(D, 31), 0, 0, (CANON_D, 0)),
    (fli(S, 2), 0, 0, (BOX_S | 0x3780_0000, 0)),  # 2^-16
    (fli(S, 1), 0, 0, (BOX_S | 0x0080_0000, 0)),
    (fli(H, 2), 0, 0, (BOX_H | 0x0100, 0)),  # 2^-16 is a subnormal half
    (fli(H, 29), 0, 0, (BOX_H | 0x7C00, 0)),  # 2^16 overflows a half: infinity
    (fminm(D), _d(1.0), QNAN_D, (CANON_D, 0)),  # fmin would give 1.0
    (fminm(D), _d(1.0), SNAN_D, (CANON_D, NV)),
    (fminm(D), _d(-0.0), _d(0.0), (_d(-0.0), 0)),
    (fmaxm(D), _d(-0.0), _d(0.0), (_d(0.0), 0)),
    (fmaxm(D), _d(2.0), _d(3.0), (_d(3.0), 0)),
    (fminm(S), 0x3F80_0000, BOX_S | 0x3F80_0000, (BOX_S | 0x7FC0_0000, 0)),  # unboxed: NaN
    (fround(RNE), _d(2.5), 0, (_d(2.0), 0)),  # fround never raises NX
    (fround(RNE, nx=True), _d(2.5), 0, (_d(2.0), NX)),
    (fround(RUP), _d(2.5), 0, (_d(3.0), 0)),
    (fround(RNE), _d(-0.5), 0, (_d(-0.0), 0)),  # a zero result keeps the sign
    (fround(RDN, nx=True), _d(-0.5), 0, (_d(-1.0), NX)),
    (fround(RNE, nx=True), _d(1e300), 0, (_d(1e300), 0)),
    (fround(RNE, nx=True), _d(7.0), 0, (_d(7.0), 0)),
    (fround(RNE), SNAN_D, 0, (CANON_D, NV)),
    (fround(RTZ), _d(float("-inf")), 0, (_d(float("-inf")), 0)),
    (fcvtmod(), _d(-3.7), 0, (-3 & (2**64 - 1), NX)),
    (fcvtmod(), _d(4294967301.0), 0, (5, NV)),  # 2^32 + 5: modulo 2^32, out of range
    (fcvtmod(), _d(3.0e9), 0, (0xFFFF_FFFF_B2D0_5E00, NV)),
    (fcvtmod(), _d(-2147483648.0), 0, (0xFFFF_FFFF_8000_0000, 0)),
    (fcvtmod(), QNAN_D, 0, (0, NV)),
    (fltq(), _d(1.0), QNAN_D, (0, 0)),  # flt would raise NV
    (fleq(), SNAN_D, _d(1.0), (0, NV)),
    (fltq(), _d(1.0), _d(2.0), (1, 0)),
    (fleq(), _d(2.0), _d(2.0), (1, 0)),
    (fltq(), _d(2.0), _d(2.0), (0, 0)),
]


def _program() -> str:
    lines = [".globl _start", "_start:", "la s0, buf"]
    for word, fa1, fa2, _ in CASES:
        writes_x = word & 0x7F == 0x53 and word >> 27 in (0x14, 0x18)
        lines += [f"li t0, {fa1}", "fmv.d.x fa1, t0", f"li t0, {fa2}", "fmv.d.x fa2, t0",
                  "fmv.d.x fa0, x0", "li a0, 0", "csrwi fflags, 0", f".word 0x{word:08x}",
                  "mv t1, a0" if writes_x else "fmv.x.d t1, fa0", "frflags t2",
                  "sd t1, 0(s0)", "sd t2, 8(s0)", "addi s0, s0, 16"]
    lines += ["li a0, 1", "la a1, buf", f"li a2, {16 * len(CASES)}", "li a7, 64", "ecall",
              "li a0, 0", "li a7, 93", "ecall", ".data", ".align 3", "buf:",
              f".zero {16 * len(CASES)}"]
    return "\n".join(lines)


@pytest.mark.parametrize("backend", ["python", pytest.param("native", marks=needs_native)])
def test_zfa_follows_the_spec(backend: str, tmp_path: Path) -> None:
    _, image = build(_program(), tmp_path)
    out = run_image(image, linux=True, isa=parse_cpu("rv64,zfa=on,zfh=on"), backend=backend)
    assert out.trap is None, f"stopped by {out.trap} at pc 0x{out.pc:x}"
    values = [v for (v,) in struct.iter_unpack("<Q", bytes(out.stdout))]
    got = list(zip(values[::2], values[1::2], strict=True))
    bad = [f"case {i} (0x{c[0]:08x}): got (0x{g[0]:x}, {g[1]}), want (0x{c[3][0]:x}, "
           f"{c[3][1]})" for i, (c, g) in enumerate(zip(CASES, got, strict=True))
           if g != c[3]]
    assert not bad


@pytest.mark.parametrize(("word", "cpu", "legal"), [
    (fli(D, 3), "rv64", False), (fli(D, 3), "rv64,zfa=on", True),
    (fli(H, 3), "rv64,zfa=on,zfhmin=on", False), (fli(H, 3), "rv64,zfa=on,zfh=on", True),
    (fcvtmod(RNE), "rv64,zfa=on", False),  # only with the static rm RTZ
    (fcvtmod(), "max", True), (fltq(), "max,zfa=off", False),
    (_op_fp(0x1C, D, 1, FA1, 0, A0), "max", False),  # fmvh.x.d: RV32 only
])
def test_zfa_encodings_need_zfa(word: int, cpu: str, legal: bool, tmp_path: Path) -> None:
    _, image = build(f".globl _start\n_start:\n.word 0x{word:08x}\necall", tmp_path)
    trap = run_image(image, isa=parse_cpu(cpu)).trap
    assert trap is not None and trap.cause in (ECALL_U, ILLEGAL_INSN)
    assert (trap.cause == ECALL_U) is legal
