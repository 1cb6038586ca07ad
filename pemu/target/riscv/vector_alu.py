"""OP-V integer instructions: arithmetic, fixed point, compares, reductions, mask
operations and permutations (RVV 1.0 chapters 11 to 16).

Decoding is a table keyed by (category, funct6): category "i" is OPIVV/OPIVX/OPIVI
(funct3 0/4/3), "m" is OPMVV/OPMVX (2/6), "f" the FP ones (vector_fp.py adds them).
An entry names the operand forms it accepts ("v": vs1, "x": rs1, "i": the 5-bit
immediate, "f": an f register) and a handler ``(VInsn, form) -> None``.

Most instructions are "element-wise": ``_arith`` builds their handler from a function
of the (already sign- or zero-extended) operands; the loop masks the result to the
destination width.  Widening (2*SEW destination), ``.w`` (2*SEW vs2) and narrowing
forms are flags of the same loop.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.target.riscv.cpu_state import FFLAGS, FRM
from pemu.target.riscv.vector_exec import IllegalVector, VInsn, sign, unbox

Handler = Callable[[VInsn, str], None]
OPS: dict[tuple[str, int], tuple[str, Handler]] = {}
_FORM = {0: ("i", "v"), 3: ("i", "i"), 4: ("i", "x"), 2: ("m", "v"), 6: ("m", "x"),
         1: ("f", "v"), 5: ("f", "f")}


def exec_op_v(v: VInsn) -> None:
    category, form = _FORM[v.f3]
    entry = OPS.get((category, v.insn >> 26))
    if entry is None or form not in entry[0]:
        raise IllegalVector
    entry[1](v, form)


def register_op(category: str, funct6: int, forms: str, handler: Handler) -> None:
    OPS[(category, funct6)] = (forms, handler)


class Fixed:
    """What an element function may need beyond its operands: SEW, the fixed-point
    rounding mode and a place to note saturation (vxsat); for FP, the rounding mode
    (frm) and the accrued exception flags."""

    __slots__ = ("sew", "vxrm", "saturated", "rm", "fflags")

    def __init__(self, sew: int, vxrm: int, rm: int = 0) -> None:
        self.sew = sew
        self.vxrm = vxrm
        self.saturated = False
        self.rm = rm
        self.fflags = 0

    def fp(self, result: tuple[int, int]) -> int:
        """A pemu.fpu result: keeps its flags, returns its bits."""
        self.fflags |= result[1]
        return result[0]

    def clamp(self, value: int, lo: int, hi: int) -> int:
        if value < lo or value > hi:
            self.saturated = True
            return lo if value < lo else hi
        return value

    def clamp_signed(self, value: int, bits: int) -> int:
        return self.clamp(value, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)

    def clamp_unsigned(self, value: int, bits: int) -> int:
        return self.clamp(value, 0, (1 << bits) - 1)

    def round_shift(self, value: int, d: int) -> int:
        """value >> d, rounded as vxrm says (spec 3.8: rnu, rne, rdn, rod)."""
        if d <= 0:
            return value
        lsb, half, below = value >> d & 1, value >> (d - 1) & 1, value & ((1 << (d - 1)) - 1)
        mode = self.vxrm
        if mode == 0:
            inc = half
        elif mode == 1:
            inc = half & int(bool(below) or bool(lsb))
        elif mode == 2:
            inc = 0
        else:
            inc = int(not lsb and bool(value & ((1 << d) - 1)))
        return (value >> d) + inc


def note_flags(v: VInsn, k: Fixed) -> None:
    """What the elements raised: vxsat, fflags."""
    if k.saturated:
        v.vs.vxsat = 1
    if k.fflags:
        v.slots[FFLAGS] |= k.fflags


# -- operand 1 (vs1, rs1 or the immediate) --------------------------------------------------

def _operand(v: VInsn, form: str, size: int, signed: bool, uimm: bool = False
             ) -> Callable[[int], int]:
    """Element i of the second source, zero- or sign-extended from ``size`` bytes."""
    bits = size * 8
    mask = (1 << bits) - 1
    if form == "v":
        rs1 = v.rs1
        if signed:
            return lambda i: sign(v.elem(rs1, i, size), bits)
        return lambda i: v.elem(rs1, i, size)
    if form == "x":
        raw = v.x(v.rs1) & mask
    elif form == "f":
        raw = unbox(v.f(v.rs1), bits)
    elif uimm:
        raw = v.rs1
    else:
        raw = sign(v.rs1, 5) & mask
    value = sign(raw, bits) if signed else raw
    return lambda i: value


# -- element-wise arithmetic ---------------------------------------------------------------------

def arith(fn: Callable[..., int], *, sa: bool = False, sb: bool = False,
           wide_d: bool = False, wide_a: bool = False, accum: bool = False,
           uimm: bool = False) -> Handler:
    """vd[i] = fn(vs2[i], op1[i], k) (``accum``: fn(vs2[i], op1[i], vd[i], k)).

    sa/sb: vs2 / op1 are signed; wide_d: vd is 2*SEW; wide_a: vs2 is 2*SEW (.w and
    narrowing); uimm: the immediate is unsigned (shifts)."""

    def run(v: VInsn, form: str) -> None:
        vt = v.require_vtype()
        esz = vt.sew_bytes
        if (wide_d or wide_a) and vt.sew * 2 > v.elen:
            raise IllegalVector
        dsz, asz = esz * (2 if wide_d else 1), esz * (2 if wide_a else 1)
        dregs, aregs, bregs = (v.group_regs(2 if wide_d else 1),
                               v.group_regs(2 if wide_a else 1), v.group_regs())
        v.require_aligned(v.vd, dregs)
        v.require_aligned(v.rs2, aregs)
        if dsz != asz:  # widening .vv/.vx, or narrowing
            v.require_legal_overlap(v.vd, dregs, v.rs2, aregs, dsz > asz)
        if form == "v":
            v.require_aligned(v.rs1, bregs)
            if dsz != esz:
                v.require_legal_overlap(v.vd, dregs, v.rs1, bregs, True)
        v.require_no_v0_overlap()
        op1 = _operand(v, form, esz, sb, uimm)
        k = Fixed(vt.sew, v.vs.vxrm, v.slots[FRM])
        abits = asz * 8
        vd, rs2 = v.vd, v.rs2
        for i in v.body():
            if not v.active(i):
                continue
            a = v.elem(rs2, i, asz)
            if sa:
                a = sign(a, abits)
            if accum:
                r = fn(a, op1(i), v.elem(vd, i, dsz), k)
            else:
                r = fn(a, op1(i), k)
            v.set_elem(vd, i, dsz, r)
        note_flags(v, k)
    return run


def require_mask_sources(v: VInsn, form: str) -> None:
    """A mask result from vs2 (and vs1): aligned sources, overlapping vd at most in
    their lowest register."""
    nregs = v.group_regs()
    v.require_aligned(v.rs2, nregs)
    v.require_legal_overlap(v.vd, 1, v.rs2, nregs, False)
    if form == "v":
        v.require_aligned(v.rs1, nregs)
        v.require_legal_overlap(v.vd, 1, v.rs1, nregs, False)


def _compare(pred: Callable[[int, int], bool], signed: bool) -> Handler:
    """Integer compares: a mask bit per element."""

    def run(v: VInsn, form: str) -> None:
        vt = v.require_vtype()
        esz = vt.sew_bytes
        require_mask_sources(v, form)
        op1 = _operand(v, form, esz, signed)
        bits = vt.sew
        for i in v.body():
            if v.active(i):
                a = v.elem(v.rs2, i, esz)
                if signed:
                    a = sign(a, bits)
                v.set_mask_bit(v.vd, i, pred(a, op1(i)))
    return run


def _carry(fn: Callable[[int, int, int, int], int], mask_dest: bool) -> Handler:
    """vadc/vsbc (vd[i] = fn(...)), vmadc/vmsbc (the carry/borrow out as a mask bit).
    v0 holds the carry in: vadc/vsbc must be masked (vm=0), vmadc/vmsbc may be either."""

    def run(v: VInsn, form: str) -> None:
        vt = v.require_vtype()
        if not mask_dest and (v.vm or v.vd == 0):
            raise IllegalVector
        esz, bits = vt.sew_bytes, vt.sew
        if mask_dest:
            require_mask_sources(v, form)
        else:
            v.require_aligned(v.vd, v.group_regs())
            v.require_aligned(v.rs2, v.group_regs())
        op1 = _operand(v, form, esz, False)
        for i in v.body():
            carry = 0 if v.vm else v.mask_bit(0, i)
            r = fn(v.elem(v.rs2, i, esz), op1(i), carry, bits)
            if mask_dest:
                v.set_mask_bit(v.vd, i, r >> bits & 1)
            else:
                v.set_elem(v.vd, i, esz, r)
    return run


def merge(v: VInsn, form: str) -> None:
    """vmerge.v[vxi]m (masked) and vmv.v.[vxi] (unmasked, vs2 = 0)."""
    vt = v.require_vtype()
    esz = vt.sew_bytes
    if v.vm and v.rs2:
        raise IllegalVector
    if not v.vm and v.vd == 0:
        raise IllegalVector
    v.require_aligned(v.vd, v.group_regs())
    if form == "v":
        v.require_aligned(v.rs1, v.group_regs())
    op1 = _operand(v, form, esz, False)
    for i in v.body():
        value = op1(i) if v.vm or v.mask_bit(0, i) else v.elem(v.rs2, i, esz)
        v.set_elem(v.vd, i, esz, value)


# -- element functions ----------------------------------------------------------------------

def _div(a: int, b: int, k: Fixed) -> int:
    if b == 0:
        return -1
    if b == -1 and a == -(1 << (k.sew - 1)):
        return a
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


def _rem(a: int, b: int, k: Fixed) -> int:
    if b == 0:
        return a
    if b == -1:
        return 0
    return a - b * _div(a, b, k)


def _vsmul(a: int, b: int, k: Fixed) -> int:
    return k.clamp_signed(k.round_shift(a * b, k.sew - 1), k.sew)


def _shift_mask(k: Fixed, wide: bool = False) -> int:
    return (k.sew * (2 if wide else 1)) - 1


# funct6 -> (forms, handler)
for _f6, _forms, _h in (
    (0x00, "vxi", arith(lambda a, b, k: a + b)),
    (0x02, "vx", arith(lambda a, b, k: a - b)),
    (0x03, "xi", arith(lambda a, b, k: b - a)),
    (0x04, "vx", arith(lambda a, b, k: min(a, b))),
    (0x05, "vx", arith(lambda a, b, k: min(a, b), sa=True, sb=True)),
    (0x06, "vx", arith(lambda a, b, k: max(a, b))),
    (0x07, "vx", arith(lambda a, b, k: max(a, b), sa=True, sb=True)),
    (0x09, "vxi", arith(lambda a, b, k: a & b)),
    (0x0A, "vxi", arith(lambda a, b, k: a | b)),
    (0x0B, "vxi", arith(lambda a, b, k: a ^ b)),
    (0x10, "vxi", _carry(lambda a, b, c, bits: a + b + c, False)),
    (0x11, "vxi", _carry(lambda a, b, c, bits: a + b + c, True)),
    (0x12, "vx", _carry(lambda a, b, c, bits: a - b - c, False)),
    (0x13, "vx", _carry(lambda a, b, c, bits: (a - b - c) & (1 << bits | ((1 << bits) - 1)),
                        True)),
    (0x17, "vxi", merge),
    (0x18, "vxi", _compare(lambda a, b: a == b, False)),
    (0x19, "vxi", _compare(lambda a, b: a != b, False)),
    (0x1A, "vx", _compare(lambda a, b: a < b, False)),
    (0x1B, "vx", _compare(lambda a, b: a < b, True)),
    (0x1C, "vxi", _compare(lambda a, b: a <= b, False)),
    (0x1D, "vxi", _compare(lambda a, b: a <= b, True)),
    (0x1E, "xi", _compare(lambda a, b: a > b, False)),
    (0x1F, "xi", _compare(lambda a, b: a > b, True)),
    (0x20, "vxi", arith(lambda a, b, k: k.clamp_unsigned(a + b, k.sew))),
    (0x21, "vxi", arith(lambda a, b, k: k.clamp_signed(a + b, k.sew), sa=True, sb=True)),
    (0x22, "vx", arith(lambda a, b, k: k.clamp_unsigned(a - b, k.sew))),
    (0x23, "vx", arith(lambda a, b, k: k.clamp_signed(a - b, k.sew), sa=True, sb=True)),
    (0x25, "vxi", arith(lambda a, b, k: a << (b & _shift_mask(k)), uimm=True)),
    (0x28, "vxi", arith(lambda a, b, k: a >> (b & _shift_mask(k)), uimm=True)),
    (0x29, "vxi", arith(lambda a, b, k: a >> (b & _shift_mask(k)), sa=True, uimm=True)),
    (0x2A, "vxi", arith(lambda a, b, k: k.round_shift(a, b & _shift_mask(k)), uimm=True)),
    (0x2B, "vxi", arith(lambda a, b, k: k.round_shift(a, b & _shift_mask(k)), sa=True,
                         uimm=True)),
    (0x2C, "vxi", arith(lambda a, b, k: a >> (b & _shift_mask(k, True)), wide_a=True,
                         uimm=True)),
    (0x2D, "vxi", arith(lambda a, b, k: a >> (b & _shift_mask(k, True)), wide_a=True,
                         sa=True, uimm=True)),
    (0x2E, "vxi", arith(lambda a, b, k: k.clamp_unsigned(
        k.round_shift(a, b & _shift_mask(k, True)), k.sew), wide_a=True, uimm=True)),
    (0x2F, "vxi", arith(lambda a, b, k: k.clamp_signed(
        k.round_shift(a, b & _shift_mask(k, True)), k.sew), wide_a=True, sa=True, uimm=True)),
):
    register_op("i", _f6, _forms, _h)

for _f6, _forms, _h in (
    (0x08, "vx", arith(lambda a, b, k: k.round_shift(a + b, 1))),
    (0x09, "vx", arith(lambda a, b, k: k.round_shift(a + b, 1), sa=True, sb=True)),
    (0x0A, "vx", arith(lambda a, b, k: k.round_shift(a - b, 1))),
    (0x0B, "vx", arith(lambda a, b, k: k.round_shift(a - b, 1), sa=True, sb=True)),
    (0x20, "vx", arith(lambda a, b, k: a // b if b else -1)),
    (0x21, "vx", arith(_div, sa=True, sb=True)),
    (0x22, "vx", arith(lambda a, b, k: a % b if b else a)),
    (0x23, "vx", arith(_rem, sa=True, sb=True)),
    (0x24, "vx", arith(lambda a, b, k: (a * b) >> k.sew)),
    (0x25, "vx", arith(lambda a, b, k: a * b)),
    (0x26, "vx", arith(lambda a, b, k: (a * b) >> k.sew, sa=True)),
    (0x27, "vx", arith(lambda a, b, k: (a * b) >> k.sew, sa=True, sb=True)),
    (0x29, "vx", arith(lambda a, b, d, k: b * d + a, accum=True)),
    (0x2B, "vx", arith(lambda a, b, d, k: a - b * d, accum=True)),
    (0x2D, "vx", arith(lambda a, b, d, k: a * b + d, accum=True)),
    (0x2F, "vx", arith(lambda a, b, d, k: d - a * b, accum=True)),
    (0x30, "vx", arith(lambda a, b, k: a + b, wide_d=True)),
    (0x31, "vx", arith(lambda a, b, k: a + b, wide_d=True, sa=True, sb=True)),
    (0x32, "vx", arith(lambda a, b, k: a - b, wide_d=True)),
    (0x33, "vx", arith(lambda a, b, k: a - b, wide_d=True, sa=True, sb=True)),
    (0x34, "vx", arith(lambda a, b, k: a + b, wide_d=True, wide_a=True)),
    (0x35, "vx", arith(lambda a, b, k: a + b, wide_d=True, wide_a=True, sa=True, sb=True)),
    (0x36, "vx", arith(lambda a, b, k: a - b, wide_d=True, wide_a=True)),
    (0x37, "vx", arith(lambda a, b, k: a - b, wide_d=True, wide_a=True, sa=True, sb=True)),
    (0x38, "vx", arith(lambda a, b, k: a * b, wide_d=True)),
    (0x3A, "vx", arith(lambda a, b, k: a * b, wide_d=True, sa=True)),
    (0x3B, "vx", arith(lambda a, b, k: a * b, wide_d=True, sa=True, sb=True)),
    (0x3C, "vx", arith(lambda a, b, d, k: d + a * b, wide_d=True, accum=True)),
    (0x3D, "vx", arith(lambda a, b, d, k: d + a * b, wide_d=True, accum=True, sa=True,
                        sb=True)),
    (0x3E, "x", arith(lambda a, b, d, k: d + a * b, wide_d=True, accum=True, sa=True)),
    (0x3F, "vx", arith(lambda a, b, d, k: d + a * b, wide_d=True, accum=True, sb=True)),
):
    register_op("m", _f6, _forms, _h)


def _vsmul_or_vmvnr(v: VInsn, form: str) -> None:
    if form == "i":
        _whole_register_move(v)
    else:
        _VSMUL(v, form)


_VSMUL = arith(_vsmul, sa=True, sb=True)


def _whole_register_move(v: VInsn) -> None:
    """vmv<nr>r.v: copies nr registers as bytes, whatever vtype (from vstart on)."""
    nr = v.rs1 + 1
    if not v.vm or nr not in (1, 2, 4, 8):
        raise IllegalVector
    v.require_aligned(v.vd, nr)
    v.require_aligned(v.rs2, nr)
    esz = 1 if v.vt.vill else v.vt.sew_bytes
    start, end = v.vs.vstart * esz, nr * v.vlenb
    if start < end:
        src, dst = v.rs2 * v.vlenb, v.vd * v.vlenb
        v.regs[dst + start:dst + end] = v.regs[src + start:src + end]


register_op("i", 0x27, "vxi", _vsmul_or_vmvnr)


# -- reductions -------------------------------------------------------------------------------

def _reduction(fn: Callable[[int, int], int], signed: bool, widening: bool = False) -> Handler:
    """vd[0] = fold(fn, vs1[0], active vs2[i]); nothing is written when vl is 0."""

    def run(v: VInsn, form: str) -> None:
        vt = v.require_vtype()
        if v.vs.vstart:
            raise IllegalVector
        if widening and vt.sew * 2 > v.elen:
            raise IllegalVector
        esz = vt.sew_bytes
        dsz = esz * 2 if widening else esz
        v.require_aligned(v.rs2, v.group_regs())
        acc = v.elem(v.rs1, 0, dsz)
        if signed:
            acc = sign(acc, dsz * 8)
        for i in range(v.vs.vl):
            if v.active(i):
                e = v.elem(v.rs2, i, esz)
                acc = fn(acc, sign(e, esz * 8) if signed else e)
        if v.vs.vl:
            v.set_elem(v.vd, 0, dsz, acc)
    return run


for _f6, _fn, _signed in (
    (0x00, lambda a, b: a + b, False), (0x01, lambda a, b: a & b, False),
    (0x02, lambda a, b: a | b, False), (0x03, lambda a, b: a ^ b, False),
    (0x04, min, False), (0x05, min, True), (0x06, max, False), (0x07, max, True),
):
    register_op("m", _f6, "v", _reduction(_fn, _signed))
register_op("i", 0x30, "v", _reduction(lambda a, b: a + b, False, widening=True))
register_op("i", 0x31, "v", _reduction(lambda a, b: a + b, True, widening=True))


# -- mask instructions ----------------------------------------------------------------------------

def _mask_logical(fn: Callable[[int, int], int]) -> Handler:
    def run(v: VInsn, form: str) -> None:
        v.require_vtype()
        if not v.vm:
            raise IllegalVector
        for i in v.body():
            v.set_mask_bit(v.vd, i, fn(v.mask_bit(v.rs2, i), v.mask_bit(v.rs1, i)) & 1)
    return run


for _f6, _fn in (
    (0x18, lambda a, b: a & ~b), (0x19, lambda a, b: a & b), (0x1A, lambda a, b: a | b),
    (0x1B, lambda a, b: a ^ b), (0x1C, lambda a, b: a | ~b), (0x1D, lambda a, b: ~(a & b)),
    (0x1E, lambda a, b: ~(a | b)), (0x1F, lambda a, b: ~(a ^ b)),
):
    register_op("m", _f6, "v", _mask_logical(_fn))


def _active_mask_bits(v: VInsn) -> list[int]:
    """The indices below vl where vs2 has a set bit and the element is active."""
    return [i for i in range(v.vs.vl) if v.active(i) and v.mask_bit(v.rs2, i)]


def _vwxunary0(v: VInsn, form: str) -> None:
    """vmv.x.s, vcpop.m, vfirst.m (vv); vmv.s.x (vx)."""
    vt = v.require_vtype()
    if form == "x":  # vmv.s.x
        if v.rs2 or not v.vm:
            raise IllegalVector
        if v.vs.vstart < v.vs.vl:
            v.set_elem(v.vd, 0, vt.sew_bytes, v.x(v.rs1))
        return
    if v.rs1 == 0:  # vmv.x.s
        if not v.vm:
            raise IllegalVector
        v.set_x(v.vd, sign(v.elem(v.rs2, 0, vt.sew_bytes), vt.sew))
        return
    if v.rs1 not in (0x10, 0x11) or v.vs.vstart:
        raise IllegalVector
    bits = _active_mask_bits(v)
    if v.rs1 == 0x10:
        v.set_x(v.vd, len(bits))
    else:
        v.set_x(v.vd, bits[0] if bits else -1)


def _vext(v: VInsn, form: str) -> None:
    """vzext/vsext.vf2/vf4/vf8."""
    vt = v.require_vtype()
    frac = {2: 8, 3: 8, 4: 4, 5: 4, 6: 2, 7: 2}.get(v.rs1)
    if frac is None or vt.sew // frac < 8:
        raise IllegalVector
    signed = bool(v.rs1 & 1)
    dregs, sregs = v.group_regs(), v.group_regs(1, frac)
    v.require_aligned(v.vd, dregs)
    v.require_aligned(v.rs2, sregs)
    if v.vt.lmul_den * frac <= v.vt.lmul_num:  # the source has EMUL >= 1
        v.require_legal_overlap(v.vd, dregs, v.rs2, sregs, True)
    elif v.vd <= v.rs2 < v.vd + dregs:  # a fractional source may not overlap at all
        raise IllegalVector
    v.require_no_v0_overlap()
    esz, ssz = vt.sew_bytes, vt.sew_bytes // frac
    for i in v.body():
        if v.active(i):
            e = v.elem(v.rs2, i, ssz)
            v.set_elem(v.vd, i, esz, sign(e, ssz * 8) if signed else e)


def _vmunary0(v: VInsn, form: str) -> None:
    """vmsbf/vmsof/vmsif.m, viota.m, vid.v."""
    vt = v.require_vtype()
    which = v.rs1
    if which in (1, 2, 3):
        if v.vs.vstart or v.vd == v.rs2 or (not v.vm and v.vd == 0):
            raise IllegalVector
        seen = False
        for i in range(v.vs.vl):
            if not v.active(i):
                continue
            bit = v.mask_bit(v.rs2, i)
            if which == 1:  # vmsbf: set before the first
                out = not seen and not bit
            elif which == 3:  # vmsif: set including the first
                out = not seen
            else:  # vmsof: only the first
                out = not seen and bool(bit)
            seen = seen or bool(bit)
            v.set_mask_bit(v.vd, i, int(out))
        return
    if which not in (0x10, 0x11):
        raise IllegalVector
    esz = vt.sew_bytes
    v.require_aligned(v.vd, v.group_regs())
    v.require_no_v0_overlap()
    if which == 0x11:  # vid.v
        if v.rs2:
            raise IllegalVector
        for i in v.body():
            if v.active(i):
                v.set_elem(v.vd, i, esz, i)
        return
    if v.vs.vstart:  # viota.m
        raise IllegalVector
    count = 0
    for i in range(v.vs.vl):
        if v.active(i):
            v.set_elem(v.vd, i, esz, count)
            count += v.mask_bit(v.rs2, i)


register_op("m", 0x10, "vx", _vwxunary0)
register_op("m", 0x12, "v", _vext)
register_op("m", 0x14, "v", _vmunary0)


# -- permutations --------------------------------------------------------------------------------

def _offset(v: VInsn, form: str) -> int:
    return v.x(v.rs1) if form == "x" else v.rs1


def _slide_checks(v: VInsn, up: bool) -> int:
    vt = v.require_vtype()
    nregs = v.group_regs()
    v.require_aligned(v.vd, nregs)
    v.require_aligned(v.rs2, nregs)
    v.require_no_v0_overlap()
    if up and v.vd == v.rs2:
        raise IllegalVector
    return vt.sew_bytes


def _slideup(v: VInsn, form: str) -> None:
    esz = _slide_checks(v, True)
    off = _offset(v, form)
    for i in range(max(v.vs.vstart, off), v.vs.vl):
        if v.active(i):
            v.set_elem(v.vd, i, esz, v.elem(v.rs2, i - off, esz))


def _slidedown(v: VInsn, form: str) -> None:
    esz = _slide_checks(v, False)
    off, vlmax = _offset(v, form), v.vlmax
    for i in v.body():
        if v.active(i):
            j = i + off
            v.set_elem(v.vd, i, esz, v.elem(v.rs2, j, esz) if j < vlmax else 0)


def slide1(v: VInsn, up: bool, scalar: int) -> None:
    """vslide1up/down and vfslide1up/down: slide by one, ``scalar`` into the gap."""
    esz = _slide_checks(v, up)
    last = v.vs.vl - 1
    for i in v.body():
        if not v.active(i):
            continue
        if up:
            value = scalar if i == 0 else v.elem(v.rs2, i - 1, esz)
        else:
            value = scalar if i == last else v.elem(v.rs2, i + 1, esz)
        v.set_elem(v.vd, i, esz, value)


def _vrgather(v: VInsn, form: str, index_size: int | None = None) -> None:
    vt = v.require_vtype()
    esz = vt.sew_bytes
    isz = index_size or esz
    nregs = v.group_regs()
    v.require_aligned(v.vd, nregs)
    v.require_aligned(v.rs2, nregs)
    v.require_no_v0_overlap()
    if v.vd == v.rs2 or (form == "v" and v.vd == v.rs1):
        raise IllegalVector
    if form == "v":
        v.require_aligned(v.rs1, v.group_regs(isz, esz))
    # the index is read unsigned at full width: vx takes all 64 bits of rs1
    index = (lambda i: v.elem(v.rs1, i, isz)) if form == "v" else (lambda i: _offset(v, form))
    vlmax = v.vlmax
    for i in v.body():
        if v.active(i):
            j = index(i)
            v.set_elem(v.vd, i, esz, v.elem(v.rs2, j, esz) if j < vlmax else 0)


def _slideup_or_gatherei16(v: VInsn, form: str) -> None:
    if form == "v":  # vrgatherei16.vv: 16-bit indices
        _vrgather(v, form, 2)
    else:
        _slideup(v, form)


def _vcompress(v: VInsn, form: str) -> None:
    vt = v.require_vtype()
    if not v.vm or v.vs.vstart or v.vd in (v.rs1, v.rs2):
        raise IllegalVector
    esz = vt.sew_bytes
    v.require_aligned(v.vd, v.group_regs())
    v.require_aligned(v.rs2, v.group_regs())
    j = 0
    for i in range(v.vs.vl):
        if v.mask_bit(v.rs1, i):
            v.set_elem(v.vd, j, esz, v.elem(v.rs2, i, esz))
            j += 1


register_op("i", 0x0C, "vxi", _vrgather)
register_op("i", 0x0E, "vxi", _slideup_or_gatherei16)
register_op("i", 0x0F, "xi", _slidedown)
register_op("m", 0x0E, "x", lambda v, form: slide1(v, True, v.x(v.rs1)))
register_op("m", 0x0F, "x", lambda v, form: slide1(v, False, v.x(v.rs1)))
register_op("m", 0x17, "v", _vcompress)

__all__ = ["OPS", "Fixed", "arith", "exec_op_v", "merge", "note_flags", "register_op",
           "require_mask_sources", "slide1"]
