"""The TCG intermediate representation: typed ops on temps.

A frontend (a target's ``translate`` module) turns a block of guest instructions into a
``Block`` of ``Op``s; the optimizer (``optimize.py``) rewrites it; a backend
(``backend/python.py``, later ``backend/x86_64.py``) turns it into host code.

Ops
---
The ops, their operand counts, flags and reference semantics are the table in
``opcodes.py``; an ``Op`` holds one of its ``Opcode`` objects.

Values
------
Every value is an unsigned integer of the op's type width (``I32`` or ``I64``); the
signedness lives in the op (``sar``, ``lt``, ``ld`` with a signed memop), never in the
value.  An ``I32`` op reads the low 32 bits of its inputs and produces a result in
[0, 2**32).  Operands are ``Temp``s or ``Const``s.

Temps
-----
* ``global``: a named slot of the CPU state block (a guest register).  Backends may
  cache globals in host registers or locals inside a block, and must write dirty ones
  back before any exit, before helper calls that read state, and when an exception
  leaves the block; they reload after helper calls that write state.
* ``local``: a block-local temporary, dead at the end of the block.

Control flow
------------
``label``/``br``/``brcond`` jump forward or backward inside a block.  A block ends
with ``exit_tb``: ``goto_pc`` (direct: the next guest pc is a constant, chainable)
or ``goto_ptr`` (indirect: the next pc was stored to the pc global).  Exceptions are
raised by helpers (``call``) or by guest memory accesses; ``insn_start`` marks each
guest instruction so a backend can name the exact faulting instruction.

Memory ops
----------
``ld``/``st`` carry a ``MemOp``: access size in bytes (1, 2, 4, 8) and whether the
loaded value is sign-extended to the op type.  Accesses are little-endian.  Address
translation (direct in user mode, the softmmu TLB in system mode) is the backend's
and runtime's job; the IR holds guest virtual addresses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from pemu.accel.tcg.opcodes import (
    ADD,
    AND,
    BR,
    BRCOND,
    CALL,
    CMPXCHG,
    GOTO_PC,
    GOTO_PTR,
    INSN_START,
    LABEL,
    LD,
    MB,
    MOV,
    MOVCOND,
    MUL,
    OPCODES,
    OR,
    PC_REL,
    ROTL,
    ROTR,
    SAR,
    SETCOND,
    SHL,
    SHR,
    ST,
    SUB,
    XOR,
    Opcode,
)
from pemu.accel.tcg.vec_op import VecOp

I32 = 32
I64 = 64
MASK = {I32: 0xFFFF_FFFF, I64: 0xFFFF_FFFF_FFFF_FFFF}


class Cond(Enum):
    """Comparison conditions; the u-suffixed ones compare unsigned."""

    EQ = "eq"
    NE = "ne"
    LT = "lt"
    GE = "ge"
    LE = "le"
    GT = "gt"
    LTU = "ltu"
    GEU = "geu"
    LEU = "leu"
    GTU = "gtu"

    def invert(self) -> Cond:
        return _INVERSE[self]

    def swap(self) -> Cond:
        """The condition with operands exchanged: a < b  <=>  b > a."""
        return _SWAPPED[self]

    @property
    def signed(self) -> bool:
        return self in (Cond.LT, Cond.GE, Cond.LE, Cond.GT)

    def evaluate(self, a: int, b: int, bits: int) -> bool:
        """Evaluate on values reduced to width ``bits`` (used by folding and tests)."""
        a &= MASK[bits]
        b &= MASK[bits]
        if self.signed:
            sign = 1 << (bits - 1)
            a, b = a ^ sign, b ^ sign  # flipping the sign bit orders signed as unsigned
        return _EVAL[self](a, b)


_INVERSE = {
    Cond.EQ: Cond.NE, Cond.NE: Cond.EQ, Cond.LT: Cond.GE, Cond.GE: Cond.LT,
    Cond.LE: Cond.GT, Cond.GT: Cond.LE, Cond.LTU: Cond.GEU, Cond.GEU: Cond.LTU,
    Cond.LEU: Cond.GTU, Cond.GTU: Cond.LEU,
}
_SWAPPED = {
    Cond.EQ: Cond.EQ, Cond.NE: Cond.NE, Cond.LT: Cond.GT, Cond.GT: Cond.LT,
    Cond.LE: Cond.GE, Cond.GE: Cond.LE, Cond.LTU: Cond.GTU, Cond.GTU: Cond.LTU,
    Cond.LEU: Cond.GEU, Cond.GEU: Cond.LEU,
}
_EVAL: dict[Cond, Callable[[int, int], bool]] = {
    Cond.EQ: lambda a, b: a == b, Cond.NE: lambda a, b: a != b,
    Cond.LT: lambda a, b: a < b, Cond.GE: lambda a, b: a >= b,
    Cond.LE: lambda a, b: a <= b, Cond.GT: lambda a, b: a > b,
    Cond.LTU: lambda a, b: a < b, Cond.GEU: lambda a, b: a >= b,
    Cond.LEU: lambda a, b: a <= b, Cond.GTU: lambda a, b: a > b,
}


@dataclass(frozen=True)
class MemOp:
    size: int  # bytes: 1, 2, 4, 8
    signed: bool = False
    # A load that is the read half of a read-modify-write (an inline AMO or SC): it
    # needs store permission and faults as a store.  The system-mode memory models
    # honour it; user mode never emits it (its atomics are helpers under a lock).
    for_store: bool = False

    def __str__(self) -> str:
        return f"{'s' if self.signed else 'u'}{self.size * 8}{'w' if self.for_store else ''}"


@dataclass(eq=False, slots=True, init=False)
class Temp:
    """A value holder.  Identity matters: two Temps are never equal unless the same."""

    index: int
    type: int
    kind: str  # "global" | "local"
    name: str
    slot: int = -1  # for globals: index of the 64-bit slot in the CPU state block
    # kind == "global", kept as a plain attribute: the optimizer and the register
    # allocator ask it for every operand of every op
    is_global: bool = field(repr=False)
    # The code generator's per-block state, kept on the temp itself (an attribute is a
    # fraction of a dict look-up by index, and the register allocator asks for every
    # operand of every op): the index of the last op that uses this local (-1: none;
    # set by the backend's liveness pass), and the host register caching its value
    # (None: only in its home).  Meaningful only while the block is being compiled.
    last_use: int = field(repr=False)
    host_reg: int | None = field(repr=False)

    def __init__(self, index: int, type: int, kind: str, name: str, slot: int = -1) -> None:
        # (written out: the dataclass's __init__ calling a __post_init__ cost a frontend
        # a third more per temp, and a block makes several)
        self.index = index
        self.type = type
        self.kind = kind
        self.name = name
        self.slot = slot
        self.is_global = kind == "global"
        self.last_use = -1
        self.host_reg = None

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Const:
    value: int

    def __repr__(self) -> str:
        return hex(self.value)


Operand = Temp | Const


@dataclass(eq=False)
class Label:
    id: int

    def __repr__(self) -> str:
        return f"L{self.id}"


# Helper call flags: what a helper may do besides computing its outputs.
CALL_PURE = 0  # no side effects: may be folded or removed when its outputs are dead
CALL_SIDE_EFFECTS = 1  # must stay (it may raise a guest exception, do I/O, ...)
CALL_READS_STATE = 2  # reads globals from the CPU state block: sync dirty ones first
CALL_WRITES_STATE = 4  # writes globals in the state block: reload cached ones after


@dataclass(frozen=True)
class Helper:
    """A Python function callable from translated code."""

    name: str
    fn: Callable[..., object]
    flags: int = CALL_SIDE_EFFECTS | CALL_READS_STATE | CALL_WRITES_STATE
    n_out: int = 1  # 0, 1 or 2 outputs (2: the function returns a tuple)
    needs_env: bool = False  # if True, the running CPU object is passed as first argument
    # a host_float.HostFloatOp: the host FPU may compute it (backends may ignore it)
    host_float: object = None
    # the native backend calls ``native()`` (the address of machine code with the C
    # signature of ``fn``: no GIL, no Python) instead of a ctypes callback of ``fn``
    native: Callable[[], int] | None = None

    def __post_init__(self) -> None:
        # helpers by name, for code cached across runs (tb_cache): a name two different
        # helpers share resolves to None, and blocks calling it are not cached
        known = HELPERS_BY_NAME.get(self.name, self)
        HELPERS_BY_NAME[self.name] = self if known == self else None

    @property
    def pure(self) -> bool:
        return self.flags == CALL_PURE


HELPERS_BY_NAME: dict[str, Helper | None] = {}


@dataclass(eq=False, slots=True)
class Op:
    opc: Opcode
    type: int
    outs: list[Temp]
    ins: list[Operand]
    aux: object = None

    def __repr__(self) -> str:
        t = "" if self.type == I64 else "_i32"
        outs = ", ".join(map(repr, self.outs))
        ins = ", ".join(map(repr, self.ins))
        aux = "" if self.aux is None else f"  [{_aux_str(self.aux)}]"
        sep = " = " if outs else " "
        return f"{outs}{sep}{self.opc}{t} {ins}{aux}".strip()


def _aux_str(aux: object) -> str:
    if isinstance(aux, Helper):
        return aux.name
    if isinstance(aux, int):
        return hex(aux)
    if isinstance(aux, tuple):
        return ", ".join(_aux_str(a) for a in aux)
    if isinstance(aux, Cond):
        return aux.value
    return str(aux)


# op(x, 0) == x for these, and op(0, x) == x for the commutative ones among them
_ZERO_IS_RIGHT_IDENTITY = frozenset({ADD, SUB, OR, XOR, SHL, SHR, SAR, ROTL, ROTR})
_ZERO_IS_LEFT_IDENTITY = frozenset(op for op in _ZERO_IS_RIGHT_IDENTITY if op.commutative)


def simplify(op: Op) -> Op:
    """A pure op with all-constant inputs folded, or algebraic identities applied (a
    MOV then); else ``op`` itself.  The optimizer's forward pass and the builder's
    binop/unop use it."""
    ins = op.ins
    d = op.outs[0]
    opc = op.opc
    for x in ins:
        if x.__class__ is not Const:
            break
    else:  # every input a constant
        value = opc.evaluate(op.type, [x.value for x in ins], op.aux)
        return Op(MOV, op.type, [d], [Const(value)])
    if opc is MOV:
        return op
    if opc in _ZERO_IS_RIGHT_IDENTITY and isinstance(ins[1], Const) and ins[1].value == 0:
        return Op(MOV, op.type, [d], [ins[0]])
    if opc in _ZERO_IS_LEFT_IDENTITY and isinstance(ins[0], Const) and ins[0].value == 0:
        return Op(MOV, op.type, [d], [ins[1]])
    if (opc is AND or opc is MUL) and any(isinstance(x, Const) and x.value == 0 for x in ins):
        return Op(MOV, op.type, [d], [Const(0)])
    if opc is MUL and isinstance(ins[1], Const) and ins[1].value == 1:
        return Op(MOV, op.type, [d], [ins[0]])
    if opc is MOVCOND and isinstance(ins[0], Const) and isinstance(ins[1], Const):
        taken = op.aux.evaluate(ins[0].value, ins[1].value, op.type)
        return Op(MOV, op.type, [d], [ins[2] if taken else ins[3]])
    if (opc is XOR or opc is SUB) and ins[0] is ins[1] and isinstance(ins[0], Temp):
        return Op(MOV, op.type, [d], [Const(0)])
    return op


@dataclass
class GlobalDef:
    name: str
    slot: int


@dataclass(eq=False)
class Block:
    """One translation block's IR, plus what the cache needs to know about it."""

    pc: int
    flags: int
    ops: list[Op] = field(default_factory=list)
    temps: list[Temp] = field(default_factory=list)
    guest_size: int = 0  # bytes of guest code covered
    n_insns: int = 0
    label_count: int = 0
    # position-independent native code (opcodes.PC_REL): every guest pc it holds is the
    # block's own pc plus a fixed offset, so it runs at any pc of the same page offset
    pc_relative: bool = False

    def dump(self) -> str:
        lines = [f"IR for pc=0x{self.pc:x} flags=0x{self.flags:x} ({self.n_insns} insns)"]
        for op in self.ops:
            indent = "" if op.opc is LABEL or op.opc is INSN_START else "    "
            lines.append(indent + repr(op))
        return "\n".join(lines)


