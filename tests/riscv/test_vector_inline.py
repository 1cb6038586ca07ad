"""The vector instructions translated inline (target/riscv/vector_inline.py): vsetvli/
vsetivli and the unit-stride, whole-register and mask loads and stores as ``ld_bytes``/
``st_bytes``, the helper as their slow path.

* random cases of exactly those instructions (and of vadd/vsub/vand/vor/vxor,
  vmv.v.*, vmv<nr>r.v and vsll/vsrl/vsra .vx/.vi, as ``vec_op``), right after a
  vsetvli in the same block (where the inline path applies), at addresses around a
  page boundary (runs that cross it take the helper), random vtype and AVL (vl = 0
  and AVL > VLMAX included), masked forms too (always the helper): the registers,
  vl, vtype and memory against qemu-riscv64, on both backends; on the native one the
  helper must have run for few of them (the python backend's ld_bytes/st_bytes never
  copy: it runs the helper);
* a load or store running into an unmapped page: the same fault and vstart on both
  backends (the spec's resumable trap), a fault-only-first load trims vl instead;
* mstatus.VS: the inline path needs Dirty, so a Clean VS still becomes Dirty and an Off
  one still traps (tests/system/test_vs_tracking.py checks that against QEMU, and the
  inline paths in system mode against scalar code).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from pemu.accel.tcg.backend.x86_64 import host_supported
from pemu.accel.tcg.engine import TCGEngine
from pemu.linux_user.vmem import PROT_EXEC, PROT_READ, PROT_WRITE, GuestFault, GuestVirtualMemory
from pemu.target.riscv import insn_vector
from pemu.target.riscv.exceptions import ECALL_U, RiscvTrap
from pemu.target.riscv.isa import parse_cpu
from pemu.target.riscv.tcg_target import riscv64_target
from tests.riscv import rvv_programs as gen
from tests.riscv.rvtest_harness import LOAD_ADDR, REGION_SIZE, build, run_image, run_qemu
from tests.riscv.test_riscv_vector import _describe, _qemu_cpu, _records

BACKENDS = ("python", "native") if host_supported() else ("python",)
_ARITH = [("vadd", "vxi"), ("vsub", "vx"), ("vand", "vxi"), ("vor", "vxi"), ("vxor", "vxi"),
          ("vmv.v", "vxi"), ("vsll", "xi"), ("vsrl", "xi"), ("vsra", "xi")]
_EMUL = {"mf8": 1 / 8, "mf4": 1 / 4, "mf2": 1 / 2, "m1": 1, "m2": 2, "m4": 4, "m8": 8}


def _fast_path_case(rng: random.Random, vlen: int) -> gen.Case | None:
    sew, lmul = rng.choice(gen.SEWS), rng.choice(gen.LMULS)
    if sew > 64 * _EMUL[lmul]:  # SEW > ELEN * LMUL: a reserved vtype
        return None
    eew = rng.choice((8, 16, 32, 64))
    emul = eew / sew * _EMUL[lmul]
    kind = rng.random()
    store = rng.random() < 0.5
    masked = ", v0.t" if rng.random() < 0.15 else ""
    if kind < 0.35:  # integer arithmetic and vmv.v.*
        store = False
        name, forms = rng.choice(_ARITH)
        form = rng.choice(forms)
        vd, vs2 = rng.choice(("v8", "v8", "v16")), "v16"
        imm = rng.randrange(32) if name in ("vsll", "vsrl", "vsra") else rng.randrange(-16, 16)
        operand = {"v": "v24", "x": "a1", "i": str(imm)}[form]
        if name == "vmv.v" and rng.random() < 0.3:
            insn = f"vmv{rng.choice((1, 2, 4, 8))}r.v v8, v16"
        elif name == "vmv.v":
            insn = f"vmv.v.{form} {vd}, {operand}"
        else:
            insn = f"{name}.v{form} {vd}, {vs2}, {operand}{masked}"
    elif kind < 0.5:
        n = rng.choice((1, 2, 4, 8))
        insn = f"vs{n}r.v v8, (a3)" if store else f"vl{n}re{eew}.v v8, (a3)"
    elif kind < 0.6:
        insn = "vsm.v v8, (a3)" if store else "vlm.v v8, (a3)"
    else:
        if not 1 / 8 <= emul <= 8:
            return None
        ff = "ff" if not store and rng.random() < 0.3 else ""
        insn = f"v{'s' if store else 'l'}e{eew}{ff}.v v8, (a3){masked}"
    vlmax = int(vlen * _EMUL[lmul]) // sew
    if vlmax == 0:
        return None
    avl = rng.choice((vlmax, vlmax, rng.randrange(vlmax + 1), vlmax + 3, 0, 1))
    policy = rng.choice(("tu, mu", "ta, ma", "tu, ma"))
    # a3 = a page boundary inside the buffer plus an offset either side of it: the
    # longest run (8 registers) may cross it, or lie on one side
    offset = rng.choice((rng.randrange(-1024, 1024), rng.randrange(-40, 40), 0))
    prep = ["la a3, mem", "li t2, 5120", "add a3, a3, t2", "srli a3, a3, 12",
            "slli a3, a3, 12", f"addi a3, a3, {offset}",
            # vtype once more in the instruction's own block (csrwi/fsrmi may end one)
            f"vsetvli zero, zero, e{sew}, {lmul}, {policy}"]
    scalar = rng.getrandbits(64)
    return gen.Case(insn, sew, lmul, avl, policy, 0, gen._init_bytes(rng, 32 * vlen // 8),
                    scalar, 0, 0, store=store, prep=prep)


def _cases(seed: int, count: int, vlen: int) -> list[gen.Case]:
    rng = random.Random(seed)
    out: list[gen.Case] = []
    while len(out) < count:
        case = _fast_path_case(rng, vlen)
        if case is not None:
            out.append(case)
    # every shift the host does for each SEW, with a partial last 16-byte step
    for name in ("vsll", "vsrl", "vsra"):
        for sew in (16, 32, 64):
            for operand in ("a1", str(rng.randrange(32))):
                form = "x" if operand == "a1" else "i"
                lmul = rng.choice(("m1", "m2"))
                vlmax = int(vlen * _EMUL[lmul]) // sew
                out.append(gen.Case(
                    f"{name}.v{form} v8, v16, {operand}", sew, lmul, vlmax - 1, "tu, mu", 0,
                    gen._init_bytes(rng, 32 * vlen // 8), rng.getrandbits(64), 0, 0,
                    prep=[f"vsetvli zero, zero, e{sew}, {lmul}, tu, mu"]))
    return out


@pytest.mark.parametrize("vlen", [128, 256])
def test_inline_moves_match_qemu(vlen: int, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cases = _cases(77 + vlen, 90, vlen)
    elf, image = build(gen.program(cases, vlen, 5), tmp_path, rvc=False)
    status, qemu_out = run_qemu(elf, _qemu_cpu(vlen))
    assert status == 0, "the program failed under qemu-riscv64 itself"
    theirs = _records(qemu_out, cases, vlen)
    isa = parse_cpu(f"rv64,v=true,vlen={vlen}")
    helper_runs: dict[str, int] = {}
    for backend in BACKENDS:
        count = [0]
        for name in ("exec_mem", "exec_op_v"):
            monkeypatch.setattr(insn_vector, name, _counting(getattr(insn_vector, name), count))
        out = run_image(image, linux=True, isa=isa, backend=backend, max_traps=100_000)
        assert out.trap is None, f"{backend}: stopped by {out.trap} at pc 0x{out.pc:x}"
        ours = _records(bytes(out.stdout), cases, vlen)
        bad = [_describe(c, a, b, vlen) for c, a, b in zip(cases, ours, theirs, strict=True)
               if a != b]
        assert not bad, f"{backend}: {len(bad)} of {len(cases)} differ:\n" + "\n".join(bad[:8])
        helper_runs[backend] = count[0]
        monkeypatch.undo()
    # every case moves 8 whole-register groups besides its instruction: the helper
    # does them all on python (whose vec_op runs the arithmetic itself); natively only
    # page-crossing runs and masked forms take it
    assert helper_runs["python"] >= 8 * len(cases)
    if "native" in helper_runs:
        assert helper_runs["native"] < helper_runs["python"] // 4, helper_runs


def _counting(fn: Callable[[object], None], count: list[int]) -> Callable[[object], None]:
    def counted(v: object) -> None:
        count[0] += 1
        fn(v)
    return counted


# -- faults: the helper takes over with the exact element ---------------------------------

TOP = LOAD_ADDR + REGION_SIZE  # the first unmapped byte above the region


def _run(source: str, tmp_path: Path, backend: str, a3: int) -> tuple[object, BaseException]:
    _, image = build(".option arch, +v\n.globl _start\n_start:\n" + source + "\necall",
                     tmp_path, rvc=False)
    mem = GuestVirtualMemory()
    mem.map_anonymous(LOAD_ADDR, REGION_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC)
    mem.write_initial(LOAD_ADDR, image)
    mem.write_initial(TOP - 64, bytes(range(1, 65)))
    cpu = TCGEngine(mem, riscv64_target(parse_cpu("rv64,v=true,vlen=128")),
                    backend=backend).create_cpu()
    cpu.state.pc = LOAD_ADDR
    cpu.state.set_x(13, a3)
    cpu.state.set_x(14, TOP - 64)
    try:
        cpu.run()
    except (RiscvTrap, GuestFault) as stop:
        return cpu.state, stop
    raise AssertionError("the snippet did not stop")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("insn", "a3", "vstart"), [
    ("vle8.v v1, (a3)", TOP - 5, 5),  # the run crosses into the unmapped page
    ("vle8.v v1, (a3)", TOP + 64, 0),  # the whole run unmapped
    ("vse16.v v1, (a3)", TOP - 6, 3),
    ("vl1re8.v v1, (a3)", TOP - 9, 9),
])
def test_a_fault_leaves_vstart_at_the_faulting_element(
        backend: str, insn: str, a3: int, vstart: int, tmp_path: Path) -> None:
    # a mapped run first (a4 = TOP - 64), as a warm TLB would have it
    source = f"""
        vsetivli t0, 16, e8, m1, ta, ma
        vmv.v.i v1, 7
        vle8.v v2, (a4)
        {'vsetivli t0, 8, e16, m1, ta, ma' if 'e16' in insn else ''}
        {insn}"""
    state, trap = _run(source, tmp_path, backend, a3)
    assert isinstance(trap, GuestFault) and trap.addr == max(TOP, a3)
    vector = state.vector
    assert vector.vstart == vstart
    v1 = bytes(vector.regs[16:32])
    if "vle" in insn or "vl1r" in insn:
        first = bytes(range(65 - (TOP - a3), 65))[:vstart] if a3 < TOP else b""
        assert v1 == first + bytes([7] * (16 - vstart))  # the rest undisturbed


@pytest.mark.parametrize("backend", BACKENDS)
def test_fault_only_first_trims_vl(backend: str, tmp_path: Path) -> None:
    state, trap = _run("""
        vsetivli t0, 16, e8, m1, ta, ma
        vle8.v v2, (a4)
        vle8ff.v v1, (a3)
        csrr a0, vl""", tmp_path, backend, TOP - 5)
    assert isinstance(trap, RiscvTrap) and trap.cause == ECALL_U
    assert state.x(10) == 5 and state.vector.vstart == 0
    assert bytes(state.vector.regs[16:21]) == bytes(range(60, 65))


@pytest.mark.parametrize("backend", BACKENDS)
def test_vsetvli_inline_gives_the_helpers_vl(backend: str, tmp_path: Path) -> None:
    """AVL below, at and above VLMAX, x0 forms, vsetivli, then the vl CSR (a helper)."""
    state, trap = _run("""
        li t1, 5
        vsetvli a0, t1, e16, m2, ta, ma
        li t1, 1000
        vsetvli a1, t1, e8, mf2, tu, mu
        vsetvli a2, zero, e64, m8, ta, ma
        vsetvli zero, zero, e32, m8, ta, ma
        csrr a4, vl
        vsetivli a5, 31, e8, m1, ta, ma
        csrr a6, vtype
        csrr a7, vstart""", tmp_path, backend, 0)
    assert isinstance(trap, RiscvTrap) and trap.cause == ECALL_U
    assert [state.x(r) for r in (10, 11, 12, 14, 15, 16, 17)] == [
        5, 8, 16, 16, 16, 0xC0, 0]
