"""Generators of riscv64 test programs for the differential test against qemu-riscv64.

A program runs many instructions over tables of interesting operands and stores every
result (and the fflags each FP operation raised) into an output buffer, which it
writes to stdout before exiting.  ``Program.sections`` records which operation
produced which 8-byte slot, so a mismatch can be reported by name.

Register use: s1/s2/s7 walk the operand tables, s5/s6/s8 count loop iterations,
s3 is the output pointer; a1/a2/a3 (fa1/fa2/fa3) hold the operands.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

MASK64 = (1 << 64) - 1

INT_VALUES = [
    0, 1, 2, MASK64, MASK64 - 1, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, 0x7FFF_FFFF,
    0x8000_0000, 0xFFFF_FFFF, 0xFFFF_FFFF_8000_0000, 0x1_0000_0000, 0x1234_5678_9ABC_DEF0,
    0xFEDC_BA98_7654_3217, 63, 0xFF80,
]


def _d(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def _s(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


F64_VALUES = [
    0, 1 << 63, _d(1.0), _d(-1.0), _d(1.5), _d(-2.5), _d(0.1), _d(1e300), _d(-3e-300),
    0x1, 0x000F_FFFF_FFFF_FFFF, 0x7FEF_FFFF_FFFF_FFFF, 0x7FF0 << 48, 0xFFF0 << 48,
    0x7FF8 << 48, 0x7FF0_0000_0000_0001, _d(2.0**63), _d(-2147483648.5), _d(4294967295.5),
    _d(0.5), _d(2.5), _d(-0.5),
]
F32_BITS = [
    0, 1 << 31, _s(1.0), _s(-1.0), _s(1.5), _s(-2.5), _s(0.1), _s(1e30), _s(-3e-30),
    0x1, 0x007F_FFFF, 0x7F7F_FFFF, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0x7F80_0001,
    _s(2.0**31), _s(-2147483648.0), _s(16777217.0), _s(0.5), _s(2.5), _s(-0.5),
]
F32_VALUES = [0xFFFF_FFFF_0000_0000 | v for v in F32_BITS]  # NaN-boxed in the table

ROUNDING = ["rne", "rtz", "rdn", "rup", "rmm", "dyn"]


@dataclass
class Program:
    lines: list[str] = field(default_factory=list)
    sections: list[tuple[str, int]] = field(default_factory=list)  # (name, slot count)
    tables: dict[str, list[int]] = field(default_factory=dict)

    def emit(self, *lines: str) -> None:
        self.lines.extend(lines)

    def table(self, name: str, values: list[int]) -> None:
        self.tables[name] = values

    def section(self, name: str, slots: int) -> None:
        self.sections.append((name, slots))

    @property
    def total_slots(self) -> int:
        return sum(n for _, n in self.sections)

    def source(self) -> str:
        out = [".globl _start", ".text", "_start:", "  la s3, out"]
        out += ["  " + line if not line.endswith(":") else line for line in self.lines]
        out += ["  li a0, 1", "  la a1, out", f"  li a2, {self.total_slots * 8}", "  li a7, 64",
                "  ecall", "  li a0, 0", "  li a7, 93", "  ecall"]
        out.append(".data")
        out.append(".balign 8")
        for name, values in self.tables.items():
            out.append(f"{name}:")
            out += [f"  .dword 0x{v & MASK64:x}" for v in values]
        out.append("scratch: .zero 64")
        out.append(".bss")
        out.append(".balign 8")
        out.append(f"out: .zero {self.total_slots * 8}")
        return "\n".join(out) + "\n"

    def slot_name(self, slot: int) -> str:
        for name, n in self.sections:
            if slot < n:
                return f"{name} (iteration slot {slot})"
            slot -= n
        return "past the end"


def out(p: Program, reg: str) -> list[str]:
    store = "fsd" if reg.startswith("f") else "sd"
    return [f"{store} {reg}, 0(s3)", "addi s3, s3, 8"]


# -- loops -------------------------------------------------------------------------------

def loop1(p: Program, name: str, table: str, body: list[str], slots: int,
          load: str = "ld", reg: str = "a1") -> None:
    n = len(p.tables[table])
    p.emit(f"la s1, {table}", f"li s5, {n}", "1:", f"{load} {reg}, 0(s1)", *body,
           "addi s1, s1, 8", "addi s5, s5, -1", "bnez s5, 1b")
    p.section(name, n * slots)


def loop2(p: Program, name: str, table: str, body: list[str], slots: int,
          load: str = "ld", regs: tuple[str, str] = ("a1", "a2")) -> None:
    n = len(p.tables[table])
    p.emit(f"la s1, {table}", f"li s5, {n}", "1:", f"la s2, {table}", f"li s6, {n}", "2:",
           f"{load} {regs[0]}, 0(s1)", f"{load} {regs[1]}, 0(s2)", *body,
           "addi s2, s2, 8", "addi s6, s6, -1", "bnez s6, 2b",
           "addi s1, s1, 8", "addi s5, s5, -1", "bnez s5, 1b")
    p.section(name, n * n * slots)


def loop3(p: Program, name: str, table: str, body: list[str], slots: int) -> None:
    n = len(p.tables[table])
    p.emit(f"la s1, {table}", f"li s5, {n}", "1:", f"la s2, {table}", f"li s6, {n}", "2:",
           f"la s7, {table}", f"li s8, {n}", "3:",
           "fld fa1, 0(s1)", "fld fa2, 0(s2)", "fld fa3, 0(s7)", *body,
           "addi s7, s7, 8", "addi s8, s8, -1", "bnez s8, 3b",
           "addi s2, s2, 8", "addi s6, s6, -1", "bnez s6, 2b",
           "addi s1, s1, 8", "addi s5, s5, -1", "bnez s5, 1b")
    p.section(name, n * n * n * slots)


# -- integer programs ---------------------------------------------------------------------

INT_RR = [
    "add", "sub", "sll", "slt", "sltu", "xor", "srl", "sra", "or", "and",
    "mul", "mulh", "mulhsu", "mulhu", "div", "divu", "rem", "remu",
    "addw", "subw", "sllw", "srlw", "sraw", "mulw", "divw", "divuw", "remw", "remuw",
    "sh1add", "sh2add", "sh3add", "add.uw", "sh1add.uw", "sh2add.uw", "sh3add.uw",
    "andn", "orn", "xnor", "min", "minu", "max", "maxu", "rol", "ror", "rolw", "rorw",
    "bclr", "bext", "binv", "bset",
]
INT_UNARY = ["clz", "ctz", "cpop", "clzw", "cpopw", "sext.b", "sext.h", "zext.h",
             "rev8", "orc.b"]
INT_IMM = [
    ("addi", (0, 1, -1, 2047, -2048)), ("slti", (0, -1, 5)), ("sltiu", (0, -1, 5)),
    ("xori", (-1, 0x555)), ("ori", (-2048, 0x7F)), ("andi", (-1, 0x3F0)),
    ("slli", (0, 1, 31, 32, 63)), ("srli", (0, 1, 31, 32, 63)), ("srai", (0, 1, 31, 32, 63)),
    ("addiw", (0, 1, -1, 2047, -2048)), ("slliw", (0, 1, 31)), ("srliw", (0, 1, 31)),
    ("sraiw", (0, 1, 31)), ("slli.uw", (0, 1, 31, 32, 63)), ("rori", (0, 1, 32, 63)),
    ("roriw", (0, 1, 31)), ("bclri", (0, 31, 32, 63)), ("bseti", (0, 31, 32, 63)),
    ("binvi", (0, 31, 32, 63)), ("bexti", (0, 31, 32, 63)),
]
# qemu 7.2 counts ctzw over all 64 bits when the low word is zero; checked against the spec
CTZW_SECTION = "ctzw"
BRANCHES = ["beq", "bne", "blt", "bge", "bltu", "bgeu"]
LOADS = ["lb", "lh", "lw", "ld", "lbu", "lhu", "lwu"]
STORES = ["sb", "sh", "sw", "sd"]


def integer_program() -> Program:
    p = Program()
    p.table("ints", INT_VALUES)
    for op in INT_RR:
        loop2(p, op, "ints", [f"{op} a0, a1, a2", *out(p, "a0")], 1)
    body = []
    for op in INT_UNARY:
        body += [f"{op} a0, a1", *out(p, "a0")]
    loop1(p, "unary " + ",".join(INT_UNARY), "ints", body, len(INT_UNARY))
    loop1(p, CTZW_SECTION, "ints", ["ctzw a0, a1", *out(p, "a0")], 1)
    body, count = [], 0
    for op, imms in INT_IMM:
        for imm in imms:
            body += [f"{op} a0, a1, {imm}", *out(p, "a0")]
            count += 1
    loop1(p, "immediates", "ints", body, count)
    body = []
    for op in BRANCHES:
        body += ["li a0, 0", f"{op} a1, a2, 8f", "li a0, 1", "8:", *out(p, "a0")]
    loop2(p, "branches", "ints", body, len(BRANCHES))
    # loads at aligned and misaligned offsets of a patterned buffer, stores merged into it
    body = ["la t0, scratch", "sd a1, 0(t0)", "sd a2, 8(t0)"]
    for op in LOADS:
        for off in (0, 1, 3, 6):
            body += [f"{op} a0, {off}(t0)", *out(p, "a0")]
    for op in STORES:
        for off in (1, 5):
            body += ["sd a1, 8(t0)", f"{op} a2, {off}(t0)", "ld a0, 0(t0)", *out(p, "a0"),
                     "ld a0, 8(t0)", *out(p, "a0")]
    loop2(p, "loads/stores", "ints", body, len(LOADS) * 4 + len(STORES) * 4)
    body = ["lui a0, 0xfffff", *out(p, "a0"), "lui a0, 0x7ffff", *out(p, "a0"),
            "8:", "auipc a0, 0", "la t0, 8b", "sub a0, a0, t0", *out(p, "a0"),
            "jal ra, 9f", "9:", "la t0, 9b", "sub a0, ra, t0", *out(p, "a0"),
            "la t0, 7f", "addi t0, t0, 1", "jalr ra, 0(t0)", "li a0, 99", "7:", "li a0, 5",
            *out(p, "a0")]
    loop1(p, "lui/auipc/jal/jalr", "ints", body, 5)
    body = _compressed_body(p)
    loop2(p, "compressed", "ints", body, _COMPRESSED_SLOTS)
    return p


_COMPRESSED_SLOTS = 22


def _compressed_body(p: Program) -> list[str]:
    """Explicit RVC forms (the assembler also compresses much of the rest)."""
    o = out(p, "a0")
    return [
        "mv a0, a1", "c.addi a0, -7", *o, "mv a0, a1", "c.addiw a0, 31", *o,
        "c.li a0, -32", *o, "c.lui a0, 0xfffe1", *o,
        "mv a0, a1", "c.srli a0, 33", *o, "mv a0, a1", "c.srai a0, 7", *o,
        "mv a0, a1", "c.andi a0, -3", *o,
        "mv a0, a1", "c.sub a0, a2", *o, "mv a0, a1", "c.xor a0, a2", *o,
        "mv a0, a1", "c.or a0, a2", *o, "mv a0, a1", "c.and a0, a2", *o,
        "mv a0, a1", "c.subw a0, a2", *o, "mv a0, a1", "c.addw a0, a2", *o,
        "mv a0, a1", "c.slli a0, 45", *o, "c.mv a0, a2", *o, "mv a0, a1", "c.add a0, a2", *o,
        "la a4, scratch", "c.sd a1, 8(a4)", "c.sw a2, 12(a4)", "c.ld a0, 8(a4)", *o,
        "c.lw a0, 8(a4)", *o,
        "addi sp, sp, -32", "c.sdsp a2, 16(sp)", "c.swsp a1, 20(sp)", "c.ldsp a0, 16(sp)", *o,
        "c.lwsp a0, 16(sp)", *o, "c.addi16sp sp, 32",
        "li a0, 0", "mv a5, a1", "c.beqz a5, 8f", "li a0, 1", "8:", *o,
        "li a0, 0", "c.bnez a5, 8f", "li a0, 1", "8:", *o,
    ]


# -- floating point -----------------------------------------------------------------------

FP_BINARY = ["fadd", "fsub", "fmul", "fdiv"]
FP_PAIR_NO_RM = ["fmin", "fmax", "fsgnj", "fsgnjn", "fsgnjx"]
FP_COMPARE = ["feq", "flt", "fle"]
FMA = ["fmadd", "fmsub", "fnmsub", "fnmadd"]
TO_INT = ["w", "wu", "l", "lu"]


def _flagged(op_line: str, result: str, p: Program) -> list[str]:
    """Run one FP op with fflags cleared; output its result and the flags it raised."""
    return ["fsflags zero", op_line, "frflags a5", *out(p, result), *out(p, "a5")]


def fp_program() -> Program:
    p = Program()
    p.table("f64", F64_VALUES)
    p.table("f32", F32_VALUES)
    p.table("f64_pairs", F64_VALUES[:16])
    p.table("f32_pairs", F32_VALUES[:16])
    p.table("f64_fma", F64_VALUES[:9] + F64_VALUES[12:15])
    p.table("f32_fma", F32_VALUES[:9] + F32_VALUES[12:15])
    p.table("ints", INT_VALUES)
    p.emit("li t0, 2", "fsrm t0")  # dyn = rdn for the whole program
    for fmt, suffix in (("f64", "d"), ("f32", "s")):
        pairs = f"{fmt}_pairs"
        for op in FP_BINARY:
            body = []
            for rm in ROUNDING:
                body += _flagged(f"{op}.{suffix} fa0, fa1, fa2, {rm}", "fa0", p)
            loop2(p, f"{op}.{suffix}", pairs, body, 2 * len(ROUNDING), "fld", ("fa1", "fa2"))
        body = []
        for op in FP_PAIR_NO_RM:
            body += _flagged(f"{op}.{suffix} fa0, fa1, fa2", "fa0", p)
        for op in FP_COMPARE:
            body += _flagged(f"{op}.{suffix} a0, fa1, fa2", "a0", p)
        loop2(p, f"min/max/sgnj/cmp.{suffix}", pairs, body,
              2 * (len(FP_PAIR_NO_RM) + len(FP_COMPARE)), "fld", ("fa1", "fa2"))
        body = []
        for op in FMA:
            for rm in ("rne", "rtz", "dyn"):
                body += _flagged(f"{op}.{suffix} fa0, fa1, fa2, fa3, {rm}", "fa0", p)
        loop3(p, f"fma.{suffix}", f"{fmt}_fma", body, 2 * len(FMA) * 3)
        body = []
        for rm in ROUNDING:
            body += _flagged(f"fsqrt.{suffix} fa0, fa1, {rm}", "fa0", p)
            for kind in TO_INT:
                body += _flagged(f"fcvt.{kind}.{suffix} a0, fa1, {rm}", "a0", p)
        body += _flagged(f"fclass.{suffix} a0, fa1", "a0", p)
        other = "s" if suffix == "d" else "d"
        body += _flagged(f"fcvt.{other}.{suffix} fa0, fa1" + (", rup" if suffix == "d" else ""),
                         "fa0", p)
        mv = "fmv.x.d" if suffix == "d" else "fmv.x.w"
        body += [f"{mv} a0, fa1", *out(p, "a0")]
        loop1(p, f"unary.{suffix}", fmt, body,
              len(ROUNDING) * 2 * (1 + len(TO_INT)) + 2 + 2 + 1, "fld", "fa1")
        body = []
        for rm in ROUNDING:
            for kind in TO_INT:
                exact = suffix == "d" and kind in ("w", "wu")  # binutils takes no rm there
                body += _flagged(f"fcvt.{suffix}.{kind} fa0, a1" + ("" if exact else f", {rm}"),
                                 "fa0", p)
        mv = "fmv.d.x" if suffix == "d" else "fmv.w.x"
        body += [f"{mv} fa0, a1", *out(p, "fa0")]
        loop1(p, f"from int.{suffix}", "ints", body, len(ROUNDING) * len(TO_INT) * 2 + 1)
    # single-precision ops on registers that are not properly NaN-boxed
    body = ["fmv.d.x fa1, a1", "fmv.d.x fa2, a2"]
    for line in ("fadd.s fa0, fa1, fa2", "fsgnj.s fa0, fa1, fa2", "fsgnjn.s fa0, fa1, fa1",
                 "fsgnjx.s fa0, fa2, fa1", "fmin.s fa0, fa1, fa2", "fcvt.d.s fa0, fa1"):
        body += _flagged(line, "fa0", p)
    for line in ("fclass.s a0, fa1", "feq.s a0, fa1, fa2", "fmv.x.w a0, fa1",
                 "fcvt.w.s a0, fa2, rtz"):
        body += _flagged(line, "a0", p)
    body += ["la t0, scratch", "fsw fa1, 0(t0)", "flw fa0, 0(t0)", *out(p, "fa0"),
             "fsd fa2, 8(t0)", "mv a4, t0", "c.fld fa0, 8(a4)", *out(p, "fa0")]
    loop2(p, "nan-boxing", "ints", body, 20 + 2)
    # fcsr, frm and fflags through every CSR instruction form
    body = ["csrrw a0, fcsr, a1", *out(p, "a0"), "csrrs a0, fflags, a2", *out(p, "a0"),
            "csrrc a0, fcsr, a2", *out(p, "a0"), "csrrwi a0, frm, 3", *out(p, "a0"),
            "csrrsi a0, fflags, 0x15", *out(p, "a0"), "csrrci a0, fcsr, 0x1f", *out(p, "a0"),
            "csrr a0, fcsr", *out(p, "a0"), "fsrm a0, a2", *out(p, "a0"), "frrm a0", *out(p, "a0"),
            "li t0, 2", "fsrm t0"]
    loop2(p, "fp csrs", "ints", body, 9)
    return p


AMOS = ["amoswap", "amoadd", "amoxor", "amoand", "amoor", "amomin", "amomax", "amominu",
        "amomaxu"]


def atomic_program() -> Program:
    p = Program()
    p.table("ints", INT_VALUES)
    body = ["la t0, scratch", "addi t1, t0, 8"]  # t1: the word the atomics work on
    slots = 0
    for width in ("w", "d"):
        for op in AMOS:
            for order in ("", ".aq", ".rl", ".aqrl"):
                if order and op not in ("amoadd", "amoswap"):
                    continue
                body += ["sd a1, 8(t0)", f"{op}.{width}{order} a0, a2, (t1)", "ld a3, 8(t0)",
                         *out(p, "a0"), *out(p, "a3")]
                slots += 2
        body += ["sd a1, 8(t0)", f"lr.{width} a0, (t1)", *out(p, "a0"),
                 f"sc.{width} a3, a2, (t1)", *out(p, "a3"), "ld a0, 8(t0)", *out(p, "a0"),
                 f"sc.{width} a3, a1, (t1)", *out(p, "a3"), "ld a0, 8(t0)", *out(p, "a0"),
                 f"lr.{width}.aqrl a0, (t1)", "sd a2, 8(t0)", f"sc.{width}.rl a3, a1, (t1)",
                 *out(p, "a3"), "ld a0, 8(t0)", *out(p, "a0")]
        slots += 7
    loop2(p, "amo/lr/sc", "ints", body, slots)
    return p


PROGRAMS: dict[str, Callable[[], Program]] = {
    "integer": integer_program, "fp": fp_program, "atomic": atomic_program,
}


# -- random straight-line code -------------------------------------------------------------
#
# Random instructions over random registers catch what the sweeps above cannot: an
# emitter that breaks when rd is also a source, or a NaN-boxing mistake on whatever a
# previous instruction left in an f register.  s2 (x18) points at a scratch buffer and
# s3 (x19) is the output pointer; neither is ever a destination.

_RANDOM_X = [r for r in range(1, 32) if r not in (2, 3, 4, 18, 19)]
_FP_RANDOM_OPS = ["fadd", "fsub", "fmul", "fdiv", "fmin", "fmax", "fsgnj", "fsgnjn", "fsgnjx"]


def random_program(seed: int = 20240601, length: int = 2500) -> Program:
    rng = random.Random(seed)
    p = Program()
    p.table("ints", INT_VALUES)
    p.table("f64", F64_VALUES)
    p.table("f32", F32_VALUES)
    p.table("buf", [rng.getrandbits(64) for _ in range(8)])
    for r in _RANDOM_X:
        p.emit(f"li x{r}, 0x{INT_VALUES[r * 5 % len(INT_VALUES)]:x}")
    for f in range(32):
        table, values = ("f64", F64_VALUES) if f % 2 else ("f32", F32_VALUES)
        p.emit(f"la s2, {table}", f"fld f{f}, {8 * (f * 7 % len(values))}(s2)")
    p.emit("la s2, buf")

    def x() -> str:
        return f"x{rng.choice(_RANDOM_X)}"

    def f() -> str:
        return f"f{rng.randrange(32)}"

    imm_ops = dict(INT_IMM)
    for _ in range(length):
        kind = rng.random()
        if kind < 0.35:
            p.emit(f"{rng.choice(INT_RR)} {x()}, {x()}, {x()}")
        elif kind < 0.5:
            op = rng.choice(list(imm_ops))
            p.emit(f"{op} {x()}, {x()}, {rng.choice(imm_ops[op])}")
        elif kind < 0.55:
            p.emit(f"{rng.choice(INT_UNARY)} {x()}, {x()}")  # (ctzw: see CTZW_SECTION)
        elif kind < 0.65:
            op = rng.choice(["ld", "lw", "lwu", "lh", "lbu", "sd", "sw", "sh", "sb"])
            p.emit(f"{op} {x()}, {rng.randrange(0, 56)}(s2)")
        elif kind < 0.7:
            op = rng.choice(AMOS) + rng.choice([".w", ".d"])
            p.emit(f"addi t6, s2, {8 * rng.randrange(7)}", f"{op} {x()}, {x()}, (t6)")
        elif kind < 0.85:
            sfx = rng.choice(["s", "d"])
            op = rng.choice(_FP_RANDOM_OPS)
            p.emit(f"{op}.{sfx} {f()}, {f()}, {f()}")
        elif kind < 0.9:
            sfx = rng.choice(["s", "d"])
            p.emit(rng.choice([f"fmadd.{sfx} {f()}, {f()}, {f()}, {f()}",
                               f"fsqrt.{sfx} {f()}, {f()}", f"fclass.{sfx} {x()}, {f()}",
                               f"feq.{sfx} {x()}, {f()}, {f()}",
                               f"fcvt.l.{sfx} {x()}, {f()}, rtz",
                               f"fcvt.{sfx}.w {f()}, {x()}"]))
        elif kind < 0.95:
            p.emit(rng.choice([f"fmv.x.w {x()}, {f()}", f"fmv.w.x {f()}, {x()}",
                               f"fmv.x.d {x()}, {f()}", f"fmv.d.x {f()}, {x()}",
                               f"fcvt.s.d {f()}, {f()}", f"fcvt.d.s {f()}, {f()}",
                               f"flw {f()}, {rng.randrange(0, 56)}(s2)",
                               f"fsw {f()}, {rng.randrange(0, 56)}(s2)",
                               f"fsd {f()}, {8 * rng.randrange(7)}(s2)"]))
        else:
            p.emit(f"lui {x()}, {rng.randrange(1 << 20)}", f"auipc {x()}, 0")
    body: list[str] = []
    for r in _RANDOM_X:
        body += out(p, f"x{r}")
    for r in range(32):
        body += out(p, f"f{r}")
    body += ["frflags t0", *out(p, "t0")]
    for i in range(8):
        body += [f"ld t0, {8 * i}(s2)", *out(p, "t0")]
    p.emit(*body)
    p.section("final registers (x.., f0..f31, fflags, buffer)", len(_RANDOM_X) + 32 + 1 + 8)
    return p


PROGRAMS["random"] = random_program
