"""The python backend and the optimizer against the reference IR interpreter.

Random blocks of every pure op, with globals, constants, forward branches and
if/else shapes, must leave the same state and exit pc whether interpreted, compiled,
or optimized and compiled.
"""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pemu.accel.tcg.backend.python import PythonBackend
from pemu.accel.tcg.ir import I32, I64, Block, Cond, IRBuilder, MemOp, check_block
from pemu.accel.tcg.opcodes import ADD, GOTO_PC, INSN_START, MOV, MUL, OPCODES
from pemu.accel.tcg.optimize import optimize
from tests.tcg.ir_interp import run_block

N_GLOBALS = 6
GLOBALS = {f"r{i}": i for i in range(N_GLOBALS)} | {"pc": 8}
# every pure op of the table without an aux, by arity (setcond/movcond are drawn apart)
BINOPS = [op for op in OPCODES.values() if op.pure and op.aux is None and op.n_in == 2]
UNOPS = [op for op in OPCODES.values() if op.pure and op.aux is None and op.n_in == 1]
BINOPS_I32 = [op for op in BINOPS if not op.i64_only]
INTERESTING = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
               0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF, 63, 64, 31]
values = st.one_of(st.sampled_from(INTERESTING), st.integers(0, (1 << 64) - 1))


class FlatMemory:
    """What the backend's memory codegen needs, for tests: a small flat RAM."""

    def __init__(self) -> None:
        self.mem = bytearray(1 << 16)

    def namespace(self):
        m = self.mem

        def ld(a, size):
            return int.from_bytes(m[a:a + size], "little")

        def st_(a, size, v):
            m[a:a + size] = (v & ((1 << size * 8) - 1)).to_bytes(size, "little")
        return {"LD": ld, "ST": st_}

    def load(self, dst, addr, memop, bits):
        size = memop.size
        if memop.signed:
            sign = 1 << (size * 8 - 1)
            mask = (1 << bits) - 1
            return [f"{dst} = ((LD({addr}, {size}) ^ {sign:#x}) - {sign:#x}) & {mask:#x}"]
        return [f"{dst} = LD({addr}, {size})"]

    def store(self, value, addr, memop):
        return [f"ST({addr}, {memop.size}, {value})"]


@st.composite
def blocks(draw):
    block = Block(pc=0x1000, flags=0)
    b = IRBuilder(block, GLOBALS)
    pool = [b.glob(f"r{i}") for i in range(N_GLOBALS)]
    open_labels = []
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["bin", "bin", "un", "cond", "movcond", "branch", "mem",
                                     "close"]))
        typ = draw(st.sampled_from([I64, I64, I32]))

        def operand():
            if draw(st.booleans()):
                return draw(st.sampled_from(pool))
            return b.const(draw(values), I64)
        dst = b.glob(f"r{draw(st.integers(0, N_GLOBALS - 1))}") if draw(st.booleans()) \
            else b.temp(typ)
        if kind == "bin":
            b.binop(draw(st.sampled_from(BINOPS if typ == I64 else BINOPS_I32)),
                    dst, operand(), operand(), typ)
        elif kind == "un":
            b.unop(draw(st.sampled_from(UNOPS)), dst, operand(), typ)
        elif kind == "cond":
            b.setcond(dst, draw(st.sampled_from(list(Cond))), operand(), operand(), typ)
        elif kind == "movcond":
            b.movcond(dst, draw(st.sampled_from(list(Cond))), operand(), operand(), operand(),
                      operand(), typ)
        elif kind == "mem":
            addr = b.const(draw(st.integers(0, 4000)))
            mo = MemOp(draw(st.sampled_from([1, 2, 4, 8])), draw(st.booleans()))
            if draw(st.booleans()):
                b.st(operand(), addr, mo)
            else:
                b.ld(dst, addr, mo, typ)
        elif kind == "branch":
            label = b.label()
            b.brcond(draw(st.sampled_from(list(Cond))), operand(), operand(), label, typ)
            open_labels.append(label)
            if draw(st.booleans()):
                b.goto_pc(draw(st.integers(0, 1 << 20)))
        elif kind == "close" and open_labels:
            b.set_label(open_labels.pop())
        written = block.ops and dst in block.ops[-1].outs
        if dst.kind == "local" and written and not open_labels:
            pool.append(dst)  # a local set inside a branch region is undefined after it
    while open_labels:
        b.set_label(open_labels.pop())
    b.mov(b.glob("pc"), b.const(draw(st.integers(0, 1 << 20))))
    b.goto_ptr()
    return block


def _run_compiled(block, slots, mem_backing):
    backend = PythonBackend(mem_backing, GLOBALS["pc"])
    compiled = backend.compile(block)
    view = (memoryview(bytearray(8 * 16)).cast("Q"))
    for i, v in enumerate(slots):
        view[i] = v
    pc = compiled.fn(view, None)
    return pc, list(view)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks(), st.lists(values, min_size=16, max_size=16))
def test_compiled_and_optimized_match_interpreter(block, init):
    check_block(block)
    ref_slots = list(init)
    ref_mem: dict[int, int] = {}
    ref_pc = run_block(copy.deepcopy(block), ref_slots, ref_mem)

    for opt in (False, True):
        blk = copy.deepcopy(block)
        if opt:
            optimize(blk)
            check_block(blk)
        mem = FlatMemory()
        pc, slots = _run_compiled(blk, init, mem)
        assert pc == ref_pc, blk.dump()
        # the pc slot is not written at a normal exit: the block returns the next pc
        slots[8] = ref_slots[8]
        assert slots == ref_slots, blk.dump()
        for addr, byte in ref_mem.items():
            assert mem.mem[addr] == byte


def test_exception_leaves_precise_state():
    """Globals written before a raising helper are in the state; pc names the insn."""
    from pemu.accel.tcg.ir import Helper

    def boom():
        raise RuntimeError("guest trap")

    block = Block(pc=0x2000, flags=0)
    b = IRBuilder(block, GLOBALS)
    b.insn_start(0x2000)
    b.binop(ADD, b.glob("r1"), b.glob("r1"), b.const(5))
    b.insn_start(0x2004)
    b.call(Helper("boom", boom, n_out=0), [], [])
    b.insn_start(0x2008)
    b.movi(b.glob("r2"), 99)
    b.goto_pc(0x200C)
    compiled = PythonBackend(FlatMemory(), GLOBALS["pc"]).compile(block)
    view = memoryview(bytearray(8 * 16)).cast("Q")
    view[1] = 10
    try:
        compiled.fn(view, None)
    except RuntimeError:
        pass
    else:
        raise AssertionError("the helper's exception must propagate")
    assert view[1] == 15
    assert view[2] == 0
    assert view[8] == 0x2004


def test_optimizer_folds_constants_and_removes_dead_code():
    block = Block(pc=0, flags=0)
    b = IRBuilder(block, GLOBALS)
    t1, t2, t3 = b.temp(), b.temp(), b.temp()
    b.movi(t1, 6)
    b.binop(MUL, t2, t1, b.const(7))
    b.binop(ADD, t3, b.glob("r0"), b.const(1))  # dead: t3 never used
    b.mov(b.glob("r1"), t2)
    b.goto_pc(4)
    optimize(block)
    ops = [op for op in block.ops if op.opc is not INSN_START]
    assert [op.opc for op in ops] == [MOV, GOTO_PC]
    assert ops[0].ins[0].value == 42
