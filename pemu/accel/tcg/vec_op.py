"""The ``vec_op`` IR op's description and its reference semantics.

``vec_op`` (opcodes.VEC_OP) runs one element-wise integer operation over runs of host
memory: ``dst[i] = src2[i] <op> src1[i]`` for the ``n // (sew / 8)`` elements of SEW
bits, where src1 is a second run or (``scalar``) one value's low SEW bits in every
element; ``mov`` is ``dst[i] = src1[i]``.  The RISC-V frontend uses it for a vector
register group (the register file is host memory whose address a state slot holds):
vadd/vsub/vand/vor/vxor .vv/.vx/.vi, vmv.v.v/.v.x/.v.i, vmv<nr>r.v and vsll/vsrl/vsra
.vx/.vi (``sll``/``srl``/``sra``: scalar only, the count is the value's low log2(SEW)
bits).  Elements are little-endian;
a run either lies exactly on another (the same register group) or apart from it.
The native backend works 128 bits at a time and blends the last partial step.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass


def _sra(a: int, b: int, sew: int) -> int:
    sign = 1 << (sew - 1)
    return ((a ^ sign) - sign) >> (b & (sew - 1))


# kind -> f(src2 element, src1 element or value, SEW); the result is cut to SEW bits.
# The shifts take the low log2(SEW) bits of the value as their count (RVV's vsll...).
VEC_KINDS: dict[str, Callable[[int, int, int], int]] = {
    "mov": lambda a, b, w: b, "add": lambda a, b, w: a + b, "sub": lambda a, b, w: a - b,
    "and": lambda a, b, w: a & b, "or": lambda a, b, w: a | b, "xor": lambda a, b, w: a ^ b,
    "sll": lambda a, b, w: a << (b & (w - 1)), "srl": lambda a, b, w: a >> (b & (w - 1)),
    "sra": _sra,
}
SHIFTS = frozenset({"sll", "srl", "sra"})


@dataclass(frozen=True)
class VecOp:
    kind: str  # a key of VEC_KINDS (see SHIFTS)
    sew: int  # element bits: 8, 16, 32, 64
    scalar: bool  # src1 is a value, not an address

    def __post_init__(self) -> None:
        if (self.kind not in VEC_KINDS or self.sew not in (8, 16, 32, 64)
                or self.kind in SHIFTS and not self.scalar):
            raise ValueError(f"no vec_op {self.kind} e{self.sew}")

    def __str__(self) -> str:
        return f"{self.kind}.e{self.sew}{'.scalar' if self.scalar else ''}"


_FORMATS = {8: "B", 16: "H", 32: "I", 64: "Q"}


def _elements(address: int, n: int, sew: int) -> memoryview:
    return memoryview((ctypes.c_uint8 * n).from_address(address)).cast("B").cast(_FORMATS[sew])


def run_vec_op(op: VecOp, dst: int, src2: int, src1: int, n: int) -> None:
    """The op on host memory, element by element (what the python backend runs)."""
    if n <= 0:
        return
    fn, mask, sew = VEC_KINDS[op.kind], (1 << op.sew) - 1, op.sew
    d = _elements(dst, n, op.sew)
    a = _elements(src2, n, op.sew)
    if op.scalar:
        value = src1 & mask
        for i in range(len(d)):
            d[i] = fn(a[i], value, sew) & mask
    else:
        b = _elements(src1, n, op.sew)
        for i in range(len(d)):
            d[i] = fn(a[i], b[i], sew) & mask


__all__ = ["SHIFTS", "VEC_KINDS", "VecOp", "run_vec_op"]
