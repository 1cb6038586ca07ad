"""Reference semantics of the pure IR ops, on Python ints.

The optimizer folds constants with these functions, and tests use them as the oracle
for every backend: a backend's code for an op must agree with ``evaluate``.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.accel.tcg.ir import MASK, Cond


def to_signed(v: int, bits: int) -> int:
    sign = 1 << (bits - 1)
    return (v & ((1 << bits) - 1) ^ sign) - sign


def _div(a: int, b: int, bits: int) -> int:
    m = MASK[bits]
    if b == 0:
        return m
    sa, sb = to_signed(a, bits), to_signed(b, bits)
    if sa == -(1 << (bits - 1)) and sb == -1:
        return a  # overflow: the dividend
    q = abs(sa) // abs(sb)
    return (-q if (sa < 0) != (sb < 0) else q) & m


def _rem(a: int, b: int, bits: int) -> int:
    m = MASK[bits]
    if b == 0:
        return a
    sa, sb = to_signed(a, bits), to_signed(b, bits)
    if sa == -(1 << (bits - 1)) and sb == -1:
        return 0
    r = abs(sa) % abs(sb)
    return (-r if sa < 0 else r) & m


def _rot(a: int, n: int, bits: int, left: bool) -> int:
    n &= bits - 1
    if not left:
        n = (bits - n) & (bits - 1)
    return ((a << n) | (a >> (bits - n))) & MASK[bits] if n else a


def _clz(a: int, bits: int) -> int:
    return bits - a.bit_length()


def _ctz(a: int, bits: int) -> int:
    return (a & -a).bit_length() - 1 if a else bits


def _bswap(a: int, bits: int) -> int:
    n = bits // 8
    return int.from_bytes(a.to_bytes(n, "little"), "big")


_BINARY: dict[str, Callable[[int, int, int], int]] = {
    "add": lambda a, b, w: a + b,
    "sub": lambda a, b, w: a - b,
    "mul": lambda a, b, w: a * b,
    "and": lambda a, b, w: a & b,
    "or": lambda a, b, w: a | b,
    "xor": lambda a, b, w: a ^ b,
    "andc": lambda a, b, w: a & ~b,
    "orc": lambda a, b, w: a | ~b,
    "eqv": lambda a, b, w: ~(a ^ b),
    "shl": lambda a, b, w: a << (b & (w - 1)),
    "shr": lambda a, b, w: a >> (b & (w - 1)),
    "sar": lambda a, b, w: to_signed(a, w) >> (b & (w - 1)),
    "rotl": lambda a, b, w: _rot(a, b, w, True),
    "rotr": lambda a, b, w: _rot(a, b, w, False),
    "mulsh": lambda a, b, w: (to_signed(a, w) * to_signed(b, w)) >> w,
    "muluh": lambda a, b, w: (a * b) >> w,
    "mulsuh": lambda a, b, w: (to_signed(a, w) * b) >> w,
    "div": _div,
    "divu": lambda a, b, w: a // b if b else MASK[w],
    "rem": _rem,
    "remu": lambda a, b, w: a % b if b else a,
    "min": lambda a, b, w: a if to_signed(a, w) <= to_signed(b, w) else b,
    "max": lambda a, b, w: a if to_signed(a, w) >= to_signed(b, w) else b,
    "minu": lambda a, b, w: min(a, b),
    "maxu": lambda a, b, w: max(a, b),
}

_UNARY: dict[str, Callable[[int, int], int]] = {
    "mov": lambda a, w: a,
    "neg": lambda a, w: -a,
    "not": lambda a, w: ~a,
    "ext8s": lambda a, w: to_signed(a, 8),
    "ext16s": lambda a, w: to_signed(a, 16),
    "ext32s": lambda a, w: to_signed(a, 32),
    "ext8u": lambda a, w: a & 0xFF,
    "ext16u": lambda a, w: a & 0xFFFF,
    "ext32u": lambda a, w: a & 0xFFFF_FFFF,
    "clz": _clz,
    "ctz": _ctz,
    "ctpop": lambda a, w: a.bit_count(),
    "bswap": _bswap,
}

FOLDABLE = set(_BINARY) | set(_UNARY) | {"setcond", "movcond"}


def evaluate(opc: str, bits: int, args: list[int], aux: object = None) -> int:
    """Compute a pure op's result on unsigned inputs of width ``bits``."""
    m = MASK[bits]
    args = [a & m for a in args]
    if opc in _BINARY:
        return _BINARY[opc](args[0], args[1], bits) & m
    if opc in _UNARY:
        return _UNARY[opc](args[0], bits) & m
    if opc == "setcond":
        assert isinstance(aux, Cond)
        return 1 if aux.evaluate(args[0], args[1], bits) else 0
    if opc == "movcond":
        assert isinstance(aux, Cond)
        return args[2] if aux.evaluate(args[0], args[1], bits) else args[3]
    raise ValueError(f"op {opc} is not a pure value op")
