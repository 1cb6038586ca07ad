"""Zvknha (vector SHA-256), which QEMU 7.2 lacks: one SHA-256 compression written
the way the spec's code sample drives the instructions (vsha2cl/vsha2ch two rounds
each, vsha2ms four schedule words, vmerge for {W11, W10, W9, W4}) must give
hashlib's digest of a one-block message.  Hand-encoded: binutils 2.40 lacks them."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest

from pemu.target.riscv.exceptions import ILLEGAL_INSN
from pemu.target.riscv.isa import parse_cpu
from tests.native.native_harness import needs_native
from tests.riscv.rvtest_harness import build, run_image

BACKENDS = ["python", pytest.param("native", marks=needs_native)]
MS, CH, CL = 0x2D, 0x2E, 0x2F
MESSAGE = b"pemu checks Zvknha against hashlib"
IV = (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
      0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19)


def _round_constants() -> list[int]:
    """FIPS 180-4: the first 32 bits of the fractional parts of the cube roots of the
    first 64 primes."""
    primes = [n for n in range(2, 312) if all(n % d for d in range(2, int(n ** 0.5) + 1))]
    out = []
    for p in primes[:64]:
        root = round(p ** (1 / 3))  # integer cube root, then 32 fraction bits exactly
        while root ** 3 > p:
            root -= 1
        lo, hi = root << 32, (root + 1) << 32
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if mid ** 3 <= p << 96 else (lo, mid)
        out.append(lo & 0xFFFF_FFFF)
    return out


def op_ve(funct6: int, vd: int, vs2: int, vs1: int) -> str:
    word = funct6 << 26 | 1 << 25 | vs2 << 20 | vs1 << 15 | 2 << 12 | vd << 7 | 0x77
    return f".word 0x{word:08x}"


def _padded(message: bytes) -> bytes:
    block = message + b"\x80" + bytes(55 - len(message)) + struct.pack(">Q", 8 * len(message))
    assert len(block) == 64
    return block


def _program() -> list[str]:
    """v1..v4: W[0..15] (four words each), v10 = {a, b, e, f}, v11 = {c, d, g, h},
    v20: the current 4 constants, v5: W+K, v6: the vsha2ms operand; v0 = 0b0001."""
    body = ["vsetivli zero, 4, e32, m1, ta, ma", "vmv.v.i v0, 1", "la t1, words"]
    for r in range(1, 5):
        body += [f"vle32.v v{r}, (t1)", "addi t1, t1, 16"]
    body += ["la t1, state", "vle32.v v10, (t1)", "addi t1, t1, 16", "vle32.v v11, (t1)",
             "la t2, consts"]
    regs = [1, 2, 3, 4]
    for quad in range(16):
        w0, w1, w2, w3 = regs
        body += ["vle32.v v20, (t2)", "addi t2, t2, 16", f"vadd.vv v5, v20, v{w0}",
                 op_ve(CL, 11, 10, 5), op_ve(CH, 10, 11, 5)]
        if quad < 12:
            body += [f"vmerge.vvm v6, v{w2}, v{w1}, v0",  # {W11, W10, W9, W4}
                     op_ve(MS, w0, 6, w3)]
        regs = [w1, w2, w3, w0]
    body += ["la t1, out", "vse32.v v10, (t1)", "addi t1, t1, 16", "vse32.v v11, (t1)"]
    return body


def _run(tmp: Path, body: list[str], backend: str, cpu: str = "max"):
    words = struct.unpack(">16I", _padded(MESSAGE))
    state = (IV[5], IV[4], IV[1], IV[0], IV[7], IV[6], IV[3], IV[2])  # abef, cdgh
    source = "\n".join([
        ".option arch, +v", ".globl _start", "_start:", *body,
        "li a0, 1", "la a1, out", "li a2, 32", "li a7, 64", "ecall",
        "li a0, 0", "li a7, 93", "ecall", ".data", ".align 4",
        "words:", *(f".word 0x{w:08x}" for w in words),
        "state:", *(f".word 0x{w:08x}" for w in state),
        "consts:", *(f".word 0x{k:08x}" for k in _round_constants()),
        "out:", ".zero 32"])
    _, image = build(source, tmp)
    return run_image(image, linux=True, isa=parse_cpu(cpu), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_block_gives_hashlibs_digest(backend: str, tmp_path: Path) -> None:
    outcome = _run(tmp_path, _program(), backend)
    assert outcome.trap is None, outcome.trap
    f, e, b, a, h, g, d, c = struct.unpack("<8I", bytes(outcome.stdout))
    digest = struct.pack(">8I", *((x + y) & 0xFFFF_FFFF
                                  for x, y in zip((a, b, c, d, e, f, g, h), IV, strict=True)))
    assert digest == hashlib.sha256(MESSAGE).digest()


@pytest.mark.parametrize("cpu,body", [
    ("rv64,v=true", [op_ve(CH, 10, 11, 5)]),  # no Zvknha
    ("max", [op_ve(CH, 10, 10, 5)]),  # vd = vs2
    ("max", ["vsetivli zero, 2, e64, m1, ta, ma", op_ve(MS, 1, 2, 3)]),  # SEW 64: Zvknhb
])
def test_illegal_settings(cpu: str, body: list[str], tmp_path: Path) -> None:
    outcome = _run(tmp_path, ["vsetivli zero, 4, e32, m1, ta, ma", *body], "python", cpu)
    assert outcome.trap is not None and outcome.trap.cause == ILLEGAL_INSN
