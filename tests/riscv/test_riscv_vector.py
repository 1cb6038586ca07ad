"""RVV 1.0: random instruction cases against qemu-riscv64 7.2, on both backends.

tests/riscv/rvv_programs.py generates the programs (one instruction family each, random
vtype/vl/registers/scalars, masked and unmasked); each case's record (all 32 vector
registers, vl, vtype, vxsat, a scalar result, the memory after a store) must be the
same under qemu-riscv64 ``-cpu rv64,v=true,vlen=N,elen=64`` and under pemu.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pemu.accel.tcg.backend.x86_64 import host_supported
from pemu.target.riscv.isa import parse_cpu
from tests.riscv import rvv_programs as gen
from tests.riscv.rvtest_harness import build, run_image, run_qemu


def _qemu_cpu(vlen: int) -> str:
    return f"rv64,v=true,vlen={vlen},elen=64,vext_spec=v1.0"


def _records(out: bytes, cases: list[gen.Case], vlen: int) -> list[bytes]:
    records, at = [], 0
    for c in cases:
        size = gen.record_size(c, vlen)
        records.append(out[at:at + size])
        at += size
    assert at == len(out), f"{len(out)} bytes of output, {at} expected"
    return records


def _describe(c: gen.Case, ours: bytes, theirs: bytes, vlen: int) -> str:
    vlenb = vlen // 8
    where = []
    for r in range(32):
        a, b = ours[r * vlenb:(r + 1) * vlenb], theirs[r * vlenb:(r + 1) * vlenb]
        if a != b:
            where.append(f"v{r}: pemu {a.hex()} qemu {b.hex()}")
    tail = 32 * vlenb
    names = ("vl", "vtype", "vxsat", "a0", "fflags", "fa0")
    for k, name in enumerate(names):
        a, b = ours[tail + 8 * k:tail + 8 * k + 8], theirs[tail + 8 * k:tail + 8 * k + 8]
        if a != b:
            where.append(f"{name}: pemu {a[::-1].hex()} qemu {b[::-1].hex()}")
    if ours[tail + gen.RECORD_TAIL:] != theirs[tail + gen.RECORD_TAIL:]:
        where.append("memory after the store differs")
    return (f"{c.insn}  [e{c.sew},{c.lmul},{c.policy} avl={c.avl} a1={c.x1:#x} a2={c.x2:#x}"
            f" a4={c.stride} vxrm={c.vxrm} frm={c.frm} prep={c.prep}]\n    "
            + "\n    ".join(where[:6]))


def _differential(family: str, seed: int, per: int, vlen: int, tmp_path: Path) -> None:
    cases = gen.cases(family, seed, per, vlen)
    elf, image = build(gen.program(cases, vlen, seed), tmp_path, rvc=False)
    status, qemu_out = run_qemu(elf, _qemu_cpu(vlen))
    assert status == 0, "the program failed under qemu-riscv64 itself"
    theirs = _records(qemu_out, cases, vlen)
    isa = parse_cpu(f"rv64,v=true,vlen={vlen}")
    for backend in ("python", "native") if host_supported() else ("python",):
        out = run_image(image, linux=True, isa=isa, backend=backend, max_traps=100_000)
        assert out.trap is None, f"{backend}: stopped by {out.trap} at pc 0x{out.pc:x}"
        ours = _records(bytes(out.stdout), cases, vlen)
        bad = [_describe(c, a, b, vlen) for c, a, b in zip(cases, ours, theirs, strict=True)
               if a != b]
        assert not bad, f"{backend}: {len(bad)} of {len(cases)} differ:\n" + "\n".join(bad[:8])


# (family, cases per mnemonic)
FAMILIES = [("integer", 3), ("reduction_mask", 8), ("permute", 8), ("memory", 1), ("vset", 20),
            ("fp", 3), ("fp_wide", 3)]


@pytest.mark.parametrize(("family", "per"), FAMILIES)
@pytest.mark.parametrize("vlen", [128, 256])
def test_vector_family_matches_qemu(family: str, per: int, vlen: int, tmp_path: Path) -> None:
    _differential(family, 1000 + vlen, per, vlen, tmp_path)
