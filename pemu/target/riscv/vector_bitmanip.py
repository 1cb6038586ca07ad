"""Zvbb (vector basic bit-manipulation) and its subset Zvkb, on the vector unit.

  vandn.vv/vx            funct6 000001  vs2 & ~op1                      (Zvkb)
  vror.vv/vx/vi          funct6 010100  rotate right; .vi has a 6-bit    (Zvkb)
                         (vi: 01010 i5) amount whose bit 5 is funct6 bit 0
  vrol.vv/vx             funct6 010101  rotate left                     (Zvkb)
  vbrev8.v, vrev8.v      OPMVV 010010, vs1 01000 / 01001 (VXUNARY0)     (Zvkb)
  vbrev.v, vclz.v,       OPMVV 010010, vs1 01010 / 01100 / 01101 / 01110
  vctz.v, vcpop.v
  vwsll.vv/vx/vi         funct6 110101  2*SEW zext(vs2) << op1 mod 2*SEW

The element loop, masking and register-group checks are vector_alu's ``arith``.
Which hart may run them is decided when translating (``required_extension``:
insn_vector.py makes them illegal without Zvbb/Zvkb); QEMU 7.2 has neither.
"""

from __future__ import annotations

from pemu.target.riscv.vector_alu import OPS, Fixed, Handler, arith, register_op
from pemu.target.riscv.vector_exec import VInsn

OPMVV, OPIVV, OPIVX, OPIVI = 2, 0, 4, 3
F6_VANDN, F6_VROR, F6_VROL, F6_VWSLL, F6_VXUNARY0 = 0x01, 0x14, 0x15, 0x35, 0x12
UNARY_BREV8, UNARY_REV8, UNARY_BREV, UNARY_CLZ, UNARY_CTZ, UNARY_CPOP = (
    0x08, 0x09, 0x0A, 0x0C, 0x0D, 0x0E)
ZVKB_UNARY = (UNARY_BREV8, UNARY_REV8)
ZVBB_UNARY = (UNARY_BREV, UNARY_CLZ, UNARY_CTZ, UNARY_CPOP)


def required_extension(insn: int) -> str | None:
    """"zvkb" or "zvbb" for an OP-V word of those extensions, else None."""
    if insn & 0x7F != 0x57:
        return None
    f3, f6 = insn >> 12 & 7, insn >> 26
    if f3 in (OPIVV, OPIVX, OPIVI):
        if f6 in (F6_VROR, F6_VROL) or (f6 == F6_VANDN and f3 != OPIVI):
            return "zvkb"
        if f6 == F6_VWSLL:
            return "zvbb"
    elif f3 == OPMVV and f6 == F6_VXUNARY0:
        vs1 = insn >> 15 & 31
        if vs1 in ZVKB_UNARY:
            return "zvkb"
        if vs1 in ZVBB_UNARY:
            return "zvbb"
    return None


# -- element functions (a: vs2's element, b: op1, k.sew the width) ---------------------------

def _ones(k: Fixed) -> int:
    return (1 << k.sew) - 1


def _rotate_right(a: int, b: int, k: Fixed) -> int:
    n = k.sew
    s = b & (n - 1)
    return (a >> s | a << (n - s)) & _ones(k)


def _rotate_left(a: int, b: int, k: Fixed) -> int:
    n = k.sew
    s = b & (n - 1)
    return (a << s | a >> (n - s)) & _ones(k)


def _brev(a: int, k: Fixed) -> int:
    return int(format(a, f"0{k.sew}b")[::-1], 2)


def _brev8(a: int, k: Fixed) -> int:
    data = a.to_bytes(k.sew // 8, "little")
    return int.from_bytes(bytes(int(format(x, "08b")[::-1], 2) for x in data), "little")


def _rev8(a: int, k: Fixed) -> int:
    return int.from_bytes(a.to_bytes(k.sew // 8, "little"), "big")


def _clz(a: int, k: Fixed) -> int:
    return k.sew - a.bit_length()


def _ctz(a: int, k: Fixed) -> int:
    return (a & -a).bit_length() - 1 if a else k.sew


def _cpop(a: int, k: Fixed) -> int:
    return a.bit_count()


_UNARY = {UNARY_BREV8: _brev8, UNARY_REV8: _rev8, UNARY_BREV: _brev, UNARY_CLZ: _clz,
          UNARY_CTZ: _ctz, UNARY_CPOP: _cpop}


# -- handlers ------------------------------------------------------------------------------------

_vandn = arith(lambda a, b, k: a & ~b & _ones(k))
_vror = arith(_rotate_right, uimm=True)
_vrol = arith(_rotate_left)
# the shift amount is taken modulo 2*SEW; the immediate is unsigned
_vwsll = arith(lambda a, b, k: a << (b & (2 * k.sew - 1)), wide_d=True, uimm=True)


def _vror_high(v: VInsn, form: str) -> None:
    """funct6 010101: vrol.vv/vx, or vror.vi with bit 5 of the amount set."""
    if form != "i":
        _vrol(v, form)
        return
    arith(lambda a, b, k: _rotate_right(a, b | 32, k), uimm=True)(v, form)


def _unary(fn) -> Handler:
    # one source (vs2); vs1 is the selector, so the operand form is "i" (no vs1 checks)
    run = arith(lambda a, b, k: fn(a, k))
    return lambda v, form: run(v, "i")


_UNARY_HANDLERS = {which: _unary(fn) for which, fn in _UNARY.items()}
_vxunary0_base = OPS[("m", F6_VXUNARY0)][1]  # vzext/vsext (vector_alu.py)


def _vxunary0(v: VInsn, form: str) -> None:
    handler = _UNARY_HANDLERS.get(v.rs1)
    (handler or _vxunary0_base)(v, form)


register_op("i", F6_VANDN, "vx", _vandn)
register_op("i", F6_VROR, "vxi", _vror)
register_op("i", F6_VROL, "vxi", _vror_high)
register_op("i", F6_VWSLL, "vxi", _vwsll)
register_op("m", F6_VXUNARY0, "v", _vxunary0)

__all__ = ["required_extension"]
