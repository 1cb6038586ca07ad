"""Execution tests on pemu's TCG engine for what the qemu comparison cannot show:
traps and their values, run-time rounding-mode checks, CSR rules, fence.i with
self-modifying code, and atomicity across host threads."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from rvtest_harness import LOAD_ADDR, build, run_asm

from pemu.accel.tcg.engine import TCGEngine
from pemu.linux_user.vmem import PROT_EXEC, PROT_READ, PROT_WRITE, GuestFault, GuestVirtualMemory
from pemu.target.riscv.exceptions import (
    BREAKPOINT,
    ECALL_U,
    ILLEGAL_INSN,
    LOAD_ADDR_MISALIGNED,
    STORE_ADDR_MISALIGNED,
    RiscvTrap,
)
from pemu.target.riscv.tcg_target import RISCV64

NX, DZ, NV = 1, 8, 16


def _trap(source: str, tmp_path: Path, **kw: object):
    out = run_asm(source, tmp_path, **kw)
    assert out.trap is not None
    return out


def test_ecall_stops_at_the_ecall(tmp_path: Path) -> None:
    out = _trap("li a0, 42\nnop\necall\nli a0, 0", tmp_path)
    assert out.trap.cause == ECALL_U
    assert out.pc == LOAD_ADDR + 6  # li (c.li) + nop (c.nop) are compressed
    assert out.x(10) == 42


@pytest.mark.parametrize("insn, length", [("ebreak", 4), ("c.ebreak", 2)])
def test_ebreak(insn: str, length: int, tmp_path: Path) -> None:
    out = _trap(f".option norvc\naddi a0, zero, 7\n.option rvc\n{insn}", tmp_path)
    assert out.trap.cause == BREAKPOINT and out.pc == LOAD_ADDR + 4 and out.x(10) == 7


@pytest.mark.parametrize("encoding, tval", [
    (".insn 4, 0x0000007b", 0x7B),  # custom-3 major opcode
    (".2byte 0x0000", 0x0000),  # the all-zero halfword
    (".2byte 0x6101", 0x6101),  # c.addi16sp with a zero immediate (reserved)
    (".insn 4, 0x02b5d553", 0x02B5D553),  # fadd.d with rm=5 (reserved)
    (".insn 4, 0x1015a52f", 0x1015A52F),  # lr.w with rs2 != 0
    (".insn 4, 0x30200073", 0x30200073),  # mret is privileged
])
def test_illegal_instruction(encoding: str, tval: int, tmp_path: Path) -> None:
    out = _trap(f".option norvc\naddi a1, zero, 3\n{encoding}\naddi a1, zero, 4", tmp_path)
    assert (out.trap.cause, out.trap.tval) == (ILLEGAL_INSN, tval)
    assert out.pc == LOAD_ADDR + 4 and out.x(11) == 3


@pytest.mark.parametrize("csr_insn", ["csrr a0, mstatus", "csrr a0, 0x7c0", "csrw cycle, a1",
                                      "csrr a0, cycleh", "csrw time, zero"])
def test_inaccessible_csrs_are_illegal(csr_insn: str, tmp_path: Path) -> None:
    out = _trap(f".option norvc\n{csr_insn}", tmp_path)
    assert out.trap.cause == ILLEGAL_INSN and out.pc == LOAD_ADDR
    image = build(f".globl _start\n_start:\n.option norvc\n{csr_insn}", tmp_path, "one")[1]
    assert out.trap.tval == int.from_bytes(image[:4], "little")


def test_counters(tmp_path: Path) -> None:
    before = time.monotonic_ns()
    out = _trap("rdtime a0\nrdcycle a1\nrdinstret a2\nrdtime a3\necall", tmp_path)
    after = time.monotonic_ns()
    assert out.trap.cause == ECALL_U
    assert before // 100 <= out.x(10) <= out.x(13) <= after // 100  # 10 MHz timebase
    assert before <= out.x(11) <= after and before <= out.x(12) <= after


def test_dynamic_rounding_mode_is_checked_at_run_time(tmp_path: Path) -> None:
    src = """
        li t0, 0x3ff0000000000000
        fmv.d.x fa1, t0
        fsrm zero
        fadd.d fa0, fa1, fa1, dyn
        fmv.x.d a0, fa0
        csrwi frm, 5
        fadd.d fa2, fa1, fa1, dyn
        ecall
    """
    out = _trap(src, tmp_path)
    assert out.trap.cause == ILLEGAL_INSN
    assert out.x(10) == 0x4000000000000000  # the first add ran with frm=0
    # both adds are in one block: the check must be redone after the CSR write
    for frm in (5, 6, 7):
        out = _trap(f"fsrmi {frm}\nfadd.s fa0, fa1, fa2\necall", tmp_path)
        assert out.trap.cause == ILLEGAL_INSN and out.pc == LOAD_ADDR + 4


def test_fflags_accumulate(tmp_path: Path) -> None:
    src = """
        li t0, 1
        fcvt.d.l fa1, t0
        fcvt.d.l fa2, zero
        li t0, 3
        fcvt.d.l fa3, t0
        fdiv.d fa0, fa1, fa3
        fdiv.d fa0, fa1, fa2
        frflags a0
        feq.d a1, fa0, fa0
        fcvt.w.d a2, fa0
        frflags a3
        ecall
    """
    out = _trap(src, tmp_path)
    assert out.x(10) == NX | DZ
    assert out.x(12) == 0x7FFF_FFFF and out.x(13) == NX | DZ | NV


def test_single_precision_writes_are_nan_boxed(tmp_path: Path) -> None:
    src = """
        li t0, 0x3f800000
        fmv.w.x fa1, t0
        fadd.s fa0, fa1, fa1
        fmv.x.d a0, fa0
        li t0, 0x123456783f800000
        fmv.d.x fa2, t0
        fadd.s fa3, fa2, fa1
        fmv.x.d a1, fa3
        ecall
    """
    out = _trap(src, tmp_path)
    assert out.x(10) == 0xFFFF_FFFF_4000_0000
    assert out.x(11) == 0xFFFF_FFFF_7FC0_0000  # improperly boxed input reads as NaN


@pytest.mark.parametrize("insn, cause", [
    ("amoadd.w a0, a1, (t0)", STORE_ADDR_MISALIGNED), ("amoswap.d a0, a1, (t0)",
                                                       STORE_ADDR_MISALIGNED),
    ("lr.w a0, (t0)", LOAD_ADDR_MISALIGNED), ("lr.d a0, (t0)", LOAD_ADDR_MISALIGNED),
    ("sc.d a0, a1, (t0)", STORE_ADDR_MISALIGNED),
])
def test_misaligned_atomics(insn: str, cause: int, tmp_path: Path) -> None:
    out = _trap(f"la t0, buf\naddi t0, t0, 2\n{insn}\necall\n.data\n.balign 8\nbuf: .zero 16",
                tmp_path)
    assert out.trap.cause == cause and out.trap.tval == out.x(5)


def test_x0_is_never_written_and_loads_to_x0_still_fault(tmp_path: Path) -> None:
    out = _trap("addi x0, x0, 5\nlui x0, 1\nld x0, 0(sp)\necall", tmp_path)
    assert out.cpu.state.slots[0] == 0
    with pytest.raises(GuestFault):
        run_asm("li a0, 9\nld x0, 8(zero)\necall", tmp_path)


def test_jalr_with_rd_equal_rs1(tmp_path: Path) -> None:
    out = _trap(".option norvc\nla a0, 1f\njalr a0, 0(a0)\nli a1, 1\n1: ecall", tmp_path)
    assert out.x(10) == LOAD_ADDR + 12 and out.x(11) == 0 and out.pc == LOAD_ADDR + 16


def test_fence_i_makes_new_code_visible(tmp_path: Path) -> None:
    # Runs the patch site once, overwrites it with "li a0, 2", fence.i, runs it again.
    src = """
        .option norvc
        li s0, 0
    again:
        li a0, 1
        bnez s0, done
        li s0, 1
        la t0, again
        la t1, patch
        lw t1, 0(t1)
        sw t1, 0(t0)
        fence.i
        j again
    done:
        ecall
    patch:
        li a0, 2
    """
    out = _trap(src, tmp_path)
    assert out.trap.cause == ECALL_U and out.x(10) == 2


ATOMIC_WORKER = """
    .globl _start
    _start:
        la t0, counter
        li t1, {n}
    1:  amoadd.d zero, a1, (t0)
    2:  lr.w t2, (t0)
        addi t2, t2, 0
        sc.w t3, t2, (t0)
        bnez t3, 2b
    3:  lr.d t2, 8(t0)
        add t2, t2, a1
        sc.d t3, t2, 8(t0)
        bnez t3, 3b
        addi t1, t1, -1
        bnez t1, 1b
        ecall
    .data
    .balign 16
    counter: .dword 0, 0
