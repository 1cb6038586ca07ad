"""A reference interpreter for IR blocks (straight-line and forward branches).

It is deliberately naive: the oracle that the optimizer and every backend are
checked against.
"""

from __future__ import annotations

from pemu.accel.tcg.ir import MASK, Block, Const, Temp
from pemu.accel.tcg.ops_eval import evaluate


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

    labels = {op.aux.id: i for i, op in enumerate(block.ops) if op.opc == "label"}
    i = 0
    while True:
        op = block.ops[i]
        i += 1
        opc = op.opc
        if opc in ("label", "insn_start"):
            continue
        if opc == "br":
            i = labels[op.aux.id]
        elif opc == "brcond":
            cond, label = op.aux
            m = MASK[op.type]
            if cond.evaluate(get(op.ins[0]) & m, get(op.ins[1]) & m, op.type):
                i = labels[label.id]
        elif opc == "goto_pc":
            return op.aux
        elif opc == "goto_ptr":
            pc = next(t for t in block.temps if t.is_global and t.name == "pc")
            return slots[pc.slot]
        elif opc == "ld":
            size = op.aux.size
            v = int.from_bytes(bytes(memory.get(get(op.ins[0]) + k, 0) for k in range(size)),
                               "little")
            if op.aux.signed:
                v = evaluate(f"ext{size * 8}s", 64, [v]) if size < 8 else v
            put(op.outs[0], v & MASK[op.type])
        elif opc == "st":
            v, a = get(op.ins[0]), get(op.ins[1])
            for k in range(op.aux.size):
                memory[a + k] = (v >> (8 * k)) & 0xFF
        elif opc == "call":
            args = [get(x) for x in op.ins]
            r = op.aux.fn(*args)
            outs = op.outs
            if len(outs) == 1:
                put(outs[0], r)
            elif len(outs) == 2:
                put(outs[0], r[0])
                put(outs[1], r[1])
        else:
            put(op.outs[0], evaluate(opc, op.type, [get(x) for x in op.ins], op.aux))
