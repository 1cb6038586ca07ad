"""Zkne/Zknd/Zknh/Zksed/Zksh (scalar AES, SHA-2, SM3, SM4) against qemu-riscv64 7.2.

Random operands go through every instruction on QEMU (with the extensions enabled) and
both pemu backends; the reference models are pemu's own crypto.py, so the QEMU
comparison is what checks them (the S-boxes are computed, not copied).  FIPS-197's
first AES round is checked as a known answer too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pemu.accel.tcg.backend.x86_64 import host_supported
from pemu.target.riscv import crypto
from pemu.target.riscv.isa import parse_cpu
from tests.riscv.rvtest_harness import build, run_qemu
from tests.riscv.test_riscv_scalar_ext import (
    Op,
    _cases,
    _expected,
    _mismatches,
    _pemu,
    _program,
    _r,
    _results,
    _unary,
)

CPU = "rv64,zkn=on,zks=on"  # QEMU 7.2's shorthands: Zbkb/c/x, Zkne/d/h, Zksed/h

CRYPTO_OPS = [
    Op("aes64es", _r(0x19, 0), crypto.aes64es, "zkne"),
    Op("aes64esm", _r(0x1B, 0), crypto.aes64esm, "zkne"),
    Op("aes64ds", _r(0x1D, 0), crypto.aes64ds, "zknd"),
    Op("aes64dsm", _r(0x1F, 0), crypto.aes64dsm, "zknd"),
    Op("aes64ks2", _r(0x3F, 0), crypto.aes64ks2, "zkne"),
    Op("aes64im", _unary(0x300, 1), crypto.aes64im, "zknd"),
    *(Op(f"aes64ks1i.{rnum}", _unary(0x310 | rnum, 1),
         lambda a, b, rnum=rnum: crypto.aes64ks1i(a, rnum), "zkne") for rnum in (0, 3, 9, 10)),
    *(Op(name, _unary(0x100 | i, 1), getattr(crypto, name), "zknh") for i, name in enumerate((
        "sha256sum0", "sha256sum1", "sha256sig0", "sha256sig1", "sha512sum0", "sha512sum1",
        "sha512sig0", "sha512sig1"))),
    Op("sm3p0", _unary(0x108, 1), crypto.sm3p0, "zksh"),
    Op("sm3p1", _unary(0x109, 1), crypto.sm3p1, "zksh"),
    *(Op(f"{name}.{bs}", _r(bs << 5 | f5, 0), getattr(crypto, name)(bs), "zksed")
      for bs in range(4) for f5, name in ((0x18, "sm4ed"), (0x1A, "sm4ks"))),
]


def test_crypto_matches_qemu(tmp_path: Path) -> None:
    cases = _cases(CRYPTO_OPS, 7, 12)
    elf, image = build(_program(cases), tmp_path, rvc=False)
    status, qemu_out = run_qemu(elf, CPU)
    assert status == 0, "the program failed under qemu-riscv64 itself"
    theirs = _results(qemu_out)
    assert not _mismatches(cases, theirs, _expected(cases)), "reference model vs qemu"
    for backend in ("python", "native") if host_supported() else ("python",):
        ours = _pemu(image, backend, parse_cpu(CPU))
        assert not _mismatches(cases, ours, theirs), backend


def test_shorthands_name_the_parts() -> None:
    zk = parse_cpu("rv64,zk=on")
    assert {"zkne", "zknd", "zknh", "zkt", "zbkb", "zbkc", "zbkx"} <= zk.extensions
    assert not zk.has("zksed") and "zk" not in zk.isa_string.split("_")
    assert parse_cpu("rv64,zks=on").has("zksh")


def test_aes_round_known_answer() -> None:
    # FIPS-197 appendix B: the state at the start of round 1 and after its MixColumns
    start = bytes.fromhex("193de3bea0f4e22b9ac68d2ae9f84808")
    after_mix = bytes.fromhex("046681e5e0cb199a48f8d37a2806264c")
    lo, hi = int.from_bytes(start[:8], "little"), int.from_bytes(start[8:], "little")
    assert crypto.aes64esm(lo, hi) == int.from_bytes(after_mix[:8], "little")
    assert crypto.aes64esm(hi, lo) == int.from_bytes(after_mix[8:], "little")
    # decryption undoes it: InvMixColumns, then the inverse round
    assert crypto.aes64im(crypto.aes64esm(lo, hi)) == crypto.aes64es(lo, hi)


@pytest.mark.parametrize("op", CRYPTO_OPS[:6:5], ids=lambda op: op.name)
def test_crypto_needs_its_extension(op: Op, tmp_path: Path) -> None:
    from tests.riscv.test_riscv_scalar_ext import A0, A1, A2, _legal
    word = op.word(A0, A1, A2)
    assert not _legal(word, "rv64", tmp_path)
    assert _legal(word, f"rv64,{op.extension}=on", tmp_path)
