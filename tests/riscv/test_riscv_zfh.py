"""Zfh and Zfhmin (half precision) against qemu-riscv64 7.2 with ``-cpu rv64,Zfh=true``.

Random binary16 operands (edge values and badly NaN-boxed registers included) go
through every Zfh instruction in one program that stores each result register (all 64
bits, so NaN-boxing is compared too) and the fflags it raised.  QEMU and both pemu
backends must agree; a few values are also checked against the IEEE definition.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from pemu.accel.tcg.backend.x86_64 import host_supported
from pemu.target.riscv.exceptions import ECALL_U, ILLEGAL_INSN
from pemu.target.riscv.isa import parse_cpu
from tests.riscv.rvtest_harness import build, run_image, run_qemu

QEMU_CPU = "rv64,Zfh=true"
BOX_H = 0xFFFF_FFFF_FFFF_0000
BOX_S = 0xFFFF_FFFF_0000_0000
RMS = ("rne", "rtz", "rdn", "rup", "rmm")
HALF_EDGES = [0x0000, 0x8000, 0x3C00, 0xBC00, 0x7C00, 0xFC00, 0x7E00, 0x7D00, 0x7BFF,
              0x0001, 0x03FF, 0x0400, 0xFBFF, 0x5BF8, 0x7800]

# (mnemonic pattern, kind): kind says which registers the operands and result use
# f: half in fa1/fa2/fa3, result fa0; x: integer result in a0; i: integer source a1
OPS = [
    *(f"{op}.h fa0, fa1, fa2, {{rm}}" for op in ("fadd", "fsub", "fmul", "fdiv")),
    "fsqrt.h fa0, fa1, {rm}",
    *(f"{op}.h fa0, fa1, fa2" for op in ("fmin", "fmax", "fsgnj", "fsgnjn", "fsgnjx")),
    *(f"{op}.h fa0, fa1, fa2, fa3, {{rm}}" for op in ("fmadd", "fmsub", "fnmadd", "fnmsub")),
    *(f"{op}.h a0, fa1, fa2" for op in ("feq", "flt", "fle")),
    "fclass.h a0, fa1", "fmv.x.h a0, fa1", "fmv.h.x fa0, a1",
    *(f"fcvt.{t}.h a0, fa1, {{rm}}" for t in ("w", "wu", "l", "lu")),
    *(f"fcvt.h.{t} fa0, a1, {{rm}}" for t in ("w", "wu", "l", "lu")),
    "fcvt.s.h fa0, fa1", "fcvt.d.h fa0, fa1", "fcvt.h.s fa0, fs1, {rm}",
    "fcvt.h.d fa0, fs2, {rm}",
]


def _half_reg(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.08:
        return rng.getrandbits(64)  # not NaN-boxed: reads as the canonical NaN
    value = rng.choice(HALF_EDGES) if r < 0.4 else rng.getrandbits(16)
    return BOX_H | value


def _case_lines(op: str, rng: random.Random) -> list[str]:
    regs = [_half_reg(rng) for _ in range(3)]
    single = BOX_S | rng.choice([rng.getrandbits(32), 0x477FE000, 0x33800000, 0x7F800001,
                                 0x387FC000, 0xC77FF000])
    double = rng.choice([rng.getrandbits(64), 0x40EFFC0000000000, 0x3E70000000000000,
                         0xBF50040000000000, 0x7FF0000000000001, 0x3FF0020000000001])
    integer = rng.choice([rng.getrandbits(64), rng.randrange(-70000, 70000) & (2**64 - 1),
                          0xFFFF_FFFF, 65504, 65520])
    text = op.format(rm=rng.choice(RMS))
    result = "a0" if " a0," in text else "fa0"
    lines = []
    for reg, value in zip(("fa1", "fa2", "fa3", "fs1", "fs2"), [*regs, single, double],
                          strict=True):
        lines += [f"li t0, {value}", f"fmv.d.x {reg}, t0"]
    lines += [f"li a1, {integer}", "li a0, 0", "fmv.d.x fa0, x0", "csrwi fflags, 0", text,
              "fmv.x.d t1, fa0" if result == "fa0" else "mv t1, a0", "frflags t2",
              "sd t1, 0(s0)", "sd t2, 8(s0)", "addi s0, s0, 16"]
    return lines


def _program(seed: int, per_op: int) -> tuple[str, int]:
    rng = random.Random(seed)
    body = [".option arch, +zfh", ".globl _start", "_start:", "la s0, buf"]
    n = 0
    for op in OPS:
        for _ in range(per_op):
            body += _case_lines(op, rng)
            n += 1
    # flh/fsh: a half in memory, loaded (boxed) and stored back
    body += ["la t3, halves", "flh fa0, 0(t3)", "fmv.x.d t1, fa0", "sd t1, 0(s0)",
             "fsh fa0, 2(t3)", "lhu t1, 2(t3)", "sd t1, 8(s0)", "addi s0, s0, 16"]
    n += 1
    body += ["li a0, 1", "la a1, buf", f"li a2, {16 * n}", "li a7, 64", "ecall",
             "li a0, 0", "li a7, 93", "ecall", ".data", "halves:", ".half 0xc248, 0",
             ".align 3", "buf:", f".zero {16 * n}"]
    return "\n".join(body), n


def _pemu(image: bytes, backend: str, cpu: str) -> list[int]:
    out = run_image(image, linux=True, isa=parse_cpu(cpu), backend=backend)
    assert out.trap is None, f"stopped by {out.trap} at pc 0x{out.pc:x}"
    assert out.exit_code == 0
    return [v for (v,) in struct.iter_unpack("<Q", bytes(out.stdout))]


@pytest.mark.parametrize("seed", [1, 2])
def test_zfh_matches_qemu(seed: int, tmp_path: Path) -> None:
    source, n = _program(seed, 6)
    elf, image = build(source, tmp_path)
    status, qemu_out = run_qemu(elf, QEMU_CPU)
    assert status == 0, "the program failed under qemu-riscv64 itself"
    theirs = [v for (v,) in struct.iter_unpack("<Q", qemu_out)]
    assert len(theirs) == 2 * n
    # the memory round trip: -3.140625 loaded NaN-boxed, stored back unchanged
    assert theirs[-2:] == [BOX_H | 0xC248, 0xC248]
    lines = [ln for ln in source.splitlines() if ln.split(" ")[0].startswith("f")
             and ln.split(" ")[0] not in ("fmv.d.x", "fmv.x.d", "frflags")]
    for backend in ("python", "native") if host_supported() else ("python",):
        ours = _pemu(image, backend, "rv64,zfh=on")
        bad = [f"{lines[i // 2] if i // 2 < len(lines) else 'flh/fsh'}: "
               f"{'flags' if i % 2 else 'value'} 0x{o:x}, qemu 0x{t:x}"
               for i, (o, t) in enumerate(zip(ours, theirs, strict=True)) if o != t]
        assert not bad[:20], backend


def test_half_precision_arithmetic_follows_ieee() -> None:
    from pemu.target.riscv import fp_helpers as fp
    add = fp.ARITH2[(fp.FMT_H, 0)].fn
    assert add(BOX_H | 0x3C00, BOX_H | 0x3C00, 0) == (BOX_H | 0x4000, 0)  # 1 + 1 = 2
    assert add(BOX_H | 0x7BFF, BOX_H | 0x7BFF, 0) == (BOX_H | 0x7C00, 0x5)  # OF NX: inf
    assert add(0x3C00, BOX_H | 0x3C00, 0) == (BOX_H | 0x7E00, 0)  # unboxed: NaN
    to_s = fp.FP_CONVERT[(fp.FMT_S, fp.FMT_H)].fn
    assert to_s(BOX_H | 0x0001, 0) == (BOX_S | 0x33800000, 0)  # smallest subnormal, exact


def _legal(line: str, cpu: str, tmp_path: Path) -> bool:
    _, image = build(f".option arch, +zfh\n.globl _start\n_start:\n{line}\necall", tmp_path,
                     rvc=False)
    trap = run_image(image, isa=parse_cpu(cpu)).trap
    assert trap is not None and trap.cause in (ECALL_U, ILLEGAL_INSN)
    return trap.cause == ECALL_U


@pytest.mark.parametrize(("line", "zfhmin"), [
    ("fadd.h fa0, fa1, fa2", False), ("fclass.h a0, fa1", False),
    ("fmadd.h fa0, fa1, fa2, fa3", False), ("fcvt.w.h a0, fa1", False),
    ("flh fa0, 0(sp)", True), ("fsh fa0, 0(sp)", True), ("fmv.x.h a0, fa1", True),
    ("fmv.h.x fa0, a1", True), ("fcvt.s.h fa0, fa1", True), ("fcvt.h.d fa0, fa1", True),
])
def test_zfhmin_has_only_the_moves_and_conversions(line: str, zfhmin: bool,
                                                   tmp_path: Path) -> None:
    assert _legal(line, "rv64,zfh=on", tmp_path)
    assert _legal(line, "rv64,zfhmin=on", tmp_path) is zfhmin
    assert not _legal(line, "rv64", tmp_path)
