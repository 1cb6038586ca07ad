"""The native backend against the reference IR interpreter, on random blocks.

The block generator is the python backend's (tests/tcg): every pure op at both
widths, globals, constants, forward branches, if/else shapes, early exits and guest
loads/stores (aligned ones take the inline path, misaligned ones the slow path).
Registers, memory and the exit pc must match the interpreter exactly, with and
without the optimizer.  And each pure op of the table alone, on boundary and random
operands in registers and immediates, must match its reference semantics
(tests/tcg/op_cases.py; the python backend runs the same check in tests/tcg).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pemu.accel.tcg.backend.x86_64 import codegen
from pemu.accel.tcg.ir import Block, Helper, IRBuilder, MemOp, check_block
from pemu.accel.tcg.opcodes import ADD, CTPOP, MOVCOND, MULSUH, PURE_OPS, SAR, Opcode
from pemu.accel.tcg.optimize import optimize
from pemu.linux_user.vmem import GuestFault
from tests.native.native_harness import BlockRunner, needs_native
from tests.tcg.ir_interp import run_block
from tests.tcg.op_cases import OUT, Runner, check_against_semantics
from tests.tcg.test_backend_python import GLOBALS, blocks, values

pytestmark = needs_native
PC = GLOBALS["pc"]  # the test layout's pc slot: exits and traps leave the pc there


@pytest.fixture(scope="module")
def runner() -> BlockRunner:
    return BlockRunner()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(blocks(), st.lists(values, min_size=16, max_size=16))
def test_native_matches_interpreter(runner: BlockRunner, block: Block, init: list[int]) -> None:
    check_block(block)
    ref_slots = list(init)
    ref_mem: dict[int, int] = {}
    ref_pc = run_block(copy.deepcopy(block), ref_slots, ref_mem)
    for opt in (False, True):
        blk = copy.deepcopy(block)
        if opt:
            optimize(blk)
        runner.mem.mem[0:0x2000] = bytes(0x2000)
        pc, slots = runner.run(blk, init)
        assert pc == ref_pc, blk.dump()
        slots[PC] = ref_slots[PC]  # a goto_pc exit leaves its target there
        assert slots[:16] == ref_slots, blk.dump()
        for addr, byte in ref_mem.items():
            assert runner.mem.mem[addr] == byte, blk.dump()


def _native_runner(runner: BlockRunner) -> Callable[[Block], Runner]:
    def compile_block(block: Block) -> Runner:
        tb = runner.backend.compile(block).fn
        S = runner.cpu.state.slots

        def run(inputs: list[int]) -> int:
            for i, v in enumerate(inputs):
                S[i] = v
            S[OUT] = 0x5A5A_5A5A_5A5A_5A5A  # the op must write its result
            tb(S, runner.cpu)
            return S[OUT]
        return run
    return compile_block


@pytest.mark.parametrize("opc", PURE_OPS, ids=str)
def test_native_op_matches_semantics(runner: BlockRunner, opc: Opcode) -> None:
    check_against_semantics(opc, _native_runner(runner))


@pytest.mark.parametrize("opc", [CTPOP, MOVCOND, MULSUH, SAR], ids=str)
def test_fallback_helper_matches_semantics(runner: BlockRunner, opc: Opcode,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """An op without inline code (NOT_NATIVE) is a call of its reference semantics."""
    monkeypatch.setitem(codegen._HANDLERS, opc, None)
    check_against_semantics(opc, _native_runner(runner), seed=2)
    assert any(key[0] is opc for key in codegen._fallback_helpers)


def _block(pc: int = 0x2000) -> tuple[Block, IRBuilder]:
    block = Block(pc=pc, flags=0)
    return block, IRBuilder(block, GLOBALS)


def test_helper_exception_leaves_precise_state(runner: BlockRunner) -> None:
    """Globals written before a raising helper are home; the pc slot names the insn."""
    def boom(a: int) -> int:
        raise RuntimeError(f"guest trap {a}")

    block, b = _block()
    b.insn_start(0x2000)
    b.binop(ADD, b.glob("r1"), b.glob("r1"), b.const(5))
    b.insn_start(0x2004)
    b.call(Helper("boom", boom), [b.glob("r3")], [b.glob("r1")])
    b.insn_start(0x2008)
    b.movi(b.glob("r2"), 99)
    b.goto_pc(0x200C)
    with pytest.raises(RuntimeError, match="guest trap 15"):
        runner.run(block, [0, 10, 0, 7])
    S = runner.cpu.state.slots
    assert (S[1], S[2], S[3], S[PC]) == (15, 0, 7, 0x2004)


def test_memory_fault_is_precise(runner: BlockRunner) -> None:
    """A load from an unmapped page raises GuestFault after the earlier insns."""
    block, b = _block()
    b.insn_start(0x2000)
    b.movi(b.glob("r1"), 1)
    b.insn_start(0x2004)
    b.ld(b.glob("r2"), b.const(0x10_0000), MemOp(8))
    b.insn_start(0x2008)
    b.movi(b.glob("r3"), 3)
    b.goto_pc(0x200C)
    with pytest.raises(GuestFault) as info:
        runner.run(block, [0, 0, 5, 0])
    S = runner.cpu.state.slots
    assert info.value.addr == 0x10_0000
    assert (S[1], S[2], S[3], S[PC]) == (1, 5, 0, 0x2004)


def test_two_output_helper(runner: BlockRunner) -> None:
    block, b = _block()
    h = Helper("divmod", lambda a, c: divmod(a, c), flags=0, n_out=2)
    b.call(h, [b.glob("r0"), b.glob("r1")], [b.glob("r2"), b.const(7)])
    b.goto_pc(0x3000)
    pc, slots = runner.run(block, [0, 0, 100])
    assert slots[:2] == [14, 2] and pc == 0x3000


def test_full_code_buffer_is_reset_and_refilled() -> None:
    """A tiny buffer fills after a few blocks: it is flushed and blocks still run."""
    runner = BlockRunner(code_size=16 << 10)
    for i in range(200):
        block, b = _block(0x4000 + 4 * i)
        b.binop(ADD, b.glob("r1"), b.glob("r0"), b.const(i))
        b.goto_pc(0x5000)
        _pc, slots = runner.run(block, [1000, 0])
        assert slots[1] == 1000 + i
    assert runner.backend.stats["code_resets"] >= 1
