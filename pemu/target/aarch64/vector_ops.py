"""Lane arithmetic on 128-bit Advanced SIMD values, as Python ints, for the helpers
that insn_simd.py calls (the IR has no vector ops; each op is one pure helper over
the two 64-bit halves of its operands)."""

from __future__ import annotations

from collections.abc import Callable

from pemu.accel.tcg.ir import CALL_PURE, Helper

MASK64 = 0xFFFF_FFFF_FFFF_FFFF
Vec = int  # 128 bits


def lanes(v: Vec, esize: int, n: int) -> list[int]:
    m = (1 << esize) - 1
    return [(v >> (i * esize)) & m for i in range(n)]


def pack(values: list[int], esize: int) -> Vec:
    m = (1 << esize) - 1
    out = 0
    for i, x in enumerate(values):
        out |= (x & m) << (i * esize)
    return out


def signed(x: int, esize: int) -> int:
    return x - (1 << esize) if x >> (esize - 1) else x


def lanewise(fn: Callable[[int, int, int], int]) -> Callable[[Vec, Vec, int, int], Vec]:
    """A binary op per lane: fn(a, b, esize) -> lane."""
    def op(a: Vec, b: Vec, esize: int, n: int) -> Vec:
        pairs = zip(lanes(a, esize, n), lanes(b, esize, n), strict=True)
        return pack([fn(x, y, esize) for x, y in pairs], esize)
    return op


def pairwise(fn: Callable[[int, int], int]) -> Callable[[Vec, Vec, int, int], Vec]:
    """UMAXP & co: pairs of a's lanes, then pairs of b's, as the lanes of the result."""
    def op(a: Vec, b: Vec, esize: int, n: int) -> Vec:
        src = lanes(a, esize, n) + lanes(b, esize, n)
        return pack([fn(src[i], src[i + 1]) for i in range(0, 2 * n, 2)], esize)
    return op


def _ones_if(c: bool, esize: int) -> int:
    return (1 << esize) - 1 if c else 0


BINARY: dict[str, Callable[[Vec, Vec, int, int], Vec]] = {
    "add": lanewise(lambda x, y, e: x + y),
    "sub": lanewise(lambda x, y, e: x - y),
    "cmeq": lanewise(lambda x, y, e: _ones_if(x == y, e)),
    "cmtst": lanewise(lambda x, y, e: _ones_if(bool(x & y), e)),
    "cmhi": lanewise(lambda x, y, e: _ones_if(x > y, e)),
    "cmhs": lanewise(lambda x, y, e: _ones_if(x >= y, e)),
    "cmgt": lanewise(lambda x, y, e: _ones_if(signed(x, e) > signed(y, e), e)),
    "cmge": lanewise(lambda x, y, e: _ones_if(signed(x, e) >= signed(y, e), e)),
    "umax": lanewise(lambda x, y, e: max(x, y)),
    "umin": lanewise(lambda x, y, e: min(x, y)),
    "umaxp": pairwise(max),
    "uminp": pairwise(min),
    "addp": pairwise(lambda x, y: x + y),
}


def _vector_helper(name: str, fn: Callable[[Vec, Vec, int, int], Vec], esize: int,
                   n: int) -> Helper:
    def helper(alo: int, ahi: int, blo: int, bhi: int) -> tuple[int, int]:
        r = fn(alo | ahi << 64, blo | bhi << 64, esize, n)
        return r & MASK64, r >> 64 & MASK64
    return Helper(f"a64_{name}_{n}x{esize}", helper, flags=CALL_PURE, n_out=2)


_CACHE: dict[tuple, Helper] = {}


def binary_helper(name: str, esize: int, n: int) -> Helper:
    """The pure helper computing BINARY[name] on n lanes of esize bits."""
    key = (name, esize, n)
    if key not in _CACHE:
        _CACHE[key] = _vector_helper(name, BINARY[name], esize, n)
    return _CACHE[key]


def unary_helper(name: str, fn: Callable[[Vec, int, int], Vec], esize: int, n: int) -> Helper:
    key = (name, esize, n)
    if key not in _CACHE:
        _CACHE[key] = _vector_helper(name, lambda a, b, e, k: fn(a, e, k), esize, n)
    return _CACHE[key]
