"""Random RVV 1.0 test programs for the differential tests against qemu-riscv64.

A program is a list of ``Case``s.  Each case loads all 32 vector registers with fresh
random bytes (whole-register loads), sets vxrm, clears vxsat, sets a random vtype and
AVL with vsetvli, puts random values into the scalar operands, runs one instruction
(masked or not), and writes a record to stdout: the 32 registers, vl, vtype, vxsat and
a0 (the scalar result of vmv.x.s, vcpop.m, vfirst.m), plus, after a store, the memory
buffer.  The operand registers are fixed (vd v8, vs2 v16, vs1 v24, mask v0; rs1 a1), so
every register group up to 8 registers is aligned and no group overlaps another; the
generator picks only legal vtype/instruction combinations, so both sides run to the
end and any difference is a bug.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

SEWS = (8, 16, 32, 64)
LMULS = ("mf8", "mf4", "mf2", "m1", "m2", "m4", "m8")
_LMUL_VALUE = {"mf8": 1 / 8, "mf4": 1 / 4, "mf2": 1 / 2, "m1": 1, "m2": 2, "m4": 4, "m8": 8}
MEM_SIZE = 8192
MEM_BASE_OFFSET = 4096  # a3 points here: strides and offsets reach both ways
EDGE_BYTES = (0x00, 0xFF, 0x80, 0x7F, 0x01)
RECORD_TAIL = 48  # after the registers: vl, vtype, vxsat, a0, fflags, fa0


@dataclass
class Case:
    insn: str  # the instruction under test (assembly)
    sew: int
    lmul: str
    avl: int
    policy: str  # "tu, mu" ...
    vxrm: int
    init: bytes  # the 32 registers' starting bytes
    x1: int  # a1
    x2: int  # a2
    stride: int  # a4
    store: bool = False
    prep: list[str] = field(default_factory=list)  # run after vsetvli, before insn
    frm: int = 0


# -- the instruction catalogue -----------------------------------------------------------------
#
# Each entry: name -> forms (v: .vv, x: .vx, i: .vi, plus flags below).
BINARY = {
    "vadd": "vxi", "vsub": "vx", "vrsub": "xi", "vminu": "vx", "vmin": "vx", "vmaxu": "vx",
    "vmax": "vx", "vand": "vxi", "vor": "vxi", "vxor": "vxi", "vsll": "vxi", "vsrl": "vxi",
    "vsra": "vxi", "vmul": "vx", "vmulh": "vx", "vmulhu": "vx", "vmulhsu": "vx",
    "vdivu": "vx", "vdiv": "vx", "vremu": "vx", "vrem": "vx",
    "vsaddu": "vxi", "vsadd": "vxi", "vssubu": "vx", "vssub": "vx", "vaaddu": "vx",
    "vaadd": "vx", "vasubu": "vx", "vasub": "vx", "vsmul": "vx", "vssrl": "vxi",
    "vssra": "vxi",
}
COMPARE = {"vmseq": "vxi", "vmsne": "vxi", "vmsltu": "vx", "vmslt": "vx", "vmsleu": "vxi",
           "vmsle": "vxi", "vmsgtu": "xi", "vmsgt": "xi"}
MAC = {"vmacc": "vx", "vnmsac": "vx", "vmadd": "vx", "vnmsub": "vx"}
WIDENING = {"vwaddu": "vx", "vwadd": "vx", "vwsubu": "vx", "vwsub": "vx", "vwmulu": "vx",
            "vwmulsu": "vx", "vwmul": "vx", "vwaddu.w": "vx", "vwadd.w": "vx",
            "vwsubu.w": "vx", "vwsub.w": "vx"}
WIDENING_MAC = {"vwmaccu": "vx", "vwmacc": "vx", "vwmaccsu": "vx", "vwmaccus": "x"}
NARROWING = {"vnsrl": "vxi", "vnsra": "vxi", "vnclipu": "vxi", "vnclip": "vxi"}
REDUCTIONS = ("vredsum", "vredand", "vredor", "vredxor", "vredminu", "vredmin", "vredmaxu",
              "vredmax")
WIDENING_REDUCTIONS = ("vwredsumu", "vwredsum")
MASK_LOGICAL = ("vmand", "vmnand", "vmandn", "vmxor", "vmor", "vmnor", "vmorn", "vmxnor")
UIMM = {"vsll", "vsrl", "vsra", "vssrl", "vssra", "vnsrl", "vnsra", "vnclipu", "vnclip"}

Gen = Callable[[random.Random, int, float], "tuple[str, list[str]] | None"]


def _mask(rng: random.Random) -> str:
    return ", v0.t" if rng.random() < 0.4 else ""


def _imm(rng: random.Random, name: str) -> int:
    return rng.randrange(32) if name in UIMM else rng.randrange(-16, 16)


def _binary_form(rng: random.Random, name: str, forms: str, vd: str = "v8",
                 suffix: str = "v", mac: bool = False) -> str:
    form = rng.choice(forms)
    m = _mask(rng)
    if form == "v":
        srcs = "v24, v16" if mac else "v16, v24"
        return f"{name}.{suffix}v {vd}, {srcs}{m}"
    if form == "x":
        srcs = "a1, v16" if mac else "v16, a1"
        return f"{name}.{suffix}x {vd}, {srcs}{m}"
    return f"{name}.{suffix}i {vd}, v16, {_imm(rng, name)}{m}"


def _gen_binary(rng: random.Random, sew: int, lmul: float):
    name, forms = rng.choice(list(BINARY.items()))
    return _binary_form(rng, name, forms), []


def _gen_compare(rng: random.Random, sew: int, lmul: float):
    name, forms = rng.choice(list(COMPARE.items()))
    return _binary_form(rng, name, forms), []


def _gen_mac(rng: random.Random, sew: int, lmul: float):
    name, forms = rng.choice(list(MAC.items()))
    return _binary_form(rng, name, forms, mac=True), []


def _gen_widening(rng: random.Random, sew: int, lmul: float):
    if sew == 64 or lmul == 8:
        return None
    if rng.random() < 0.3:
        name, forms = rng.choice(list(WIDENING_MAC.items()))
        return _binary_form(rng, name, forms, mac=True), []
    name, forms = rng.choice(list(WIDENING.items()))
    base, _, w = name.partition(".")
    return _binary_form(rng, base, forms, suffix="w" if w else "v"), []


def _gen_narrowing(rng: random.Random, sew: int, lmul: float):
    if sew == 64 or lmul == 8:
        return None
    name, forms = rng.choice(list(NARROWING.items()))
    return _binary_form(rng, name, forms, suffix="w"), []


def _gen_carry(rng: random.Random, sew: int, lmul: float):
    name = rng.choice(("vadc", "vsbc", "vmadc", "vmsbc"))
    forms = "vxi" if name in ("vadc", "vmadc") else "vx"
    form = rng.choice(forms)
    op1 = {"v": "v24", "x": "a1", "i": str(rng.randrange(-16, 16))}[form]
    with_carry = name in ("vadc", "vsbc") or rng.random() < 0.5
    if with_carry:
        return f"{name}.v{form}m v8, v16, {op1}, v0", []
    return f"{name}.v{form} v8, v16, {op1}", []


def _gen_merge(rng: random.Random, sew: int, lmul: float):
    form = rng.choice("vxi")
    op1 = {"v": "v24", "x": "a1", "i": str(rng.randrange(-16, 16))}[form]
    if rng.random() < 0.5:
        return f"vmerge.v{form}m v8, v16, {op1}, v0", []
    return f"vmv.v.{form} v8, {op1}", []


def _gen_reduction(rng: random.Random, sew: int, lmul: float):
    if rng.random() < 0.3:
        if sew == 64:
            return None
        return f"{rng.choice(WIDENING_REDUCTIONS)}.vs v8, v16, v24{_mask(rng)}", []
    return f"{rng.choice(REDUCTIONS)}.vs v8, v16, v24{_mask(rng)}", []


def _gen_mask(rng: random.Random, sew: int, lmul: float):
    r = rng.random()
    if r < 0.35:
        return f"{rng.choice(MASK_LOGICAL)}.mm v8, v16, v24", []
    if r < 0.5:
        return f"{rng.choice(('vcpop', 'vfirst'))}.m a0, v16{_mask(rng)}", []
    if r < 0.7:
        return f"{rng.choice(('vmsbf', 'vmsif', 'vmsof'))}.m v8, v16{_mask(rng)}", []
    if r < 0.85:
        return f"viota.m v8, v16{_mask(rng)}", []
    return f"vid.v v8{_mask(rng)}", []


def _gen_permute(rng: random.Random, sew: int, lmul: float):
    r = rng.random()
    if r < 0.1:
        return "vmv.x.s a0, v16", []
    if r < 0.2:
        return "vmv.s.x v8, a1", []
    if r < 0.45:
        name = rng.choice(("vslideup", "vslidedown"))
        if rng.random() < 0.5:
            return f"{name}.vi v8, v16, {rng.randrange(32)}{_mask(rng)}", []
        return f"{name}.vx v8, v16, a2{_mask(rng)}", []
    if r < 0.6:
        return f"{rng.choice(('vslide1up', 'vslide1down'))}.vx v8, v16, a1{_mask(rng)}", []
    if r < 0.8:
        form = rng.choice("vxi")
        if form == "v":  # indices mostly in range: a2 is a small all-ones mask
            return f"vrgather.vv v8, v16, v24{_mask(rng)}", ["vand.vx v24, v24, a2"]
        if form == "x":
            return f"vrgather.vx v8, v16, a2{_mask(rng)}", []
        return f"vrgather.vi v8, v16, {rng.randrange(32)}{_mask(rng)}", []
    if r < 0.9:
        if 16 / sew * lmul > 8:
            return None
        return f"vrgatherei16.vv v8, v16, v24{_mask(rng)}", []
    if r < 0.95:
        return "vcompress.vm v8, v16, v24", []
    n = rng.choice((1, 2, 4, 8))
    return f"vmv{n}r.v v8, v16", []


def _gen_ext(rng: random.Random, sew: int, lmul: float):
    frac = rng.choice((2, 4, 8))
    if sew // frac < 8 or lmul / frac < 1 / 8:
        return None
    return f"{rng.choice(('vzext', 'vsext'))}.vf{frac} v8, v16{_mask(rng)}", []


_EEWS = (8, 16, 32, 64)


def _gen_load_store(rng: random.Random, sew: int, lmul: float):
    eew = rng.choice(_EEWS)
    emul = eew / sew * lmul
    r = rng.random()
    store = rng.random() < 0.4
    op = "s" if store else "l"
    m = _mask(rng)
    if r < 0.15:  # whole registers
        n = rng.choice((1, 2, 4, 8))
        if store:
            return f"vs{n}r.v v8, (a3)", []
        return f"vl{n}re{eew}.v v8, (a3)", []
    if r < 0.2:
        return f"v{op}m.v v8, (a3)", []
    if not 1 / 8 <= emul <= 8:
        return None
    indexed = r >= 0.7  # the index EEW is eew, the data has SEW/LMUL
    data_emul = lmul if indexed else emul
    nf = 1
    if rng.random() < 0.3:
        nf = rng.choice([n for n in range(2, 9) if n * max(data_emul, 1) <= 8] or [1])
    seg = f"seg{nf}" if nf > 1 else ""
    if r < 0.5:
        return f"v{op}{seg}e{eew}.v v8, (a3){m}", []
    if r < 0.7:
        return f"v{op}s{seg}e{eew}.v v8, (a3), a4{m}", []
    kind = rng.choice(("u", "o"))
    prep = [f"vsetvli zero, zero, e{eew}, {_lmul_name(emul)}, tu, mu",
            "vand.vx v24, v24, a2"]
    restore = f"vsetvli zero, zero, e{sew}, {_lmul_name(lmul)}, tu, mu"
    return f"v{op}{kind}x{seg}ei{eew}.v v8, (a3), v24{m}", [*prep, restore]


def _lmul_name(value: float) -> str:
    return {v: k for k, v in _LMUL_VALUE.items()}[value]


def _gen_vset(rng: random.Random, sew: int, lmul: float):
    r = rng.random()
    if r < 0.4:  # vsetvl with a random, maybe illegal, vtype in a2
        return "vsetvl a0, a1, a2", []
    if r < 0.7:
        return (f"vsetivli a0, {rng.randrange(32)}, e{rng.choice(SEWS)}, "
                f"{rng.choice(LMULS)}, ta, mu"), []
    return f"vsetvli a0, zero, e{rng.choice(SEWS)}, {rng.choice(LMULS)}, tu, ma", []


# -- floating point ---------------------------------------------------------------------------

FP_BINARY = {"vfadd": "vf", "vfsub": "vf", "vfrsub": "f", "vfmul": "vf", "vfdiv": "vf",
             "vfrdiv": "f", "vfmin": "vf", "vfmax": "vf", "vfsgnj": "vf", "vfsgnjn": "vf",
             "vfsgnjx": "vf"}
FP_MAC = {"vfmacc": "vf", "vfnmacc": "vf", "vfmsac": "vf", "vfnmsac": "vf", "vfmadd": "vf",
          "vfnmadd": "vf", "vfmsub": "vf", "vfnmsub": "vf"}
FP_WIDENING = {"vfwadd": "vf", "vfwsub": "vf", "vfwadd.w": "vf", "vfwsub.w": "vf",
               "vfwmul": "vf"}
FP_WIDENING_MAC = {"vfwmacc": "vf", "vfwnmacc": "vf", "vfwmsac": "vf", "vfwnmsac": "vf"}
FP_COMPARE = {"vmfeq": "vf", "vmfne": "vf", "vmflt": "vf", "vmfle": "vf", "vmfgt": "f",
              "vmfge": "f"}
# (QEMU 7.2 crashes on the .rtz conversions: test_riscv_vector checks those on pemu alone)
FP_CONVERT = ("xu.f", "x.f", "f.xu", "f.x")


def _fp_form(rng: random.Random, name: str, forms: str, suffix: str = "v",
             mac: bool = False) -> str:
    form = rng.choice(forms)
    m = _mask(rng)
    if form == "v":
        return f"{name}.{suffix}v v8, {'v24, v16' if mac else 'v16, v24'}{m}"
    return f"{name}.{suffix}f v8, {'fa0, v16' if mac else 'v16, fa0'}{m}"


def _gen_fp_arith(rng: random.Random, sew: int, lmul: float):
    if sew == 8:
        return None
    r = rng.random()
    if r < 0.35:
        name, forms = rng.choice(list(FP_BINARY.items()))
        return _fp_form(rng, name, forms), []
    if r < 0.55:
        name, forms = rng.choice(list(FP_MAC.items()))
        return _fp_form(rng, name, forms, mac=True), []
    if r < 0.75:
        name, forms = rng.choice(list(FP_COMPARE.items()))
        return _fp_form(rng, name, forms), []
    if r < 0.85:
        return f"{rng.choice(('vfsqrt', 'vfclass'))}.v v8, v16{_mask(rng)}", []
    if r < 0.9:
        return "vfmv.f.s fa0, v16", []
    if r < 0.95:
        return rng.choice(("vfmv.s.f v8, fa0", "vfmv.v.f v8, fa0",
                           "vfmerge.vfm v8, v16, fa0, v0")), []
    return f"{rng.choice(('vfslide1up', 'vfslide1down'))}.vf v8, v16, fa0{_mask(rng)}", []


def _gen_fp_wide(rng: random.Random, sew: int, lmul: float):
    if sew == 8 or lmul == 8:
        return None
    r = rng.random()
    if r < 0.3:
        reduction = rng.choice(("vfredusum", "vfredosum", "vfredmin", "vfredmax"))
        return f"{reduction}.vs v8, v16, v24{_mask(rng)}", []
    if r < 0.5:
        if rng.random() < 0.5:
            name, forms = rng.choice(list(FP_WIDENING_MAC.items()))
            return (_fp_form(rng, name, forms, mac=True), []) if sew < 64 else None
        name, forms = rng.choice(list(FP_WIDENING.items()))
        base, _, w = name.partition(".")
        return (_fp_form(rng, base, forms, suffix="w" if w else "v"), []) if sew < 64 else None
    if r < 0.6:
        if sew == 64:
            return None
        return f"{rng.choice(('vfwredusum', 'vfwredosum'))}.vs v8, v16, v24{_mask(rng)}", []
    # conversions: SEW->SEW, widening (SEW -> 2*SEW), narrowing (2*SEW -> SEW)
    kind = rng.choice(("", "w", "n"))
    conv = rng.choice(FP_CONVERT + (("f.f",) if kind else ()) + (("rod.f.f",) if kind == "n"
                                                                  else ()))
    if kind and sew == 64:
        return None
    suffix = {"": "v", "w": "v", "n": "w"}[kind]
    return f"vf{kind}cvt.{conv}.{suffix} v8, v16{_mask(rng)}", []


FAMILIES: dict[str, tuple[Gen, ...]] = {
    "integer": (_gen_binary, _gen_compare, _gen_mac, _gen_widening, _gen_narrowing,
                _gen_carry, _gen_merge, _gen_ext),
    "reduction_mask": (_gen_reduction, _gen_mask),
    "permute": (_gen_permute,),
    "memory": (_gen_load_store,),
    "vset": (_gen_vset,),
    "fp": (_gen_fp_arith,),
    "fp_wide": (_gen_fp_wide,),
}


def _legal_vtype(rng: random.Random) -> tuple[int, str]:
    while True:
        sew, lmul = rng.choice(SEWS), rng.choice(LMULS)
        if sew <= 64 * _LMUL_VALUE[lmul]:
            return sew, lmul


def _init_bytes(rng: random.Random, size: int) -> bytes:
    out = bytearray(rng.getrandbits(8 * size).to_bytes(size, "little"))
    for _ in range(size // 16):  # sprinkle edge values: saturation, sign boundaries
        at = rng.randrange(size)
        out[at] = rng.choice(EDGE_BYTES)
    return bytes(out)


_FP_SPECIAL = {  # +-0, +-inf, qNaN, sNaN, smallest subnormal, 1.0, max finite
    16: (0, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x7D00, 1, 0x3C00, 0x7BFF),
    32: (0, 1 << 31, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0x7FA0_0000, 1, 0x3F80_0000,
         0x7F7F_FFFF),
    64: (0, 1 << 63, 0x7FF0 << 48, 0xFFF0 << 48, 0x7FF8 << 48, 0x7FF4 << 48, 1, 0x3FF0 << 48,
         0x7FEF_FFFF_FFFF_FFFF),
}
_FP_EXP_BITS = {16: 5, 32: 8, 64: 11}


def fp_value(rng: random.Random, bits: int) -> int:
    """Random FP bits: specials, values near 1 (sums that round), random patterns."""
    r = rng.random()
    if r < 0.2:
        return rng.choice(_FP_SPECIAL[bits])
    if r < 0.35:
        return rng.getrandbits(bits)
    exp_bits = _FP_EXP_BITS[bits]
    frac_bits = bits - 1 - exp_bits
    bias = (1 << (exp_bits - 1)) - 1
    exp = bias + rng.randrange(-6, 8)
    return rng.getrandbits(1) << (bits - 1) | exp << frac_bits | rng.getrandbits(frac_bits)


def _fp_init(rng: random.Random, size: int, sew: int) -> bytes:
    bits = sew if sew in _FP_EXP_BITS else 16
    return b"".join(fp_value(rng, bits).to_bytes(bits // 8, "little")
                    for _ in range(size // (bits // 8)))


def _fp_scalar(rng: random.Random, sew: int) -> int:
    """An f register for fa0: NaN-boxed to SEW (now and then not: reads as NaN)."""
    bits = sew if sew in _FP_EXP_BITS else 16
    value = fp_value(rng, bits)
    if bits < 64 and rng.random() < 0.9:
        value |= ((1 << 64) - 1) ^ ((1 << bits) - 1)
    return value - (1 << 63) if value >> 63 else value


def _scalar(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.3:
        return rng.choice((0, 1, -1, 1 << 63, (1 << 63) - 1, 0x80, 0x7F, 0xFFFF_FFFF))
    if r < 0.5:
        return rng.randrange(-20, 40)
    return rng.getrandbits(64) - (1 << 63)


def cases(family: str, seed: int, per_mnemonic: int, vlen: int) -> list[Case]:
    """Random cases of ``family`` until every mnemonic it has came ``per_mnemonic`` times
    (a mnemonic that does not come up in many tries in a row ends the search)."""
    rng = random.Random(seed)
    out: list[Case] = []
    seen: dict[str, int] = {}
    misses = 0
    while misses < 400:
        sew, lmul = _legal_vtype(rng)
        made = rng.choice(FAMILIES[family])(rng, sew, _LMUL_VALUE[lmul])
        mnemonic = made[0].split()[0] if made else ""
        if made is None or seen.get(mnemonic, 0) >= per_mnemonic:
            misses += 1
            continue
        misses = 0
        seen[mnemonic] = seen.get(mnemonic, 0) + 1
        insn, prep = made
        vlmax = int(vlen * _LMUL_VALUE[lmul]) // sew
        avl = rng.choice((vlmax, vlmax, rng.randrange(vlmax + 1), vlmax + 3, 0, 1))
        x2 = rng.randrange(64)
        if family == "vset" and insn.startswith("vsetvl "):
            # a legal or reserved vtype; bit 63 (vill) stays clear, as QEMU 7.2 only
            # checks the reserved bits below it
            x2 = rng.choice((rng.randrange(256), rng.randrange(256) | 1 << rng.randrange(8, 63)))
        elif "a2" in insn or prep:
            x2 = rng.choice((1, 3, 7, 15, 31, 63, 127)) if prep else rng.randrange(2 * vlmax + 2)
        fp = family.startswith("fp")
        if family == "vset":
            x1 = rng.randrange(3 * vlmax + 2)
        else:
            x1 = _fp_scalar(rng, sew) if fp else _scalar(rng)
        init = _fp_init(rng, 32 * vlen // 8, sew) if fp else _init_bytes(rng, 32 * vlen // 8)
        if fp:  # v0 (the mask) random bits all the same
            init = _init_bytes(rng, vlen // 8) + init[vlen // 8:]
        out.append(Case(insn, sew, lmul, avl, rng.choice(("tu, mu", "ta, ma", "tu, ma")),
                        rng.randrange(4), init, x1, x2, rng.randrange(-8, 17),
                        store=" (a3)" in insn and insn.startswith("vs"), prep=prep,
                        frm=rng.randrange(5)))
    return out


def record_size(case: Case, vlen: int) -> int:
    return 32 * vlen // 8 + RECORD_TAIL + (MEM_SIZE if case.store else 0)


def program(all_cases: list[Case], vlen: int, mem_seed: int) -> str:
    """The assembly of a program running ``all_cases`` one after the other."""
    vlenb = vlen // 8
    rng = random.Random(mem_seed)
    lines = [".option arch, +v", ".globl _start", "_start:", "la s1, init", "la s2, rec"]
    for c in all_cases:
        lines += [
            "mv t2, s1", "vl8re8.v v0, (t2)", f"addi t2, t2, {8 * vlenb}",
            "vl8re8.v v8, (t2)", f"addi t2, t2, {8 * vlenb}", "vl8re8.v v16, (t2)",
            f"addi t2, t2, {8 * vlenb}", "vl8re8.v v24, (t2)", f"li t2, {32 * vlenb}",
            "add s1, s1, t2",
            f"csrwi vxrm, {c.vxrm}", "csrwi vxsat, 0",
            f"li t0, {c.avl}", f"vsetvli t1, t0, e{c.sew}, {c.lmul}, {c.policy}",
            f"li a1, {c.x1}", f"li a2, {c.x2}", f"li a4, {c.stride}",
            "la a3, mem", f"li t2, {MEM_BASE_OFFSET}", "add a3, a3, t2", "li a0, 0",
            "fmv.d.x fa0, a1", f"fsrmi {c.frm}", "csrwi fflags, 0",
            *c.prep, c.insn,
            # the record: v0..v31, vl, vtype, vxsat, a0
            "csrr t1, vl", "csrr t3, vtype", "csrr t4, vxsat", "csrr t5, fflags",
            "fmv.x.d t6, fa0",
            "mv t2, s2", "vs8r.v v0, (t2)", f"addi t2, t2, {8 * vlenb}", "vs8r.v v8, (t2)",
            f"addi t2, t2, {8 * vlenb}", "vs8r.v v16, (t2)", f"addi t2, t2, {8 * vlenb}",
            "vs8r.v v24, (t2)", f"addi t2, t2, {8 * vlenb}",
            "sd t1, 0(t2)", "sd t3, 8(t2)", "sd t4, 16(t2)", "sd a0, 24(t2)",
            "sd t5, 32(t2)", "sd t6, 40(t2)",
            "li a0, 1", "mv a1, s2", f"li a2, {32 * vlenb + RECORD_TAIL}", "li a7, 64",
            "ecall",
        ]
        if c.store:
            lines += ["li a0, 1", "la a1, mem", f"li a2, {MEM_SIZE}", "li a7, 64", "ecall"]
    lines += ["li a0, 0", "li a7, 93", "ecall", ".data", ".balign 64", "rec:",
              f".zero {32 * vlenb + RECORD_TAIL}", ".balign 64", "mem:"]
    lines += _quads(_init_bytes(rng, MEM_SIZE))
    lines += [".balign 64", "init:"]
    for c in all_cases:
        lines += _quads(c.init)
    return "\n".join(lines)


def _quads(data: bytes) -> list[str]:
    words = [int.from_bytes(data[i:i + 8], "little") for i in range(0, len(data), 8)]
    return [".quad " + ", ".join(f"0x{w:x}" for w in words[i:i + 8])
            for i in range(0, len(words), 8)]


__all__ = ["FAMILIES", "Case", "cases", "program", "record_size"]
