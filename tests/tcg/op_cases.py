"""Every pure op of the table, run alone in a block on a backend and checked against
its reference semantics (``Opcode.evaluate``).

Both widths (but I64 only for ``i64_only`` ops), every Cond for the ops that take
one, inputs in globals (the register paths) or constants (the immediate paths, e.g.
shifts by a constant), on boundary values and random ones.  The python backend's test
(tests/tcg) and the native backend's (tests/native) share this driver.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator

from pemu.accel.tcg.ir import I32, I64, Block, Cond, IRBuilder, Operand
from pemu.accel.tcg.opcodes import Opcode

# the globals of the test blocks: inputs in slots 0-3, the result in slot 4
GLOBALS = {f"r{i}": i for i in range(6)} | {"pc": 8}
OUT = 4
BOUNDARY = [0, 1, 2, 31, 32, 63, 64, 0x7F, 0x80, 0xFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
            0x1_0000_0000, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF]
# Runs one compiled block on the given input slots; returns the result slot.
Runner = Callable[[list[int]], int]


def _input_sets(n_in: int, rng: random.Random, exhaustive: bool) -> list[list[int]]:
    def rand() -> int:
        return rng.getrandbits(rng.choice([8, 32, 64]))
    if n_in <= 2 and exhaustive:
        sets = [list(v) for v in itertools.product(BOUNDARY, repeat=n_in)]
    else:
        sets = [[rng.choice(BOUNDARY) for _ in range(n_in)] for _ in range(20)]
    return sets + [[rand() for _ in range(n_in)] for _ in range(30 if exhaustive else 6)]


def _variants(opc: Opcode) -> Iterator[tuple[int, object]]:
    for bits in (I64, I32):
        if bits == I32 and opc.i64_only:
            continue
        for aux in (list(Cond) if opc.aux == "cond" else [None]):
            yield bits, aux


def _block(opc: Opcode, bits: int, aux: object, consts: dict[int, int]) -> Block:
    """``r4 = opc(inputs)``; input i is the constant consts[i] if given, else global ri."""
    block = Block(pc=0x1000, flags=0)
    b = IRBuilder(block, GLOBALS)
    ins: list[Operand] = [b.const(consts[i]) if i in consts else b.glob(f"r{i}")
                          for i in range(opc.n_in)]
    b.emit(opc, bits, [b.glob(f"r{OUT}")], ins, aux)
    b.goto_pc(0x2000)
    return block


def check_against_semantics(opc: Opcode, compile_block: Callable[[Block], Runner],
                            seed: int = 1) -> None:
    """Assert that the backend behind ``compile_block`` computes ``opc`` as the table's
    reference semantics say, on every variant and many inputs."""
    assert opc.pure, f"{opc} has no reference semantics"
    rng = random.Random(seed)
    for bits, aux in _variants(opc):
        run = compile_block(_block(opc, bits, aux, {}))
        for inputs in _input_sets(opc.n_in, rng, exhaustive=aux is None):
            _expect(opc, bits, aux, inputs, run(inputs), "registers")
        # a constant first or last input (both: still a valid block, never optimized here)
        for position in {0, opc.n_in - 1}:
            for inputs in _input_sets(opc.n_in, rng, exhaustive=False)[::3]:
                run = compile_block(_block(opc, bits, aux, {position: inputs[position]}))
                _expect(opc, bits, aux, inputs, run(inputs), f"input {position} constant")


def _expect(opc: Opcode, bits: int, aux: object, inputs: list[int], got: int,
            shape: str) -> None:
    want = opc.evaluate(bits, inputs, aux)
    assert got == want, (f"{opc}_i{bits} [{aux}] ({shape}) on {[hex(v) for v in inputs]}: "
                         f"got {got:#x}, want {want:#x}")
