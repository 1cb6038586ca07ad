"""How a target tells a backend that a float helper may run on the host FPU.

A soft-float helper whose result IEEE 754 fully specifies (add, sub, mul, div, sqrt in
round-to-nearest-even) gives the same bits on the host's FPU, except for what the
guest architecture defines itself: the NaN it returns, how it reports exception flags,
and how single-precision values sit in 64-bit registers.  The target declares those
on the helper (``Helper.host_float``); a backend that has a host FPU path
(backend/x86_64/sse_fp.py) inlines it and keeps the helper call for every other case.

The helper's shape is fixed: ``outs = [result, flags]`` and ``ins = [a, (b,) rm]``,
where ``rm`` is the rounding mode and 0 means round-to-nearest-even.
"""

from __future__ import annotations

from dataclasses import dataclass

HOST_FLOAT_KINDS = ("add", "sub", "mul", "div", "sqrt")


@dataclass(frozen=True)
class FloatConventions:
    """What one guest architecture's FPU does where IEEE 754 leaves it open."""

    canonical_nan_single: int  # the single NaN a NaN result becomes (as held in a register)
    canonical_nan_double: int
    nan_boxed_single: bool  # a single is valid only with the upper 32 bits all ones
    # the guest's flag bits for IEEE's invalid, divide-by-zero, overflow, underflow,
    # inexact exceptions, in that order
    flag_bits: tuple[int, int, int, int, int]


@dataclass(frozen=True)
class HostFloatOp:
    """``kind`` (one of HOST_FLOAT_KINDS) on singles or doubles, under ``conventions``."""

    kind: str
    single: bool
    conventions: FloatConventions

    @property
    def n_in(self) -> int:
        """Operands including the rounding mode."""
        return 2 if self.kind == "sqrt" else 3


__all__ = ["FloatConventions", "HOST_FLOAT_KINDS", "HostFloatOp"]
