"""The IR op table (pemu/accel/tcg/opcodes.py) and what derives from it.

Every op must be handled by the python backend and the native code generator (their
import-time checks), the flags must agree with the reference semantics, and the
python backend must compute every pure op as the semantics say.  (The native
backend's run of the same check is in tests/native/test_ir_differential.py.)
"""

from __future__ import annotations

import random

import pytest

from pemu.accel.tcg import opcodes
from pemu.accel.tcg.backend import python as python_backend
from pemu.accel.tcg.backend.python import PythonBackend
from pemu.accel.tcg.backend.x86_64 import codegen
from pemu.accel.tcg.ir import I32, I64, Block, Cond, IRBuilder, check_block
from pemu.accel.tcg.opcodes import ADD, MULSH, OPCODES, PURE_OPS, Opcode
from tests.tcg.op_cases import OUT, Runner, check_against_semantics
from tests.tcg.test_backend_python import GLOBALS, FlatMemory


def test_table_names_each_op_once() -> None:
    assert len({id(op) for op in OPCODES.values()}) == len(OPCODES)
    for name, op in OPCODES.items():
        assert op.name == name and getattr(opcodes, name.upper()) is op
        assert opcodes.opcode(name) is op
    with pytest.raises(ValueError):
        opcodes.opcode("addd")


def test_misspelt_or_string_ops_fail_early() -> None:
    with pytest.raises(ImportError):
        exec("from pemu.accel.tcg.opcodes import ADDD", {})  # noqa: S102
    with pytest.raises(TypeError):
        _ = ADD == "add"
    b = IRBuilder(Block(pc=0, flags=0), GLOBALS)
    with pytest.raises(AttributeError):
        b.binop("add", b.temp(), b.temp(), b.temp())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        b.emit("neg", I64, [b.temp()], [b.temp()])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        b.binop(opcodes.NEG, b.temp(), b.temp(), b.temp())


def test_check_block_uses_the_table() -> None:
    block = Block(pc=0, flags=0)
    b = IRBuilder(block, GLOBALS)
    b.binop(MULSH, b.temp(I32), b.temp(I32), b.temp(I32), I32)  # 64-bit only
    b.goto_pc(4)
    with pytest.raises(ValueError, match="bad type"):
        check_block(block)
    block.ops[0].type = I64
    check_block(block)
    block.ops[0].opc = Opcode("mulsh", 1, 2)  # a look-alike that is not in the table
    with pytest.raises(ValueError, match="unknown opcode"):
        check_block(block)


def test_pure_ops_are_exactly_those_with_semantics() -> None:
    for op in OPCODES.values():
        assert op.pure == (op.semantics is not None)
        if op.pure:
            assert op.n_out == 1 and not (op.may_raise or op.block_end or op.memory)
    assert {op.name for op in OPCODES.values() if op.block_end} == {"goto_pc", "goto_ptr"}


@pytest.mark.parametrize("opc", PURE_OPS, ids=str)
def test_flags_agree_with_semantics(opc: Opcode) -> None:
    """commutative: op(a, b) == op(b, a); narrow_result: below 2**32 at both widths."""
    rng = random.Random(5)
    for _ in range(300):
        args = [rng.getrandbits(rng.choice([8, 32, 64])) for _ in range(opc.n_in)]
        aux = rng.choice(list(Cond)) if opc.aux == "cond" else None
        for bits in (I64,) if opc.i64_only else (I64, I32):
            result = opc.evaluate(bits, args, aux)
            if opc.commutative:
                assert opc.evaluate(bits, args[::-1], aux) == result
            if opc.narrow_result:
                assert result < 1 << 32


def test_python_backend_handles_every_op(monkeypatch: pytest.MonkeyPatch) -> None:
    python_backend._check_complete()  # as at import
    templates = dict(python_backend._TEMPLATES)
    del templates[opcodes.CLZ]
    monkeypatch.setattr(python_backend, "_TEMPLATES", templates)
    with pytest.raises(ImportError, match="clz"):
        python_backend._check_complete()
    templates[opcodes.CLZ] = "{a}"
    templates[opcodes.CALL] = "{a}"  # handled twice
    with pytest.raises(ImportError):
        python_backend._check_complete()


def test_native_codegen_handles_every_op(monkeypatch: pytest.MonkeyPatch) -> None:
    handlers = codegen._handlers()  # as at import
    assert set(handlers) == set(OPCODES.values())
    monkeypatch.delattr(codegen.Codegen, "op_ctpop")
    with pytest.raises(ImportError, match="ctpop"):
        codegen._handlers()
    monkeypatch.setattr(codegen, "NOT_NATIVE", frozenset({opcodes.CTPOP}))
    assert codegen._handlers()[opcodes.CTPOP] is None  # computed by the fallback helper
    monkeypatch.setattr(codegen, "NOT_NATIVE", frozenset({opcodes.CLZ}))
    with pytest.raises(ImportError, match="op_clz"):
        codegen._handlers()
    monkeypatch.setattr(codegen, "NOT_NATIVE", frozenset())
    monkeypatch.setattr(codegen.Codegen, "op_ctpopp", lambda self, op: False, raising=False)
    with pytest.raises(ImportError, match="op_ctpopp"):
        codegen._handlers()


def _python_runner(block: Block) -> Runner:
    fn = PythonBackend(FlatMemory(), GLOBALS["pc"]).compile(block).fn
    view = memoryview(bytearray(8 * 16)).cast("Q")

    def run(inputs: list[int]) -> int:
        for i, v in enumerate(inputs):
            view[i] = v
        view[OUT] = 0x5A5A_5A5A_5A5A_5A5A  # the op must write its result
        fn(view, None)
        return view[OUT]
    return run


@pytest.mark.parametrize("opc", PURE_OPS, ids=str)
def test_python_backend_matches_semantics(opc: Opcode) -> None:
    check_against_semantics(opc, _python_runner)
