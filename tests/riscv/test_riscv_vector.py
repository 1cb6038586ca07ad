"""RVV 1.0: random instruction cases against qemu-riscv64 7.2, on both backends.

tests/riscv/rvv_programs.py generates the programs (one instruction family each, random
vtype/vl/registers/scalars, masked and unmasked); each case's record (all 32 vector
registers, vl, vtype, vxsat, a scalar result, the memory after a store) must be the
same under qemu-riscv64 ``-cpu rv64,v=true,vlen=N,elen=64`` and under pemu.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest

from pemu.accel.tcg.backend.x86_64 import host_supported
from pemu.accel.tcg.engine import TCGEngine
from pemu.fpu.flags import DZ, NV, NX, OF
from pemu.linux_user.arch_riscv64 import RISCV64_LINUX
from pemu.linux_user.vmem import PROT_EXEC, PROT_READ, PROT_WRITE, GuestFault, GuestVirtualMemory
from pemu.target.riscv.cpu_state import RiscvCPUState
from pemu.target.riscv.exceptions import ECALL_U, ILLEGAL_INSN, RiscvTrap
from pemu.target.riscv.isa import CpuOptionError, RiscvIsa, parse_cpu
from pemu.target.riscv.tcg_target import riscv64_target
from pemu.target.riscv.vector_fp import FORMATS, REC7_TABLE, RSQRT7_TABLE, rec7, rsqrt7
from tests.riscv import rvv_programs as gen
from tests.riscv.rvtest_harness import LOAD_ADDR, REGION_SIZE, build, run_image, run_qemu


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


# (family, cases per mnemonic, VLEN): every family at VLEN 128, those whose element
# counts and offsets depend most on VLEN at 256 too
RUNS = [("integer", 2, 128), ("reduction_mask", 4, 128), ("permute", 4, 128),
        ("memory", 1, 128), ("vset", 10, 128), ("fp", 2, 128), ("fp_wide", 2, 128),
        ("integer", 1, 256), ("permute", 4, 256), ("memory", 1, 256), ("reduction_mask", 2, 256)]


@pytest.mark.parametrize(("family", "per", "vlen"), RUNS)
def test_vector_family_matches_qemu(family: str, per: int, vlen: int, tmp_path: Path) -> None:
    _differential(family, 1000 + vlen, per, vlen, tmp_path)


# -- what QEMU 7.2 cannot check: against the specification -----------------------------------

V_ISA = parse_cpu("rv64,v=true,vlen=128")
TOP = LOAD_ADDR + REGION_SIZE  # the first unmapped byte above run_image's region


@dataclass
class Stop:
    """Where a snippet stopped: the trap (an ecall at its end) or the memory fault."""

    state: RiscvCPUState
    trap: BaseException

    def x(self, i: int) -> int:
        return self.state.x(i)


def _run(source: str, tmp_path: Path, isa: RiscvIsa = V_ISA, **regs: int) -> Stop:
    _, image = build(".option arch, +v\n.globl _start\n_start:\n" + source + "\necall",
                     tmp_path, rvc=False)
    mem = GuestVirtualMemory()
    mem.map_anonymous(LOAD_ADDR, REGION_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC)
    mem.write_initial(LOAD_ADDR, image)
    cpu = TCGEngine(mem, riscv64_target(isa), backend="python").create_cpu()
    cpu.state.pc = LOAD_ADDR
    for name, value in regs.items():
        cpu.state.set_x(int(name[1:]), value)
    try:
        cpu.run()
    except (RiscvTrap, GuestFault) as stop:
        return Stop(cpu.state, stop)
    raise AssertionError("the snippet did not stop")


def _ecall(out: Stop) -> bool:
    return isinstance(out.trap, RiscvTrap) and out.trap.cause == ECALL_U


def _vreg(out: Stop, reg: int, vlenb: int = 16) -> bytes:
    return bytes(out.state.vector.regs[reg * vlenb:(reg + 1) * vlenb])


@pytest.mark.parametrize("signed", [False, True])
def test_rtz_conversions_round_toward_zero_whatever_frm(signed: bool, tmp_path: Path) -> None:
    """vfcvt.rtz.* (QEMU 7.2 crashes on them) = the plain conversion with frm = RTZ."""
    x = "x" if signed else "xu"
    values = [1.5, -1.5, 2.5, -2.7, 7.99, 0.49, 1e10, -1e10]
    data = ", ".join(f"0x{struct.unpack('<I', struct.pack('<f', v))[0]:x}" for v in values)
    out = _run(f"""
        la a0, data
        vsetivli zero, 8, e32, m2, ta, ma
        vle32.v v2, (a0)
        fsrmi 4
        vfcvt.rtz.{x}.f.v v4, v2
        fsrmi 1
        vfcvt.{x}.f.v v6, v2
        fsrmi 0
        vsetivli zero, 8, e16, m1, ta, ma
        vfncvt.rtz.{x}.f.w v8, v2
        j done
        .balign 8
        data: .word {data}
        done:""", tmp_path)
    assert _ecall(out)
    assert _vreg(out, 4) + _vreg(out, 5) == _vreg(out, 6) + _vreg(out, 7)
    got = struct.unpack("<8i" if signed else "<8I", _vreg(out, 4) + _vreg(out, 5))
    want = [int(v) if signed or v >= 0 else 0 for v in values]
    want = [max(min(w, 2**31 - 1), -2**31) if signed else min(w, 2**32 - 1) for w in want]
    assert list(got) == want
    narrow = struct.unpack("<8h" if signed else "<8H", _vreg(out, 8))
    assert list(narrow) == [max(min(w, 2**15 - 1), -2**15) if signed else min(w, 2**16 - 1)
                            for w in [int(v) if signed or v >= 0 else 0 for v in values]]


def test_fault_only_first_trims_vl_at_the_first_faulting_element(tmp_path: Path) -> None:
    out = _run("""
        vsetivli t0, 16, e8, m1, ta, ma
        vmv.v.i v1, 0
        vle8ff.v v1, (a3)
        csrr a0, vl""", tmp_path, x13=TOP - 5)
    assert _ecall(out)
    assert out.x(10) == 5 and out.x(5) == 16


@pytest.mark.parametrize(("insn", "base", "vstart"), [
    ("vle8.v v1, (a3)", TOP - 5, 5), ("vse16.v v1, (a3)", TOP - 6, 3),
    ("vlse32.v v1, (a3), a4", TOP - 12, 3),  # a4 = 4
    ("vle8ff.v v1, (a3)", TOP, 0),  # fault-only-first faults on element 0 like any load
])
def test_a_fault_in_the_middle_leaves_vstart_at_the_faulting_element(
        insn: str, base: int, vstart: int, tmp_path: Path) -> None:
    sew = re.search(r"e(\d+)", insn.split(".")[0]).group(1)  # type: ignore[union-attr]
    out = _run(f"vsetivli t0, 8, e{sew}, m1, ta, ma\n{insn}", tmp_path, x13=base, x14=4)
    assert isinstance(out.trap, GuestFault) and out.trap.addr == TOP  # the SIGSEGV to be
    assert out.state.vector.vstart == vstart


@pytest.mark.parametrize("insn", ["vsetvli a0, a1, e8, m1, ta, ma", "vadd.vv v1, v2, v3",
                                  "vle8.v v1, (a1)", "csrr a0, vl", "csrr a0, vlenb"])
def test_vector_instructions_and_csrs_need_v(insn: str, tmp_path: Path) -> None:
    with_vtype = f"vsetvli t0, zero, e8, m1, ta, ma\n{insn}"
    assert _ecall(_run(with_vtype, tmp_path, isa=V_ISA, x11=LOAD_ADDR))
    trap = _run(insn, tmp_path, isa=parse_cpu("rv64")).trap
    assert isinstance(trap, RiscvTrap) and trap.cause == ILLEGAL_INSN


@pytest.mark.parametrize(("cpu", "vlenb", "e64_legal"), [
    ("rv64,v=true", 16, True), ("rv64,v=on,vlen=512", 64, True),
    ("rv64,v=true,elen=32", 16, False), ("max", 16, True),
])
def test_vlen_and_elen_properties(cpu: str, vlenb: int, e64_legal: bool, tmp_path: Path) -> None:
    out = _run("""
        csrr a0, vlenb
        vsetvli a1, zero, e64, m1, ta, ma
        csrr a2, vtype""", tmp_path, isa=parse_cpu(cpu))
    assert out.x(10) == vlenb
    assert (out.x(11) == vlenb // 8) is e64_legal
    assert (out.x(12) >> 63 == 0) is e64_legal


def test_cpu_option_parsing() -> None:
    isa = parse_cpu("rv64,v=true,vlen=256,elen=64,vext_spec=v1.0")
    assert isa.vlenb == 32 and "v" in isa.isa_string.split("_")[0]
    assert parse_cpu("rv64").vlenb == 0
    for bad in ("rv64,vlen=96", "rv64,vlen=2048", "rv64,elen=16", "rv64,vext_spec=v0.7.1"):
        with pytest.raises(CpuOptionError):
            parse_cpu(bad)


def test_at_hwcap_has_v_with_the_extension() -> None:
    v_bit = 1 << (ord("V") - ord("A"))
    assert RISCV64_LINUX.hwcap_for_cpu("rv64,v=true") & v_bit
    assert not RISCV64_LINUX.hwcap_for_cpu("rv64") & v_bit
    assert RISCV64_LINUX.hwcap_for_cpu(None) == RISCV64_LINUX.hwcap


def test_estimate_tables_are_the_specifications() -> None:
    """Entries of the RVV 1.0 spec's vfrec7/vfrsqrt7 tables (pemu computes them)."""
    assert [REC7_TABLE[i] for i in (0, 1, 6, 13, 64, 67, 100, 126, 127)] == [
        127, 125, 116, 104, 42, 40, 15, 1, 0]
    assert [RSQRT7_TABLE[i] for i in (0, 3, 20, 63, 64, 69, 100, 127)] == [
        52, 48, 30, 0, 127, 118, 76, 53]


