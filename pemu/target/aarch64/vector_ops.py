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


def pairwise(fn: Callable[[int, int, int], int]) -> Callable[[Vec, Vec, int, int], Vec]:
    """UMAXP & co: pairs of a's lanes, then pairs of b's, as the lanes of the result."""
    def op(a: Vec, b: Vec, esize: int, n: int) -> Vec:
        src = lanes(a, esize, n) + lanes(b, esize, n)
        return pack([fn(src[i], src[i + 1], esize) for i in range(0, 2 * n, 2)], esize)
    return op


def _ones_if(c: bool, esize: int) -> int:
    return (1 << esize) - 1 if c else 0


def shift_amount(y: int) -> int:
    """SSHL & co: the shift is the signed low byte of the other operand's lane."""
    return signed(y & 0xFF, 8)


def shift_by(x: int, sh: int, rounding: bool) -> int:
    """x shifted left by sh (right when negative), exactly; with rounding, a right
    shift adds half of the last bit shifted out (the R forms)."""
    if sh >= 0:
        return x << sh
    if rounding:
        return (x + (1 << (-sh - 1))) >> -sh
    return x >> -sh


def saturate(v: int, esize: int, is_signed: bool) -> tuple[int, bool]:
    """(v clamped to the lane's range, whether it was clamped): FPSR.QC's source."""
    lo, hi = (-(1 << (esize - 1)), (1 << (esize - 1)) - 1) if is_signed else (0, (1 << esize) - 1)
    clamped = min(max(v, lo), hi)
    return clamped, clamped != v


def poly_mul(x: int, y: int) -> int:
    """Carry-less (polynomial over GF(2)) product: PMUL, PMULL."""
    r = 0
    for i in range(y.bit_length()):
        if y >> i & 1:
            r ^= x << i
    return r


def _sh(x: int, y: int, e: int, sg: bool, rnd: bool) -> int:
    return shift_by(signed(x, e) if sg else x, shift_amount(y), rnd)


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
    "umaxp": pairwise(lambda x, y, e: max(x, y)),
    "uminp": pairwise(lambda x, y, e: min(x, y)),
    "addp": pairwise(lambda x, y, e: x + y),
    "smaxp": pairwise(lambda x, y, e: max(signed(x, e), signed(y, e))),
    "sminp": pairwise(lambda x, y, e: min(signed(x, e), signed(y, e))),
    "smax": lanewise(lambda x, y, e: max(signed(x, e), signed(y, e))),
    "smin": lanewise(lambda x, y, e: min(signed(x, e), signed(y, e))),
    "sabd": lanewise(lambda x, y, e: abs(signed(x, e) - signed(y, e))),
    "uabd": lanewise(lambda x, y, e: abs(x - y)),
    "mul": lanewise(lambda x, y, e: x * y),
    "pmul": lanewise(lambda x, y, e: poly_mul(x, y)),
    "shadd": lanewise(lambda x, y, e: (signed(x, e) + signed(y, e)) >> 1),
    "uhadd": lanewise(lambda x, y, e: (x + y) >> 1),
    "srhadd": lanewise(lambda x, y, e: (signed(x, e) + signed(y, e) + 1) >> 1),
    "urhadd": lanewise(lambda x, y, e: (x + y + 1) >> 1),
    "shsub": lanewise(lambda x, y, e: (signed(x, e) - signed(y, e)) >> 1),
    "uhsub": lanewise(lambda x, y, e: (x - y) >> 1),
    "sshl": lanewise(lambda x, y, e: _sh(x, y, e, True, False)),
    "ushl": lanewise(lambda x, y, e: _sh(x, y, e, False, False)),
    "srshl": lanewise(lambda x, y, e: _sh(x, y, e, True, True)),
    "urshl": lanewise(lambda x, y, e: _sh(x, y, e, False, True)),
}


# Saturating ops: fn(x, y, esize) -> (exact result, signed?) of a lane, then clamped.
SATURATING: dict[str, Callable[[int, int, int], tuple[int, bool]]] = {
    "sqadd": lambda x, y, e: (signed(x, e) + signed(y, e), True),
    "uqadd": lambda x, y, e: (x + y, False),
    "sqsub": lambda x, y, e: (signed(x, e) - signed(y, e), True),
    "uqsub": lambda x, y, e: (x - y, False),
    "sqshl": lambda x, y, e: (_sh(x, y, e, True, False), True),
    "uqshl": lambda x, y, e: (_sh(x, y, e, False, False), False),
    "sqrshl": lambda x, y, e: (_sh(x, y, e, True, True), True),
    "uqrshl": lambda x, y, e: (_sh(x, y, e, False, True), False),
    "sqdmulh": lambda x, y, e: ((2 * signed(x, e) * signed(y, e)) >> e, True),
    "sqrdmulh": lambda x, y, e: ((2 * signed(x, e) * signed(y, e) + (1 << (e - 1))) >> e,
                                 True),
}


def saturating(name: str) -> Callable[[Vec, Vec, int, int], tuple[Vec, bool]]:
    """SATURATING[name] over n lanes: (result, whether any lane saturated)."""
    fn = SATURATING[name]

    def op(a: Vec, b: Vec, esize: int, n: int) -> tuple[Vec, bool]:
        out, qc = [], False
        for x, y in zip(lanes(a, esize, n), lanes(b, esize, n), strict=True):
            exact, is_signed = fn(x, y, esize)
            v, sat = saturate(exact, esize, is_signed)
            out.append(v)
            qc |= sat
        return pack(out, esize), qc
    return op


def full_helper(name: str, fn: Callable[..., Vec], nregs: int) -> Helper:
    """The pure helper of fn over nregs 128-bit values (each passed as its two 64-bit
    halves, at most three) returning a 128-bit value as (low, high).  ``name`` must
    name everything fn depends on: translated code cached across runs finds helpers by
    name."""
    if name not in _CACHE:
        def helper(*halves: int) -> tuple[int, int]:
            r = fn(*(halves[i] | halves[i + 1] << 64 for i in range(0, 2 * nregs, 2)))
            return r & MASK64, r >> 64 & MASK64
        _CACHE[name] = Helper(name, helper, flags=CALL_PURE, n_out=2)
    return _CACHE[name]


def flag_helper(name: str, fn: Callable[..., tuple[Vec, bool]], nregs: int) -> Helper:
    """The pure helper returning whether fn (as for full_helper, with a second result:
    saturated) saturated: FPSR.QC (bit 27) or 0."""
    if name not in _CACHE:
        def helper(*halves: int) -> int:
            _, sat = fn(*(halves[i] | halves[i + 1] << 64 for i in range(0, 2 * nregs, 2)))
            return 1 << 27 if sat else 0
        _CACHE[name] = Helper(name, helper, flags=CALL_PURE, n_out=1)
    return _CACHE[name]


def _vector_helper(name: str, fn: Callable[[Vec, Vec, int, int], Vec], esize: int,
                   n: int) -> Helper:
    def helper(alo: int, ahi: int, blo: int, bhi: int) -> tuple[int, int]:
        r = fn(alo | ahi << 64, blo | bhi << 64, esize, n)
        return r & MASK64, r >> 64 & MASK64
    return Helper(f"a64_{name}_{n}x{esize}", helper, flags=CALL_PURE, n_out=2)


_CACHE: dict[object, Helper] = {}


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