"""


def test_atomics_across_host_threads(tmp_path: Path) -> None:
    n, threads = 1500, 3
    _, image = build(ATOMIC_WORKER.replace("{n}", str(n)).replace("8(t0)", "(t4)")
                     .replace("la t0, counter", "la t0, counter\naddi t4, t0, 8"), tmp_path)
    mem = GuestVirtualMemory()
    mem.map_anonymous(LOAD_ADDR, 0x10000, PROT_READ | PROT_WRITE | PROT_EXEC)
    mem.write_initial(LOAD_ADDR, image)
    # short blocks: more interleaving
    engine = TCGEngine(mem, RISCV64, backend="python", max_insns=4)
    errors: list[BaseException] = []

    def worker() -> None:
        cpu = engine.create_cpu()
        cpu.state.pc = LOAD_ADDR
        cpu.state.set_x(11, 1)
        try:
            cpu.run()
        except RiscvTrap as trap:
            if trap.cause != ECALL_U:
                errors.append(trap)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors
    counter = image.index(b"\0" * 16, len(image) - 16)  # the .data words are last
    assert mem.load_slow(LOAD_ADDR + counter, 8) == n * threads  # amoadd.d
    assert mem.load_slow(LOAD_ADDR + counter + 8, 8) == n * threads  # lr.d/sc.d loop