def test_vfrec7_and_vfrsqrt7(tmp_path: Path) -> None:
    f32 = FORMATS[32]
    assert rec7(f32, 0x4000_0000, 0) == (0x3EFF_0000, 0)  # 1/2.0 ~ 0.498
    assert rsqrt7(f32, 0x4080_0000) == (0x3EFF_0000, 0)  # 1/sqrt(4.0) ~ 0.498
    assert rec7(f32, 0x8000_0000, 0) == (0xFF80_0000, DZ)  # -0 -> -inf
    assert rsqrt7(f32, 0xBF80_0000) == (0x7FC0_0000, NV)  # negative -> NaN
    assert rsqrt7(f32, 0x7F80_0000) == (0, 0)  # +inf -> +0
    assert rec7(f32, 1, 0) == (0x7F80_0000, OF | NX)  # tiny: overflows to inf (RNE)
    assert rec7(f32, 1, 1) == (0x7F7F_FFFF, OF | NX)  # ... to the largest finite (RTZ)
    assert rec7(f32, 0x7F7F_FFFF, 0) == (0x0020_0000, 0)  # huge: a subnormal estimate
    out = _run("""
        la a0, data
        vsetivli zero, 2, e32, m1, ta, ma
        vle32.v v1, (a0)
        vfrec7.v v2, v1
        vfrsqrt7.v v3, v1
        j done
        .balign 8
        data: .word 0x40000000, 0x40800000
        done:""", tmp_path)
    assert _ecall(out)
    assert struct.unpack("<2I", _vreg(out, 2)[:8]) == (0x3EFF_0000, 0x3E7F_0000)
    assert struct.unpack("<2I", _vreg(out, 3)[:8]) == (0x3F34_0000, 0x3EFF_0000)


