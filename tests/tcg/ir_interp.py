"""A reference interpreter for IR blocks (straight-line and forward branches).

It is deliberately naive: the oracle that the optimizer and every backend are
checked against.
"""

from __future__ import annotations

from pemu.accel.tcg.ir import MASK, Block, Const, Temp
from pemu.accel.tcg.opcodes import (
    BR,
    BRCOND,
    CALL,
    GOTO_PC,
    GOTO_PTR,
    INSN_START,
    LABEL,
    LD,
    ST,
    to_signed,
)


def run_block(block: Block, slots: list[int], memory: dict[int, int] | None = None) -> int:
    """Interpret ``block`` on ``slots`` (the state); returns the next pc."""
    memory = memory if memory is not None else {}
    values: dict[int, int] = {}

    def get(x):
        if isinstance(x, Const):
            return x.value
        if x.is_global:
            return slots[x.slot]
        return values[x.index]

    def put(t: Temp, v: int) -> None:
        v &= MASK[64]
        if t.is_global:
            slots[t.slot] = v
        else:
            values[t.index] = v

    labels = {op.aux.id: i for i, op in enumerate(block.ops) if op.opc is LABEL}
    i = 0
    while True:
        op = block.ops[i]
        i += 1
        opc = op.opc
        if opc is LABEL or opc is INSN_START:
            continue
        if opc is BR:
            i = labels[op.aux.id]
        elif opc is BRCOND:
            cond, label = op.aux
            m = MASK[op.type]
            if cond.evaluate(get(op.ins[0]) & m, get(op.ins[1]) & m, op.type):
                i = labels[label.id]
        elif opc is GOTO_PC:
            return op.aux
        elif opc is GOTO_PTR:
            pc = next(t for t in block.temps if t.is_global and t.name == "pc")
            return slots[pc.slot]
        elif opc is LD:
            size = op.aux.size
            v = int.from_bytes(bytes(memory.get(get(op.ins[0]) + k, 0) for k in range(size)),
                               "little")
            if op.aux.signed:
                v = to_signed(v, size * 8)
            put(op.outs[0], v & MASK[op.type])
        elif opc is ST:
            v, a = get(op.ins[0]), get(op.ins[1])
            for k in range(op.aux.size):
                memory[a + k] = (v >> (8 * k)) & 0xFF
        elif opc is CALL:
            args = [get(x) for x in op.ins]
            r = op.aux.fn(*args)
            outs = op.outs
            if len(outs) == 1:
                put(outs[0], r)
            elif len(outs) == 2:
                put(outs[0], r[0])
                put(outs[1], r[1])
        else:
            put(op.outs[0], opc.evaluate(op.type, [get(x) for x in op.ins], op.aux))
