"""Zvkned (vector AES), which QEMU 7.2 lacks, against FIPS-197's known answers: the
key schedule (vaeskf1.vi, vaeskf2.vi) and the rounds (vaesz.vs, vaesem.vs,
vaesef.vs) encrypt Appendix C.1's AES-128 and C.3's AES-256 example blocks, and the
decryption rounds (vaesdm.vs, vaesdf.vs) give the plaintext back; two element
groups at once with the .vv forms.  Hand-encoded: binutils 2.40 lacks Zvkned."""

from __future__ import annotations

from pathlib import Path

import pytest

from pemu.target.riscv.exceptions import ILLEGAL_INSN
from pemu.target.riscv.isa import parse_cpu
from tests.native.native_harness import needs_native
from tests.riscv.rvtest_harness import build, run_image

BACKENDS = ["python", pytest.param("native", marks=needs_native)]
PLAIN = bytes.fromhex("00112233445566778899aabbccddeeff")
KEY128 = bytes(range(16))
CIPHER128 = bytes.fromhex("69c4e0d86a7b0430d8cdb78070b4c55a")
KEY256 = bytes(range(32))
CIPHER256 = bytes.fromhex("8ea2b7ca516745bfeafc49904b496089")
VV, VS, KF1, KF2 = 0x28, 0x29, 0x22, 0x2A
DM, DF, EM, EF, Z = 0, 1, 2, 3, 7


def op_ve(funct6: int, vd: int, vs2: int, vs1: int) -> str:
    word = funct6 << 26 | 1 << 25 | vs2 << 20 | vs1 << 15 | 2 << 12 | vd << 7 | 0x77
    return f".word 0x{word:08x}"


def _run(tmp: Path, body: list[str], out_regs: list[int], backend: str, cpu: str = "max",
         lmul: int = 1) -> tuple[list[bytes], object]:
    """v1/v2 = key (low, high 16 bytes), v3 = plaintext (twice with lmul 2: v3, v4...)
    at e32 with vl = 4 * lmul; returns each register of ``out_regs`` (16 bytes)."""
    head = [f"vsetivli zero, {4 * lmul}, e32, m{lmul}, ta, ma", "la t1, key",
            "vl1re32.v v1, (t1)", "addi t1, t1, 16", "vl1re32.v v2, (t1)",
            "la t1, plain", "vl1re32.v v4, (t1)", "vl1re32.v v5, (t1)", "la s11, out"]
    store = [line for r in out_regs for line in (f"vs1r.v v{r}, (s11)", "addi s11, s11, 16")]
    size = 16 * len(out_regs)
    key = KEY256
    source = "\n".join([
        ".option arch, +v", ".globl _start", "_start:", *head, *body, *store,
        "li a0, 1", "la a1, out", f"li a2, {size}", "li a7, 64", "ecall",
        "li a0, 0", "li a7, 93", "ecall", ".data", ".align 4",
        "key:", *(f".byte {b}" for b in key), "plain:", *(f".byte {b}" for b in PLAIN),
        ".align 4", "out:", f".zero {size}"])
    _, image = build(source, tmp)
    outcome = run_image(image, linux=True, isa=parse_cpu(cpu), backend=backend)
    data = bytes(outcome.stdout)
    return [data[i:i + 16] for i in range(0, len(data), 16)], outcome


def _aes128_encrypt_decrypt() -> list[str]:
    """Round keys in v8..v18 (from v1), state in v4; then decrypt v4 into v5."""
    body = ["vmv.v.v v8, v1"]
    for r in range(1, 11):
        body.append(op_ve(KF1, 8 + r, 7 + r, r))  # v(8+r) = next(v(7+r))
    body.append(op_ve(VS, 4, 8, Z))
    body += [op_ve(VS, 4, 8 + r, EM) for r in range(1, 10)]
    body += [op_ve(VS, 4, 18, EF), "vmv.v.v v5, v4", op_ve(VS, 5, 18, Z)]
    body += [op_ve(VS, 5, 8 + r, DM) for r in range(9, 0, -1)]
    body.append(op_ve(VS, 5, 8, DF))
    return body


@pytest.mark.parametrize("backend", BACKENDS)
def test_aes128_known_answer_and_back(backend: str, tmp_path: Path) -> None:
    # FIPS-197 C.1 uses the key 000102...0f: the low 16 bytes of KEY256 (v1)
    (cipher, plain), outcome = _run(tmp_path, _aes128_encrypt_decrypt(), [4, 5], backend)
    assert outcome.trap is None, outcome.trap
    assert cipher == CIPHER128
    assert plain == PLAIN


@pytest.mark.parametrize("backend", BACKENDS)
def test_aes256_known_answer(backend: str, tmp_path: Path) -> None:
    body = ["vmv.v.v v8, v1", "vmv.v.v v9, v2"]
    for r in range(2, 15):  # v(8+r) = next(two back: v(6+r), previous: v(7+r))
        body += [f"vmv.v.v v{8 + r}, v{6 + r}", op_ve(KF2, 8 + r, 7 + r, r)]
    body.append(op_ve(VS, 4, 8, Z))
    body += [op_ve(VS, 4, 8 + r, EM) for r in range(1, 14)]
    body.append(op_ve(VS, 4, 22, EF))
    (cipher,), outcome = _run(tmp_path, body, [4], backend)
    assert outcome.trap is None, outcome.trap
    assert cipher == CIPHER256


def test_vv_forms_run_every_element_group(tmp_path: Path) -> None:
    """LMUL 2: two groups (v4: the plaintext, v5: the plaintext), each with its own
    round key from v8/v9 (the same key twice): vaesem.vv + vaesef.vv = a two-round
    'cipher' per group; both groups must agree with each other and with .vs."""
    body = ["vmv1r.v v8, v1", "vmv1r.v v9, v1", "vmv2r.v v6, v4",
            op_ve(VV, 4, 8, EM), op_ve(VV, 4, 8, EF),
            "vsetivli zero, 4, e32, m1, ta, ma", op_ve(VS, 6, 1, EM), op_ve(VS, 6, 1, EF)]
    (g0, g1, ref), outcome = _run(tmp_path, body, [4, 5, 6], "python", lmul=2)
    assert outcome.trap is None, outcome.trap
    assert g0 == g1 == ref != PLAIN


def test_vaesz_has_only_the_vs_form(tmp_path: Path) -> None:
    _, outcome = _run(tmp_path, [op_ve(VV, 4, 8, Z)], [4], "python")
    assert outcome.trap is not None and outcome.trap.cause == ILLEGAL_INSN


@pytest.mark.parametrize("cpu,body", [
    ("rv64,v=true", [op_ve(VS, 4, 1, Z)]),  # no Zvkned
    ("max", ["vsetivli zero, 4, e64, m1, ta, ma", op_ve(VS, 4, 1, Z)]),  # SEW 64
    ("max", ["vsetivli zero, 3, e32, m1, ta, ma", op_ve(VS, 4, 1, Z)]),  # vl not 4k
    ("max", [op_ve(VS, 4, 4, Z)]),  # .vs with vd overlapping vs2
])
def test_illegal_settings(cpu: str, body: list[str], tmp_path: Path) -> None:
    _, outcome = _run(tmp_path, body, [4], "python", cpu=cpu)
    assert outcome.trap is not None and outcome.trap.cause == ILLEGAL_INSN
