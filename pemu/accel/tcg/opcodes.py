"""The IR op table: every op once, with its operand counts, what it may do besides
computing its outputs, and (for pure ops) its reference semantics.

Everything that needs to know the ops derives from this table: ``ir.check_block``
(operand counts), the optimizer (which ops fold, which may be removed, which end a
block or may raise), the backends (their per-op code, checked complete against
``OPCODES`` when they are imported) and the tests (every op, both widths).

Frontends emit ops through these constants (``from pemu.accel.tcg.opcodes import ADD``
and ``b.binop(ADD, d, a, c)``), so a misspelt op is an ImportError or an undefined
name that ruff reports, never a failure when the instruction is first translated.
IR code compares ops by identity (``op.opc is LABEL``); comparing one with a string
raises TypeError, so code written against the old string opcodes fails loudly.

Reference semantics
-------------------
A pure op's ``semantics`` is a function on Python ints: ``f(*inputs, width)``, or
``f(cond, *inputs, width)`` for the ops whose aux is a ``Cond``.  ``evaluate`` hands
it the inputs reduced to the op's width and reduces the result: the functions may
return any int (negative, or wider) that is congruent to the result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

# What an op's ``Op.aux`` holds (non-operand arguments):
AUX_KINDS = (
    None,
    "cond",  # a Cond
    "memop",  # a MemOp
    "label",  # a Label
    "cond_label",  # a (Cond, Label) tuple
    "pc",  # a guest pc (int)
    "helper",  # a Helper
    "vec",  # a vec_op.VecOp
)


@dataclass(frozen=True, slots=True, eq=False)
class Opcode:
    """One IR op.  Identity is equality: there is exactly one object per op."""

    name: str
    n_out: int  # -1 for call: as many as the helper says
    n_in: int
    semantics: Callable[..., int] | None = None  # the reference result of a pure op
    commutative: bool = False  # op(a, b) == op(b, a)
    aux: str | None = None  # one of AUX_KINDS
    block_end: bool = False  # leaves the block (its last op)
    may_raise: bool = False  # may leave the block early: globals must be exact there
    memory: bool = False  # a guest memory access (ld, st, cmpxchg: aux is a MemOp)
    branch: bool = False  # jumps to a label inside the block
    narrow_result: bool = False  # the result is below 2**32 at either width
    i64_only: bool = False  # defined for I64 operands only
    pure: bool = field(init=False)  # only computes its outputs: fold it, drop it when dead

    def __post_init__(self) -> None:
        object.__setattr__(self, "pure", self.semantics is not None)
        if self.aux not in AUX_KINDS:
            raise ValueError(f"op {self.name}: unknown aux kind {self.aux!r}")

    def __repr__(self) -> str:
        return self.name

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            raise TypeError(f"compare IR ops by identity (opc is {self.name.upper()}), "
                            f"not with the string {other!r}")
        return self is other

    __hash__ = object.__hash__

    # copies (of blocks, by tests and tools) and pickles keep the one object per op
    def __copy__(self) -> Opcode:
        return self

    def __deepcopy__(self, memo: dict) -> Opcode:
        return self

    def __reduce__(self) -> tuple[Callable[[str], Opcode], tuple[str]]:
        return opcode, (self.name,)

    def evaluate(self, bits: int, args: Sequence[int], aux: object = None) -> int:
        """The result of this pure op on inputs reduced to ``bits``."""
        if self.semantics is None:
            raise ValueError(f"op {self.name} is not a pure value op")
        mask = (1 << bits) - 1
        values = [a & mask for a in args]
        if self.aux == "cond":
            return self.semantics(aux, *values, bits) & mask
        return self.semantics(*values, bits) & mask


# -- helpers of the reference semantics ----------------------------------------------


def to_signed(v: int, bits: int) -> int:
    sign = 1 << (bits - 1)
    return (v & ((1 << bits) - 1) ^ sign) - sign


def _div(a: int, b: int, bits: int) -> int:
    if b == 0:
        return -1  # all ones
    sa, sb = to_signed(a, bits), to_signed(b, bits)
    if sa == -(1 << (bits - 1)) and sb == -1:
        return a  # overflow: the dividend
    q = abs(sa) // abs(sb)
    return -q if (sa < 0) != (sb < 0) else q


def _rem(a: int, b: int, bits: int) -> int:
    if b == 0:
        return a
    sa, sb = to_signed(a, bits), to_signed(b, bits)
    if sa == -(1 << (bits - 1)) and sb == -1:
        return 0
    r = abs(sa) % abs(sb)
    return -r if sa < 0 else r


def _rotl(a: int, n: int, bits: int) -> int:
    n &= bits - 1
    return (a << n) | (a >> (bits - n)) if n else a


def _ctz(a: int, bits: int) -> int:
    return (a & -a).bit_length() - 1 if a else bits


def _bswap(a: int, bits: int) -> int:
    return int.from_bytes(a.to_bytes(bits // 8, "little"), "big")


# -- the table ------------------------------------------------------------------------
# Constant names are the op names in capitals (checked below).

MOV = Opcode("mov", 1, 1, lambda a, w: a)

# binary arithmetic and logic
ADD = Opcode("add", 1, 2, lambda a, b, w: a + b, commutative=True)
SUB = Opcode("sub", 1, 2, lambda a, b, w: a - b)
MUL = Opcode("mul", 1, 2, lambda a, b, w: a * b, commutative=True)
AND = Opcode("and", 1, 2, lambda a, b, w: a & b, commutative=True)
OR = Opcode("or", 1, 2, lambda a, b, w: a | b, commutative=True)
XOR = Opcode("xor", 1, 2, lambda a, b, w: a ^ b, commutative=True)
ANDC = Opcode("andc", 1, 2, lambda a, b, w: a & ~b)
ORC = Opcode("orc", 1, 2, lambda a, b, w: a | ~b)
EQV = Opcode("eqv", 1, 2, lambda a, b, w: ~(a ^ b), commutative=True)

# shifts and rotates: the count is taken modulo the type width
SHL = Opcode("shl", 1, 2, lambda a, b, w: a << (b & (w - 1)))
SHR = Opcode("shr", 1, 2, lambda a, b, w: a >> (b & (w - 1)))
SAR = Opcode("sar", 1, 2, lambda a, b, w: to_signed(a, w) >> (b & (w - 1)))
ROTL = Opcode("rotl", 1, 2, _rotl)
ROTR = Opcode("rotr", 1, 2, lambda a, b, w: _rotl(a, -b, w))

# high halves of the double-width product
MULSH = Opcode("mulsh", 1, 2, lambda a, b, w: (to_signed(a, w) * to_signed(b, w)) >> w,
               commutative=True, i64_only=True)
MULUH = Opcode("muluh", 1, 2, lambda a, b, w: (a * b) >> w, commutative=True, i64_only=True)
MULSUH = Opcode("mulsuh", 1, 2, lambda a, b, w: (to_signed(a, w) * b) >> w, i64_only=True)

# division with RISC-V's defined results: x/0 = all ones, x%0 = x, signed MIN/-1 = MIN
# and MIN%-1 = 0.  Other frontends fix up around these.
DIV = Opcode("div", 1, 2, _div)
DIVU = Opcode("divu", 1, 2, lambda a, b, w: a // b if b else -1)
REM = Opcode("rem", 1, 2, _rem)
REMU = Opcode("remu", 1, 2, lambda a, b, w: a % b if b else a)

MIN = Opcode("min", 1, 2, lambda a, b, w: a if to_signed(a, w) <= to_signed(b, w) else b,
             commutative=True)
MAX = Opcode("max", 1, 2, lambda a, b, w: a if to_signed(a, w) >= to_signed(b, w) else b,
             commutative=True)
MINU = Opcode("minu", 1, 2, lambda a, b, w: min(a, b), commutative=True)
MAXU = Opcode("maxu", 1, 2, lambda a, b, w: max(a, b), commutative=True)

# unary
NEG = Opcode("neg", 1, 1, lambda a, w: -a)
NOT = Opcode("not", 1, 1, lambda a, w: ~a)
EXT8S = Opcode("ext8s", 1, 1, lambda a, w: to_signed(a, 8))
EXT16S = Opcode("ext16s", 1, 1, lambda a, w: to_signed(a, 16))
EXT32S = Opcode("ext32s", 1, 1, lambda a, w: to_signed(a, 32))
EXT8U = Opcode("ext8u", 1, 1, lambda a, w: a & 0xFF, narrow_result=True)
EXT16U = Opcode("ext16u", 1, 1, lambda a, w: a & 0xFFFF, narrow_result=True)
EXT32U = Opcode("ext32u", 1, 1, lambda a, w: a & 0xFFFF_FFFF, narrow_result=True)
# bit counts; of zero: the type width
CLZ = Opcode("clz", 1, 1, lambda a, w: w - a.bit_length(), narrow_result=True)
CTZ = Opcode("ctz", 1, 1, _ctz, narrow_result=True)
CTPOP = Opcode("ctpop", 1, 1, lambda a, w: a.bit_count(), narrow_result=True)
BSWAP = Opcode("bswap", 1, 1, _bswap)

# comparisons: aux = Cond
SETCOND = Opcode("setcond", 1, 2, lambda c, a, b, w: 1 if c.evaluate(a, b, w) else 0,
                 aux="cond", narrow_result=True)  # d = cond(a, b) ? 1 : 0
MOVCOND = Opcode("movcond", 1, 4, lambda c, c1, c2, v1, v2, w: v1 if c.evaluate(c1, c2, w)
                 else v2, aux="cond")  # d = cond(c1, c2) ? v1 : v2

# guest memory: aux = MemOp
LD = Opcode("ld", 1, 1, aux="memop", memory=True, may_raise=True)  # d = mem[addr]
ST = Opcode("st", 0, 2, aux="memop", memory=True, may_raise=True)  # inputs: value, addr
# MTTCG's atomics: a *weak* compare-and-swap of guest RAM (inputs: addr, expected,
# new; the low memop.size bytes compared and stored).  d = the old value, extended as
# memop says, if the swap was tried (it stored exactly when that equals expected); if
# the access cannot be done inline (no writable TLB entry, MMIO), d = expected ^ 1 and
# nothing is stored: the frontend then calls its atomic helper.  Never raises.
CMPXCHG = Opcode("cmpxchg", 1, 3, aux="memop", memory=True)
# Runs of bytes between guest memory and host memory (the RISC-V vector unit's
# unit-stride loads and stores: the host side is the hart's vector register file).
# Inputs: host address, guest address, byte count n.  *Weak* like CMPXCHG: d = 1 when
# the n bytes were copied (n = 0 included), d = 0 and nothing moved when the run cannot
# be done inline (it crosses a page, or its page has no TLB entry for the access: not
# mapped yet, MMIO, translated code, a watchpoint); the frontend then calls its helper,
# which moves the bytes or raises the guest's fault.  Never raises.
LD_BYTES = Opcode("ld_bytes", 1, 3, memory=True, i64_only=True)  # host <- guest
ST_BYTES = Opcode("st_bytes", 1, 3, memory=True, i64_only=True)  # guest <- host
# An element-wise integer op over runs of host memory (vec_op.py: VecOp in aux and
# the reference semantics).  Inputs: dst address, src2 address, src1 (an address, or
# a value with VecOp.scalar), byte count n (whole elements).  Never raises.
VEC_OP = Opcode("vec_op", 0, 4, aux="vec", i64_only=True)
# a full memory barrier (x86: mfence): guest fences that order stores before loads
# where vCPUs or guest threads run on parallel host threads
MB = Opcode("mb", 0, 0)

# control flow
LABEL = Opcode("label", 0, 0, aux="label")
BR = Opcode("br", 0, 0, aux="label", branch=True)
BRCOND = Opcode("brcond", 0, 2, aux="cond_label", branch=True)
INSN_START = Opcode("insn_start", 0, 0, aux="pc")  # the guest pc of the insn that follows
CALL = Opcode("call", -1, -1, aux="helper", may_raise=True)  # operands as the helper says
GOTO_PC = Opcode("goto_pc", 0, 0, aux="pc", block_end=True)  # to a constant pc; chainable
GOTO_PTR = Opcode("goto_ptr", 0, 0, block_end=True)  # to the pc the pc global holds
# d = a guest pc the block's code computed from its own pc (aux: its value here, e.g. an
# auipc result or a link address).  A position-independent block (``Block.pc_relative``)
# gets it from the pc its code was installed at, so the same code serves the same page
# bytes at another virtual address (user programs under ASLR); elsewhere a constant.
PC_REL = Opcode("pc_rel", 1, 0, aux="pc")


def _collect() -> Mapping[str, Opcode]:
    table: dict[str, Opcode] = {}
    for const_name, op in globals().items():
        if isinstance(op, Opcode):
            if const_name != op.name.upper() or op.name in table:
                raise ValueError(f"op table: {const_name} names op {op.name!r}")
            table[op.name] = op
    return MappingProxyType(table)


# Every IR op, by name, in table order.
OPCODES: Mapping[str, Opcode] = _collect()


def opcode(name: str) -> Opcode:
    """The op called ``name`` (for tools that read op names; code uses the constants)."""
    op = OPCODES.get(name)
    if op is None:
        raise ValueError(f"no IR op named {name!r}")
    return op


PURE_OPS: tuple[Opcode, ...] = tuple(op for op in OPCODES.values() if op.pure)