class IRBuilder:
    """What a frontend uses to emit IR.  Globals come from the target's state layout.

    Global temps are created on first use: a block names only the few registers it
    touches, and creating all of a target's globals up front dominated the cost of
    translating short blocks.  The emitters append their ``Op`` themselves (not through
    ``emit``, whose check is for ops named by the caller): a frontend spends most of
    its time here, a few ops per guest instruction.
    """

    __slots__ = ("block", "_ops", "_temps", "_slots", "_globals")

    def __init__(self, block: Block, globals_: dict[str, int]) -> None:
        self.block = block
        self._ops = block.ops  # (the lists the builder appends to, bound once)
        self._temps = block.temps
        self._slots = globals_
        self._globals: dict[str, Temp] = {}

    # -- operands ---------------------------------------------------------------
    def glob(self, name: str) -> Temp:
        t = self._globals.get(name)
        if t is None:
            temps = self._temps
            t = self._globals[name] = Temp(len(temps), I64, "global", name, self._slots[name])
            temps.append(t)
        return t

    def temp(self, type: int = I64) -> Temp:
        temps = self._temps
        n = len(temps)
        t = Temp(n, type, "local", f"t{n}")
        temps.append(t)
        return t

    @staticmethod
    def const(value: int, type: int = I64) -> Const:
        return Const(value & MASK[type])

    def label(self) -> Label:
        self.block.label_count += 1
        return Label(self.block.label_count)

    # -- emission ---------------------------------------------------------------
    def emit(self, opc: Opcode, type: int, outs: list[Temp], ins: list[Operand],
             aux: object = None) -> None:
        """Append any op; ``opc`` is a constant of the op table (not an op name)."""
        if opc.__class__ is not Opcode:
            raise TypeError(f"IR ops are Opcode constants of accel/tcg/opcodes.py, not {opc!r}")
        self._ops.append(Op(opc, type, outs, ins, aux))

    def unop(self, opc: Opcode, d: Temp, a: Operand, type: int = I64) -> Temp:
        if opc.n_in != 1:
            raise ValueError(f"{opc} is not a unary op")
        op = Op(opc, type, [d], [a])
        self._ops.append(simplify(op) if a.__class__ is Const and opc.pure else op)
        return d

    def binop(self, opc: Opcode, d: Temp, a: Operand, b: Operand, type: int = I64) -> Temp:
        if opc.n_in != 2:
            raise ValueError(f"{opc} is not a binary op")
        op = Op(opc, type, [d], [a, b])
        # simplified here, not only by the optimizer: a target may translate without it
        # (TCGTarget.optimize), and RISC-V's li and mv are such ops (addi rd, x0, imm;
        # addi rd, rs, 0).  Only where simplify can find something (all constants, a
        # 0 or 1 operand, x op x): most ops have an immediate, and a call costs.
        if ((a.__class__ is Const and (b.__class__ is Const or a.value == 0))
                or (b.__class__ is Const and b.value <= 1) or a is b) and opc.pure:
            op = simplify(op)
        self._ops.append(op)
        return d

    def mov(self, d: Temp, a: Operand, type: int = I64) -> Temp:
        self._ops.append(Op(MOV, type, [d], [a]))
        return d

    def movi(self, d: Temp, value: int, type: int = I64) -> Temp:
        self._ops.append(Op(MOV, type, [d], [self.const(value, type)]))
        return d

    def setcond(self, d: Temp, cond: Cond, a: Operand, b: Operand, type: int = I64) -> Temp:
        self._ops.append(Op(SETCOND, type, [d], [a, b], cond))
        return d

    def movcond(self, d: Temp, cond: Cond, c1: Operand, c2: Operand, v1: Operand, v2: Operand,
                type: int = I64) -> Temp:
        self._ops.append(Op(MOVCOND, type, [d], [c1, c2, v1, v2], cond))
        return d

    def ld(self, d: Temp, addr: Operand, memop: MemOp, type: int = I64) -> Temp:
        self._ops.append(Op(LD, type, [d], [addr], memop))
        return d

    def mb(self) -> None:
        """A full memory barrier (opcodes.MB)."""
        self._ops.append(Op(MB, I64, [], [], None))

    def cmpxchg(self, d: Temp, addr: Operand, expected: Operand, new: Operand,
                memop: MemOp) -> Temp:
        """Weak compare-and-swap (opcodes.CMPXCHG): d != expected when not stored."""
        self._ops.append(Op(CMPXCHG, I64, [d], [addr, expected, new], memop))
        return d

    def st(self, value: Operand, addr: Operand, memop: MemOp) -> None:
        self._ops.append(Op(ST, I64, [], [value, addr], memop))

    def set_label(self, label: Label) -> None:
        self._ops.append(Op(LABEL, I64, [], [], label))

    def br(self, label: Label) -> None:
        self._ops.append(Op(BR, I64, [], [], label))

    def brcond(self, cond: Cond, a: Operand, b: Operand, label: Label, type: int = I64) -> None:
        self._ops.append(Op(BRCOND, type, [], [a, b], (cond, label)))

    def insn_start(self, pc: int) -> None:
        self._ops.append(Op(INSN_START, I64, [], [], pc))

    def call(self, helper: Helper, outs: list[Temp], ins: list[Operand]) -> None:
        if len(outs) != helper.n_out:
            raise ValueError(f"helper {helper.name} has {helper.n_out} outputs, got {len(outs)}")
        self._ops.append(Op(CALL, I64, outs, ins, helper))

    def goto_pc(self, pc: int) -> None:
        self._ops.append(Op(GOTO_PC, I64, [], [], pc))

    def goto_ptr(self) -> None:
        self._ops.append(Op(GOTO_PTR, I64, [], []))

    def pc_rel(self, d: Temp, pc: int) -> None:
        """d = ``pc``, a value derived from the block's own pc (opcodes.PC_REL)."""
        self._ops.append(Op(PC_REL, I64, [d], [], pc & MASK[64]))


