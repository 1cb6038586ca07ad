"""SSE floating point (sse_fp.py) against pemu's soft-float helpers, bit for bit.

Every add/sub/mul/div/sqrt helper of both formats runs in a one-op block on the
native backend - static rm 0, dynamic rm (a register holding 0..4, so both the SSE
path and the helper path behind it run) and static rm 1..4 (helper only) - and the
result and fflags must equal what the helper's own Python function returns.  Inputs
lean on the cases where SSE and RISC-V differ unless fixed up: NaNs (signaling,
quiet, payloads, x86's default NaN), infinities, zeros, denormals, overflow and
underflow boundaries, and singles that are not NaN-boxed.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pemu.accel.tcg.ir import Block, Const, IRBuilder
from pemu.target.riscv import fp_helpers as fp
from tests.native.native_harness import BlockRunner, needs_native
from tests.tcg.test_backend_python import GLOBALS

pytestmark = needs_native

D_SPECIAL = [0, 1 << 63, 0x7FF0_0000_0000_0000, 0xFFF0_0000_0000_0000,
             0x7FF8_0000_0000_0000, 0xFFF8_0000_0000_0000, 0x7FF0_0000_0000_0001,
             0x7FF4_0000_0000_1234, 0x0000_0000_0000_0001, 0x000F_FFFF_FFFF_FFFF,
             0x0010_0000_0000_0000, 0x7FEF_FFFF_FFFF_FFFF, 0x3FF0_0000_0000_0000,
             0xBFF0_0000_0000_0000, 0x4008_0000_0000_0000, 0x3CA0_0000_0000_0000,
             0x0008_0000_0000_0000, 0x8000_0000_0000_0001]
S_SPECIAL = [0, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0xFFC0_0000,
             0x7F80_0001, 0x7FA0_1234, 1, 0x007F_FFFF, 0x0080_0000, 0x7F7F_FFFF,
             0x3F80_0000, 0xBF80_0000, 0x4040_0000, 0x3380_0000, 0x8000_0001]
doubles = st.one_of(st.sampled_from(D_SPECIAL), st.integers(0, (1 << 64) - 1),
                    st.floats(allow_nan=False).map(
                        lambda f: int.from_bytes(__import__("struct").pack("<d", f), "little")))
singles_raw = st.one_of(st.sampled_from(S_SPECIAL), st.integers(0, (1 << 32) - 1))
singles = st.one_of(singles_raw.map(lambda v: v | fp.BOX),  # NaN-boxed (the usual case)
                    st.integers(0, (1 << 64) - 1))  # mostly not boxed: the helper's NaN

CASES = [(fmt, f5) for fmt in (fp.FMT_S, fp.FMT_D) for f5 in range(4)] + [
    (fp.FMT_S, "sqrt"), (fp.FMT_D, "sqrt")]


@pytest.fixture(scope="module")
def runner() -> BlockRunner:
    return BlockRunner()


def _run(runner: BlockRunner, helper: object, n_in: int, a: int, b: int, rm: int,
         dynamic: bool) -> tuple[int, int]:
    block = Block(pc=0x2000, flags=0)
    ir = IRBuilder(block, GLOBALS)
    rm_op = ir.glob("r2") if dynamic else Const(rm)
    args = [ir.glob("r0"), ir.glob("r1")][:n_in - 1] + [rm_op]
    res, flags = ir.temp(), ir.temp()
    ir.call(helper, [res, flags], args)
    ir.mov(ir.glob("r3"), res)
    ir.mov(ir.glob("r4"), flags)
    ir.goto_pc(0x3000)
    _pc, slots = runner.run(block, [a, b, rm, 0, 0])
    return slots[3], slots[4]


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(CASES), data=st.data(), rm=st.sampled_from([0, 0, 0, 1, 2, 3, 4]),
       dynamic=st.booleans())
def test_sse_matches_softfloat(runner: BlockRunner, case: tuple[int, object], data: st.DataObject,
                               rm: int, dynamic: bool) -> None:
    fmt, kind = case
    values = singles if fmt == fp.FMT_S else doubles
    a, b = data.draw(values), data.draw(values)
    if kind == "sqrt":
        helper, n_in = fp.SQRT[fmt], 2
        expected = helper.fn(a, rm)
    else:
        helper, n_in = fp.ARITH2[(fmt, kind)], 3
        expected = helper.fn(a, b, rm)
    got = _run(runner, helper, n_in, a, b, rm, dynamic)
    assert got == (expected[0], expected[1]), (helper.name, hex(a), hex(b), rm, dynamic)


def test_sse_path_is_taken(runner: BlockRunner) -> None:
    """With rm 0 the helper is not called at all (the fast path is really there)."""
    before = runner.backend.stats["helper_calls"]
    got = _run(runner, fp.ARITH2[(fp.FMT_D, 3)], 3, 0x3FF0_0000_0000_0000,
               0x4008_0000_0000_0000, 0, dynamic=True)
    assert got == (0x3FD5_5555_5555_5555, 1)  # 1/3, inexact
    assert runner.backend.stats["helper_calls"] == before
    _run(runner, fp.ARITH2[(fp.FMT_D, 3)], 3, 0x3FF0_0000_0000_0000, 0x4008_0000_0000_0000,
         3, dynamic=True)  # rm=RUP at run time: the helper
    assert runner.backend.stats["helper_calls"] == before + 1