@pytest.mark.parametrize(("vtype", "insn", "legal"), [
    ("e16, m1", "vwadd.vv v2, v3, v4", True),  # the source in the destination's top half
    ("e16, m1", "vwadd.vv v2, v2, v4", False),  # ... in its bottom half
    ("e16, mf2", "vwadd.vv v2, v2, v4", False),  # a fractional source may not overlap
    ("e16, m1", "vnsrl.wv v2, v2, v5", True),  # the source's lowest register
    ("e16, m1", "vnsrl.wv v3, v2, v5", False),
    ("e16, m2", "vmseq.vv v2, v2, v6", True),  # a mask into the lowest source register
    ("e16, m2", "vmseq.vv v3, v2, v6", False),
    ("e16, m1", "vzext.vf2 v2, v2", False),  # a fractional source (mf2) inside vd
    ("e16, m2", "vzext.vf2 v2, v3", True),
    ("e32, m1", "vfwcvt.f.f.v v2, v2", False),
])
def test_register_group_overlaps_follow_the_spec(vtype: str, insn: str, legal: bool,
                                                 tmp_path: Path) -> None:
    source = f"vsetvli t0, zero, {vtype}, ta, ma\n{insn}"
    assert _ecall(_run(source, tmp_path)) is legal
    elf, _ = build(f".option arch, +v\n.globl _start\n_start:\n{source}\nli a0, 0\n"
                   "li a7, 93\necall", tmp_path, rvc=False)
    assert (run_qemu(elf, _qemu_cpu(128))[0] == 0) is legal  # SIGILL otherwise
