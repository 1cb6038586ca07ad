"""The IR builder's simplification (ir.simplify) and RISC-V's translation without the
optimizer (TCGTarget.optimize)."""

from __future__ import annotations

import dataclasses
import struct

import pytest

from pemu.accel.tcg.engine import TCGEngine
from pemu.accel.tcg.ir import Block, Const, IRBuilder
from pemu.accel.tcg.opcodes import ADD, MOV, SHL, SUB
from pemu.linux_user.vmem import PROT_EXEC, PROT_READ, GuestVirtualMemory
from pemu.target.riscv.exceptions import RiscvTrap
from pemu.target.riscv.tcg_target import RISCV64
from pemu.target.riscv.translate import translate_block

CODE = 0x10000
LUI_X5 = 0x123452B7  # lui x5, 0x12345
ADDI_X5_X5 = 0x67828293  # addi x5, x5, 0x678
ADDI_X5_7 = 0x00700293  # addi x5, x0, 7 (li)
ADDI_X6_X5_0 = 0x00028313  # addi x6, x5, 0 (mv)
ADD_X7_X0_X5 = 0x005003B3  # add x7, x0, x5 (c.mv's expansion)
SLLI_X8_X5_4 = 0x00429413  # slli x8, x5, 4
SUB_X9_X7_X7 = 0x407384B3  # sub x9, x7, x7
ECALL = 0x00000073


def test_builder_folds_constants_and_applies_identities():
    b = IRBuilder(Block(0, 0), {})
    t, d = b.temp(), b.temp()
    b.binop(ADD, d, Const(2), Const(3))
    b.binop(SHL, d, t, Const(0))
    b.binop(ADD, d, Const(0), t)
    b.binop(SUB, d, t, t)
    b.binop(ADD, d, t, Const(1))  # nothing to simplify: kept
    ops = b.block.ops
    assert [(op.opc, op.ins) for op in ops] == [
        (MOV, [Const(5)]), (MOV, [t]), (MOV, [t]), (MOV, [Const(0)]), (ADD, [t, Const(1)])]
    assert all(op.outs == [d] for op in ops)


def test_riscv_li_and_mv_are_movs_without_the_optimizer():
    words = struct.pack("<4I", ADDI_X5_7, ADDI_X6_X5_0, ADD_X7_X0_X5, ECALL)
    block = translate_block(CODE, 0, lambda a, s: int.from_bytes(
        words[a - CODE:a - CODE + s], "little"))
    movs = [(op.outs[0].name, op.ins[0]) for op in block.ops if op.opc is MOV]
    assert ("x5", Const(7)) in movs
    x5 = next(t for t in block.temps if t.name == "x5")
    assert ("x6", x5) in movs and ("x7", x5) in movs
    assert not [op for op in block.ops if op.opc is ADD]


def _run(target):
    mem = GuestVirtualMemory()
    mem.map_anonymous(CODE, 0x1000, PROT_READ | PROT_EXEC)
    mem.write_initial(CODE, struct.pack("<6I", LUI_X5, ADDI_X5_X5, ADD_X7_X0_X5,
                                        SLLI_X8_X5_4, SUB_X9_X7_X7, ECALL))
    cpu = TCGEngine(mem, target, backend="native").create_cpu()
    cpu.state.pc = CODE
    cpu.state.set_x(9, 0x5555)
    with pytest.raises(RiscvTrap):
        cpu.run()
    return [cpu.state.x(r) for r in (5, 7, 8, 9)]


def test_riscv_code_runs_the_same_with_and_without_the_optimizer():
    assert RISCV64.optimize is False  # the choice bench_translate.py measured
    expected = [0x12345678, 0x12345678, 0x123456780, 0]
    assert _run(RISCV64) == expected
    assert _run(dataclasses.replace(RISCV64, optimize=True)) == expected
