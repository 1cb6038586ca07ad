"""IR optimizer: constant folding, copy propagation, dead-code removal.

Knowledge is tracked per extended basic block: it is reset at every label (another
path may join there) and, for globals, after helpers that write the CPU state.
Dead-code removal runs backwards over the whole block: locals are dead at its end,
globals are live at its end and wherever the block may be left early (ops that may
raise), so removing work never changes what a trap handler sees.
"""

from __future__ import annotations

from pemu.accel.tcg.ir import (
    CALL_PURE,
    CALL_WRITES_STATE,
    I32,
    I64,
    MASK,
    Block,
    Const,
    Helper,
    Op,
    Operand,
    Temp,
    simplify,
)
from pemu.accel.tcg.opcodes import (
    BR,
    BRCOND,
    CALL,
    LABEL,
    MOV,
)

# Pure ops (``Opcode.pure``: the table) are folded and removed when dead; that includes
# div/rem, whose results are defined for all inputs (ir.simplify folds and applies the
# algebraic identities, for the IR builder too).


def optimize(block: Block) -> Block:
    _fold_and_propagate(block)  # which also ends a block without labels at its first exit
    if block.label_count:
        _remove_unreachable(block)
    _remove_dead(block)
    return block


# -- forward pass: constants and copies --------------------------------------------


def _fold_and_propagate(block: Block) -> None:
    known: dict[Temp, Operand] = {}  # temp -> Const or the Temp it copies
    sources: set[Temp] = set()  # temps some entry of known may copy (a superset)

    def forget(t: Temp) -> None:
        known.pop(t, None)
        if t in sources:  # only then can a copy of t be in known: scan
            sources.discard(t)
            for k in [k for k, v in known.items() if v is t]:
                del known[k]

    out: list[Op] = []
    branches = bool(block.label_count)  # else nothing follows the first exit
    for op in block.ops:
        opc = op.opc
        if opc is LABEL:
            known.clear()
            sources.clear()
            out.append(op)
            continue
        if known:
            op.ins = [known.get(x, x) if x.__class__ is Temp else x for x in op.ins]
        if opc is CALL:
            helper = op.aux
            assert isinstance(helper, Helper)
            if helper.flags & CALL_WRITES_STATE:
                # the helper may have changed any global behind our back
                stale = [k for k, v in known.items()
                         if k.is_global or (isinstance(v, Temp) and v.is_global)]
                for k in stale:
                    del known[k]
        elif opc.pure:
            op = simplify(op)
            opc = op.opc
        elif opc is BRCOND and op.ins[0].__class__ is Const and op.ins[1].__class__ is Const:
            cond, label = op.aux
            if cond.evaluate(op.ins[0].value, op.ins[1].value, op.type):
                op = Op(BR, op.type, [], [], label)
                opc = BR
            else:
                continue  # never taken
        for d in op.outs:
            if known:
                forget(d)
            else:
                sources.discard(d)
        if opc is MOV and op.type == op.outs[0].type:
            src = op.ins[0]
            if isinstance(src, Const):
                # a 32-bit mov truncates: what the destination holds is the low word
                known[op.outs[0]] = Const(src.value & MASK[op.type])
            elif src is not op.outs[0] and (op.type == I64 or src.type == I32):
                known[op.outs[0]] = src  # a true copy (not a truncation of a wider value)
                sources.add(src)
        out.append(op)
        if opc.block_end and not branches:
            break  # the rest is unreachable
    block.ops = out


# -- unreachable code ---------------------------------------------------------------


def _remove_unreachable(block: Block) -> None:
    """Drop ops after an unconditional exit until the next label that live code jumps to.

    Removing dead code may leave more labels without branches, so repeat until stable.
    """
    ops = block.ops
    while True:
        targets = set()
        for op in ops:
            if op.opc is BR:
                targets.add(op.aux.id)
            elif op.opc is BRCOND:
                targets.add(op.aux[1].id)
        out: list[Op] = []
        dead = False
        for op in ops:
            if op.opc is LABEL:
                if op.aux.id not in targets:
                    continue  # nobody jumps here: the label itself is noise
                dead = False
            if dead:
                continue
            out.append(op)
            if op.opc.block_end or op.opc is BR:
                dead = True
        # a br straight to the label that follows it is a no-op
        cleaned = [op for i, op in enumerate(out)
                   if not (op.opc is BR and i + 1 < len(out) and out[i + 1].opc is LABEL
                           and out[i + 1].aux is op.aux)]
        if len(cleaned) == len(ops):
            break
        ops = cleaned
    block.ops = ops


# -- backward pass: dead values -----------------------------------------------------


def _remove_dead(block: Block) -> None:
    all_globals = {t for t in block.temps if t.is_global}
    live: set[Temp] = set()
    live_at_label: dict[int, set[Temp]] = {}
    kept: list[Op] = []
    for op in reversed(block.ops):
        opc = op.opc
        if opc.block_end:
            live = set(all_globals)
        elif opc is LABEL:
            live_at_label[op.aux.id] = set(live)
        elif opc is BR:
            live = set(live_at_label.get(op.aux.id, all_globals))
        elif opc is BRCOND:
            live |= live_at_label.get(op.aux[1].id, all_globals)
        pure_call = opc is CALL and op.aux.flags == CALL_PURE
        outs = op.outs
        if (opc.pure or pure_call) and outs:
            for d in outs:
                if d in live:
                    break
            else:
                continue  # no output is used: drop it
        for d in outs:
            live.discard(d)
        if opc.may_raise and not pure_call:
            live |= all_globals
        for x in op.ins:
            if x.__class__ is Temp:
                live.add(x)
        kept.append(op)
    kept.reverse()
    block.ops = kept