_AUX_TYPES: dict[str | None, type | tuple[type, ...]] = {
    None: type(None), "cond": Cond, "memop": MemOp, "label": Label, "cond_label": tuple,
    "pc": int, "helper": Helper, "vec": VecOp,
}


def check_block(block: Block) -> None:
    """Structural validation; frontends' tests run every block through it."""
    labels_defined = {op.aux.id for op in block.ops if op.opc is LABEL}
    for i, op in enumerate(block.ops):
        opc = op.opc
        if not isinstance(opc, Opcode) or OPCODES.get(opc.name) is not opc:
            raise ValueError(f"op {i}: unknown opcode {opc!r}")
        if opc.n_out >= 0 and (len(op.outs) != opc.n_out or len(op.ins) != opc.n_in):
            raise ValueError(f"op {i} {op!r}: wrong operand count")
        if op.type not in (I32, I64) or (opc.i64_only and op.type != I64):
            raise ValueError(f"op {i} {op!r}: bad type")
        if not isinstance(op.aux, _AUX_TYPES[opc.aux]):
            raise ValueError(f"op {i} {op!r}: aux must be a {opc.aux}")
        if opc.branch:
            label = op.aux[1] if opc.aux == "cond_label" else op.aux
            if label.id not in labels_defined:
                raise ValueError(f"op {i}: branch to undefined label")
    if not block.ops or not block.ops[-1].opc.block_end:
        raise ValueError("block does not end with goto_pc or goto_ptr")
