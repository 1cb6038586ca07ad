"""The execution engine with the RISC-V frontend and user-mode memory."""

from __future__ import annotations

import struct

import pytest

from pemu.accel.tcg.engine import DebugStop, TCGEngine
from pemu.linux_user.vmem import PROT_EXEC, PROT_READ, PROT_WRITE, GuestFault, GuestVirtualMemory
from pemu.target.riscv.exceptions import ECALL_U, RiscvTrap
from pemu.target.riscv.tcg_target import RISCV64

CODE = 0x10000
DATA = 0x20000


def _i_type(opcode: int, funct3: int, rd: int, rs1: int, imm: int) -> int:
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (funct3 << 12) | (rd << 7) | opcode


def ld(rd: int, rs1: int, imm: int = 0) -> int:
    return _i_type(0x03, 3, rd, rs1, imm)


def addi(rd: int, rs1: int, imm: int) -> int:
    return _i_type(0x13, 0, rd, rs1, imm)


def sd(rs2: int, rs1: int, imm: int = 0) -> int:
    return ((imm >> 5 & 0x7F) << 25) | (rs2 << 20) | (rs1 << 15) | (3 << 12) | (
        (imm & 0x1F) << 7) | 0x23


ECALL = 0x00000073


@pytest.fixture
def machine():
    mem = GuestVirtualMemory()
    mem.map_anonymous(CODE, 0x1000, PROT_READ | PROT_EXEC)
    mem.map_anonymous(DATA, 0x1000, PROT_READ | PROT_WRITE)
    engine = TCGEngine(mem, RISCV64)
    cpu = engine.create_cpu()
    cpu.state.pc = CODE
    return mem, engine, cpu


def _load(mem, insns):
    mem.write_initial(CODE, b"".join(struct.pack("<I", i) for i in insns))


@pytest.mark.parametrize("addr", [0, 0x30000, 0xFFFF_FFFF_0000_0000, (1 << 36) + 8])
def test_bad_addresses_fault_precisely(machine, addr):
    """Unmapped and out-of-space addresses give GuestFault at the faulting insn."""
    mem, engine, cpu = machine
    _load(mem, [addi(5, 0, 7), ld(10, 11), ECALL])
    cpu.state.set_x(11, addr)
    with pytest.raises(GuestFault) as info:
        cpu.run()
    assert info.value.addr == addr
    assert info.value.access == "r"
    assert cpu.state.pc == CODE + 4
    assert cpu.state.x(5) == 7  # the instruction before the fault completed


def test_store_to_read_only_page_faults(machine):
    mem, engine, cpu = machine
    _load(mem, [sd(5, 11), ECALL])
    cpu.state.set_x(11, CODE)  # code page is not writable
    with pytest.raises(GuestFault) as info:
        cpu.run()
    assert info.value.access == "w" and info.value.mapped
    assert cpu.state.pc == CODE


def test_self_modifying_store_invalidates_translation(machine):
    """A store to a page holding translated code drops the stale block."""
    mem, engine, cpu = machine
    mem.protect(CODE, 0x1000, PROT_READ | PROT_WRITE | PROT_EXEC)
    _load(mem, [addi(10, 0, 1), ECALL])
    cpu.state.pc = CODE
    with pytest.raises(RiscvTrap) as info:
        cpu.run()
    assert info.value.cause == ECALL_U and cpu.state.x(10) == 1
    # the guest rewrites its first instruction through an ordinary store
    cpu.state.set_x(11, CODE)
    cpu.state.set_x(12, addi(10, 0, 2) | (ECALL << 32))
    mem.write_initial(CODE + 0x100, struct.pack("<II", sd(12, 11), ECALL))
    cpu.state.pc = CODE + 0x100
    with pytest.raises(RiscvTrap):
        cpu.run()
    assert engine.stats["invalidated_pages"] >= 1
    cpu.state.pc = CODE
    with pytest.raises(RiscvTrap):
        cpu.run()
    assert cpu.state.x(10) == 2


def test_breakpoint_stops_before_the_instruction(machine):
    mem, engine, cpu = machine
    _load(mem, [addi(10, 0, 1), addi(10, 10, 1), addi(10, 10, 1), ECALL])
    engine.breakpoints.add(CODE + 8)
    cpu.state.pc = CODE
    with pytest.raises(DebugStop):
        cpu.run()
    assert cpu.state.pc == CODE + 8 and cpu.state.x(10) == 2
    cpu.skip_breakpoint_once = True
    with pytest.raises(RiscvTrap):
        cpu.run()
    assert cpu.state.x(10) == 3


def test_request_exit_returns_from_run(machine):
    mem, engine, cpu = machine
    jal_self = 0x0000006F  # jal x0, 0: an infinite loop
    _load(mem, [jal_self])
    cpu.state.pc = CODE
    import threading

    threading.Timer(0.2, cpu.request_exit).start()
    cpu.run()  # returns instead of spinning forever
    assert cpu.state.pc == CODE
