"""Building A64 test programs: assemble with binutils, run under pemu-aarch64 and
qemu-aarch64, and a generator of random integer A64 sequences."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AS = "aarch64-linux-gnu-as"
LD = "aarch64-linux-gnu-ld"
QEMU = "qemu-aarch64"


def need_tools() -> None:
    missing = [t for t in (AS, LD, QEMU) if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (binutils-aarch64-linux-gnu, qemu-user)")


def assemble(source: str, workdir: Path, name: str = "prog") -> Path:
    src, obj, exe = workdir / f"{name}.S", workdir / f"{name}.o", workdir / name
    src.write_text(source)
    subprocess.run([AS, "-march=armv8.1-a+crc", str(src), "-o", str(obj)], check=True,
                   capture_output=True)
    subprocess.run([LD, "-static", str(obj), "-o", str(exe)], check=True, capture_output=True)
    return exe


def run_pemu(*args: str, backend: str | None = None, timeout: float = 240,
             cwd: Path | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    accel = ["-accel", f"tcg,backend={backend}"] if backend else []
    code = "import sys; from pemu.linux_user.main import main_aarch64; " \
           "sys.exit(main_aarch64(sys.argv[1:]))"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code, *accel, *args], capture_output=True,
                          timeout=timeout, env=env, cwd=cwd, input=stdin)


def run_qemu(*args: str, cwd: Path | None = None, stdin: bytes | None = None
             ) -> subprocess.CompletedProcess:
    return subprocess.run([QEMU, *args], capture_output=True, timeout=120, cwd=cwd,
                          input=stdin)


# -- the random integer sequence generator -------------------------------------------------

DATA_REGS = 21  # x0..x20 hold the values the sequence computes
MEM_BYTES = 256
Q_OFFSET = 8 * (DATA_REGS + 3)  # after X0-X20, NZCV, FPSR, one pad word: 16-aligned
OUT_BYTES = Q_OFFSET + 16 * 16  # then Q0-Q15
BITMASKS = (0xFF, 0xFF00, 0x5555555555555555, 0xFFFFFFFFFFFFFFF0, 0x0F0F0F0F0F0F0F0F,
            0x7FFFFFFFFFFFFFFE, 0x3, 0xFFFF0000FFFF0000, 0x1FFFF)
BITMASKS32 = (0xFF, 0xFFFF0000, 0x55555555, 0xFFFFFFF0, 0x7FFFFFFE, 0x1)
CONDS = ("eq", "ne", "cs", "cc", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le")


def _reg(rng: random.Random, w: bool) -> str:
    return f"{'w' if w else 'x'}{rng.randrange(DATA_REGS)}"


def random_instruction(rng: random.Random) -> str:
    """One random A64 integer instruction over x0..x20 (x26: the memory buffer)."""
    w = rng.random() < 0.35
    d, n, m, a = (_reg(rng, w) for _ in range(4))
    size = 32 if w else 64
    kind = rng.randrange(25)
    if kind == 0:
        op = rng.choice(("add", "adds", "sub", "subs"))
        return f"{op} {d}, {n}, #{rng.randrange(4096)}{', lsl #12' if rng.random() < .3 else ''}"
    if kind == 1:
        op = rng.choice(("add", "adds", "sub", "subs", "and", "ands", "orr", "eor", "bic",
                         "bics", "orn", "eon"))
        shifts = ("lsl", "lsr", "asr") + (("ror",) if op not in ("add", "adds", "sub", "subs")
                                          else ())
        return f"{op} {d}, {n}, {m}, {rng.choice(shifts)} #{rng.randrange(size)}"
    if kind == 2:
        op = rng.choice(("add", "adds", "sub", "subs"))
        ext = rng.choice(("uxtb", "uxth", "uxtw", "sxtb", "sxth", "sxtw"))
        src = f"w{rng.randrange(DATA_REGS)}"
        return f"{op} {d}, {n}, {src}, {ext} #{rng.randrange(5)}"
    if kind == 3:
        op = rng.choice(("adc", "adcs", "sbc", "sbcs", "mul", "udiv", "sdiv", "lslv", "lsrv",
                         "asrv", "rorv"))
        return f"{op} {d}, {n}, {m}"
    if kind == 4:
        op = rng.choice(("madd", "msub"))
        return f"{op} {d}, {n}, {m}, {a}"
    if kind == 5:
        x = [f"x{rng.randrange(DATA_REGS)}" for _ in range(4)]
        op = rng.choice(("smulh", "umulh", "smaddl", "umaddl", "smsubl", "umsubl"))
        if op in ("smulh", "umulh"):
            return f"{op} {x[0]}, {x[1]}, {x[2]}"
        return f"{op} {x[0]}, w{rng.randrange(DATA_REGS)}, w{rng.randrange(DATA_REGS)}, {x[3]}"
    if kind == 6:
        op = rng.choice(("csel", "csinc", "csinv", "csneg"))
        return f"{op} {d}, {n}, {m}, {rng.choice(CONDS)}"
    if kind == 7:
        op = rng.choice(("ccmp", "ccmn"))
        operand = f"#{rng.randrange(32)}" if rng.random() < .5 else m
        return f"{op} {n}, {operand}, #{rng.randrange(16)}, {rng.choice(CONDS)}"
    if kind == 8:
        op = rng.choice(("clz", "cls", "rbit", "rev", "rev16") + (() if w else ("rev32",)))
        return f"{op} {d}, {n}"
    if kind == 9:
        lsb = rng.randrange(size)
        width = rng.randrange(1, size - lsb + 1)
        op = rng.choice(("ubfx", "sbfx", "bfi", "bfxil", "ubfiz", "sbfiz"))
        return f"{op} {d}, {n}, #{lsb}, #{width}"
    if kind == 10:
        return f"extr {d}, {n}, {m}, #{rng.randrange(size)}"
    if kind == 11:
        op = rng.choice(("movz", "movk", "movn"))
        return f"{op} {d}, #{rng.randrange(65536)}, lsl #{16 * rng.randrange(2 if w else 4)}"
    if kind == 12:
        op = rng.choice(("and", "orr", "eor", "ands"))
        return f"{op} {d}, {n}, #{rng.choice(BITMASKS32 if w else BITMASKS):#x}"
    if kind == 13:
        return f"{rng.choice(('cmp', 'cmn', 'tst'))} {n}, {m}"
    if kind == 14:
        return f"{rng.choice(('cset', 'csetm'))} {d}, {rng.choice(CONDS)}"
    if kind == 15:
        return f"{rng.choice(('lsl', 'lsr', 'asr', 'ror'))} {d}, {n}, #{rng.randrange(size)}"
    if kind == 16:  # loads and stores at an unsigned offset
        x = rng.randrange(DATA_REGS)
        op, scale, reg = rng.choice((("ldr", 8, "x"), ("str", 8, "x"), ("ldr", 4, "w"),
                                     ("str", 4, "w"), ("ldrb", 1, "w"), ("strb", 1, "w"),
                                     ("ldrh", 2, "w"), ("strh", 2, "w"), ("ldrsb", 1, "x"),
                                     ("ldrsh", 2, "x"), ("ldrsw", 4, "x"), ("ldrsb", 1, "w"),
                                     ("ldur", 8, "x"), ("stur", 4, "w")))
        off = rng.randrange(0, MEM_BYTES - 16) // scale * scale
        if op in ("ldur", "stur"):
            off = rng.randrange(0, MEM_BYTES - 16)
        return f"{op} {reg}{x}, [x26, #{off}]"
    if kind == 17:  # pre/post-index through x25
        x = rng.randrange(DATA_REGS)
        op = rng.choice(("ldr", "str"))
        off = rng.randrange(-64, 64) // 8 * 8
        form = f"[x25, #{off}]!" if rng.random() < .5 else f"[x25], #{off}"
        return f"add x25, x26, #128\n    {op} x{x}, {form}"
    if kind == 18:  # pairs
        x, y = rng.sample(range(DATA_REGS), 2)
        op = rng.choice(("ldp", "stp"))
        off = rng.randrange(0, 15) * 8
        form = rng.choice((f"[x26, #{off}]", f"[x25, #{off}]!", f"[x25], #{off}"))
        return f"add x25, x26, #64\n    {op} x{x}, x{y}, {form}"
    if kind == 19:  # register offset with extend
        x = rng.randrange(DATA_REGS)
        op = rng.choice(("ldr", "str"))
        return (f"and x24, x{rng.randrange(DATA_REGS)}, #0x78\n"
                f"    {op} x{x}, [x26, x24{rng.choice(('', ', lsl #0'))}]")
    if kind == 20:  # exclusives
        x = rng.randrange(DATA_REGS)
        return (f"add x25, x26, #{rng.randrange(0, 30) * 8}\n    ldxr x{x}, [x25]\n"
                f"    stxr w24, x{rng.randrange(DATA_REGS)}, [x25]\n    add x{x}, x{x}, x24")
    if kind == 21:  # LSE atomics and CAS
        x, y = rng.sample(range(DATA_REGS), 2)
        off = rng.randrange(0, 30) * 8
        op = rng.choice(("ldadd", "ldclr", "ldeor", "ldset", "ldsmax", "ldsmin", "ldumax",
                         "ldumin", "swp", "cas", "ldaddal", "swpl", "casa"))
        width = rng.choice(("", "b", "h")) if op[-1] not in "bhl" else ""
        reg = "w" if width or rng.random() < .3 else "x"
        return (f"add x25, x26, #{off}\n    {op}{width} {reg}{x}, {reg}{y}, [x25]")
    if kind == 22:  # CRC32
        op, src = rng.choice((("crc32b", "w"), ("crc32h", "w"), ("crc32w", "w"),
                              ("crc32x", "x"), ("crc32cb", "w"), ("crc32cx", "x")))
        return f"{op} w{rng.randrange(DATA_REGS)}, w{rng.randrange(DATA_REGS)}, " \
               f"{src}{rng.randrange(DATA_REGS)}"
    if kind == 23:  # exclusive pairs
        x, y = rng.sample(range(DATA_REGS), 2)
        return (f"add x25, x26, #{rng.randrange(0, 14) * 16}\n    ldxp x{x}, x{y}, [x25]\n"
                f"    stxp w24, x{y}, x{x}, [x25]\n    add x{x}, x{x}, x24")
    return f"adr {d.replace('w', 'x')}, .+{rng.randrange(-64, 64) * 4}\n" \
           f"    sub {d.replace('w', 'x')}, {d.replace('w', 'x')}, x23"


SIMD_ARRANGEMENTS = ("16b", "8b", "8h", "4h", "4s", "2s")
TO_INT = ("fcvtzs", "fcvtzu", "fcvtns", "fcvtms", "fcvtps", "fcvtas", "fcvtau")


def random_simd_instruction(rng: random.Random) -> str:
    """One random Advanced SIMD or scalar FP instruction over v0..v15 (and x0..x20)."""
    v = [rng.randrange(16) for _ in range(4)]
    t = rng.choice(SIMD_ARRANGEMENTS + ("2d",))
    kind = rng.randrange(16)
    if kind == 0:
        ops = ["add", "sub", "cmeq", "cmtst", "cmhi", "cmhs", "cmgt", "cmge"]
        if t != "2d":
            ops += ["umax", "umin", "umaxp", "uminp", "addp"]
        return f"{rng.choice(ops)} v{v[0]}.{t}, v{v[1]}.{t}, v{v[2]}.{t}"
    if kind == 1:
        t = rng.choice(("16b", "8b"))
        op = rng.choice(("and", "bic", "orr", "orn", "eor", "bsl", "bit", "bif"))
        return f"{op} v{v[0]}.{t}, v{v[1]}.{t}, v{v[2]}.{t}"
    if kind == 2:
        op = rng.choice(("cmeq", "cmgt", "cmge", "cmle", "cmlt"))
        return f"{op} v{v[0]}.{t}, v{v[1]}.{t}, #0"
    if kind == 3:
        t = rng.choice(("16b", "8b"))
        return f"{rng.choice(('not', 'cnt'))} v{v[0]}.{t}, v{v[1]}.{t}"
    if kind == 4:
        wide, narrow, narrow2, bits = rng.choice((("8h", "8b", "16b", 8), ("4s", "4h", "8h", 16),
                                                  ("2d", "2s", "4s", 32)))
        second = rng.random() < .5
        op, narrow = (("xtn2", "shrn2")[rng.random() < .5], narrow2) if second else \
            (rng.choice(("xtn", "shrn")), narrow)
        if op.startswith("xtn"):
            return f"{op} v{v[0]}.{narrow}, v{v[1]}.{wide}"
        return f"{op} v{v[0]}.{narrow}, v{v[1]}.{wide}, #{rng.randrange(1, bits + 1)}"
    if kind == 5:
        t = rng.choice(("16b", "8h", "4s", "2d", "8b", "4h", "2s"))
        bits = {"b": 8, "h": 16, "s": 32, "d": 64}[t[-1]]
        op = rng.choice(("ushr", "sshr", "shl"))
        amount = rng.randrange(0, bits) if op == "shl" else rng.randrange(1, bits + 1)
        return f"{op} v{v[0]}.{t}, v{v[1]}.{t}, #{amount}"
    if kind == 6:
        op, reg, t = rng.choice((("umaxv", "b", "16b"), ("uminv", "h", "8h"),
                                 ("addv", "s", "4s"), ("addv", "b", "8b"),
                                 ("umaxv", "s", "4s")))
        return f"{op} {reg}{v[0]}, v{v[1]}.{t}"
    if kind == 7:
        shift = rng.choice((0, 8, 16, 24))
        return rng.choice((f"movi v{v[0]}.16b, #{rng.randrange(256)}",
                           f"movi v{v[0]}.4s, #{rng.randrange(256)}, lsl #{shift}",
                           f"mvni v{v[0]}.8h, #{rng.randrange(256)}, lsl #{rng.choice((0, 8))}",
                           f"movi v{v[0]}.2d, #0xff00ff0000ffff00",
                           f"orr v{v[0]}.4s, #{rng.randrange(256)}, lsl #8",
                           f"bic v{v[0]}.8h, #{rng.randrange(256)}",
                           f"movi v{v[0]}.4s, #{rng.randrange(256)}, msl #8"))
    if kind == 8:
        t, reg = rng.choice((("16b", "w"), ("8h", "w"), ("4s", "w"), ("2d", "x"), ("8b", "w")))
        return f"dup v{v[0]}.{t}, {reg}{rng.randrange(DATA_REGS)}"
    if kind == 9:
        lane, n = rng.choice((("b", 16), ("h", 8), ("s", 4), ("d", 2)))
        t = {"b": "16b", "h": "8h", "s": "4s", "d": "2d"}[lane]
        return rng.choice((f"dup v{v[0]}.{t}, v{v[1]}.{lane}[{rng.randrange(n)}]",
                           f"mov v{v[0]}.{lane}[{rng.randrange(n)}], "
                           f"v{v[1]}.{lane}[{rng.randrange(n)}]",
                           f"mov v{v[0]}.{lane}[{rng.randrange(n)}], "
                           f"{'x' if lane == 'd' else 'w'}{rng.randrange(DATA_REGS)}",
                           f"umov {'x' if lane == 'd' else 'w'}{rng.randrange(DATA_REGS)}, "
                           f"v{v[1]}.{lane}[{rng.randrange(n)}]"))
    if kind == 10:
        q = rng.random() < .5
        return f"ext v{v[0]}.{'16b' if q else '8b'}, v{v[1]}.{'16b' if q else '8b'}, " \
               f"v{v[2]}.{'16b' if q else '8b'}, #{rng.randrange(16 if q else 8)}"
    p = rng.choice("sd")
    if kind == 11:
        op = rng.choice(("fadd", "fsub", "fmul", "fdiv", "fmax", "fmin", "fmaxnm", "fminnm",
                         "fnmul"))
        return f"{op} {p}{v[0]}, {p}{v[1]}, {p}{v[2]}"
    if kind == 12:
        op = rng.choice(("fsqrt", "fabs", "fneg", "fmov", "frintn", "frintp", "frintm",
                         "frintz", "frinta", "frintx", "frinti"))
        return f"{op} {p}{v[0]}, {p}{v[1]}"
    if kind == 13:
        x = rng.randrange(DATA_REGS)
        r = rng.choice("wx")
        return rng.choice((f"{rng.choice(('scvtf', 'ucvtf'))} {p}{v[0]}, {r}{x}",
                           f"{rng.choice(TO_INT)} {r}{x}, {p}{v[0]}",
                           f"fcvt {'d' if p == 's' else 's'}{v[0]}, {p}{v[1]}",
                           f"fmov {'d' if r == 'x' else 's'}{v[0]}, {r}{x}",
                           f"fmov {r}{x}, {'d' if r == 'x' else 's'}{v[0]}"))
    if kind == 14:
        op = rng.choice(("fmadd", "fmsub", "fnmadd", "fnmsub"))
        return f"{op} {p}{v[0]}, {p}{v[1]}, {p}{v[2]}, {p}{v[3]}"
    return rng.choice((f"{rng.choice(('fcmp', 'fcmpe'))} {p}{v[0]}, {p}{v[1]}",
                       f"fcmp {p}{v[0]}, #0.0",
                       f"fccmp {p}{v[0]}, {p}{v[1]}, #{rng.randrange(16)}, {rng.choice(CONDS)}",
                       f"fcsel {p}{v[0]}, {p}{v[1]}, {p}{v[2]}, {rng.choice(CONDS)}"))


NARROW_WIDE = (("8b", "16b", "8h"), ("4h", "8h", "4s"), ("2s", "4s", "2d"))
LANE_BITS = {"b": 8, "h": 16, "s": 32, "d": 64}


def random_scalar_neon_instruction(rng: random.Random, v: list[int]) -> str:
    """The scalar forms: one lane in a B/H/S/D register."""
    r = rng.choice("bhsd")
    kind = rng.randrange(6)
    if kind == 0:
        op = rng.choice(("add", "sub", "cmeq", "cmgt", "cmhi", "cmtst", "sshl", "ushl",
                         "srshl", "urshl"))
        return f"{op} d{v[0]}, d{v[1]}, d{v[2]}"
    if kind == 1:
        op = rng.choice(("sqadd", "uqadd", "sqsub", "uqsub", "sqshl", "uqrshl"))
        if rng.random() < .3:
            r, op = rng.choice("hs"), rng.choice(("sqdmulh", "sqrdmulh"))
        return f"{op} {r}{v[0]}, {r}{v[1]}, {r}{v[2]}"
    if kind == 2:
        if rng.random() < .5:
            return f"{rng.choice(('abs', 'neg'))} d{v[0]}, d{v[1]}"
        if r != "b" and rng.random() < .5:
            n = {"h": "b", "s": "h", "d": "s"}[r]
            return f"{rng.choice(('sqxtn', 'uqxtn', 'sqxtun'))} {n}{v[0]}, {r}{v[1]}"
        return f"{rng.choice(('sqabs', 'sqneg'))} {r}{v[0]}, {r}{v[1]}"
    if kind == 3:
        op = rng.choice(("ushr", "sshr", "ssra", "ursra", "srshr", "sri", "shl", "sli"))
        amount = rng.randrange(64) if op in ("shl", "sli") else rng.randrange(1, 65)
        if rng.random() < .4:
            bits = LANE_BITS[r]
            op = rng.choice(("sqshl", "uqshl", "sqshlu"))
            return f"{op} {r}{v[0]}, {r}{v[1]}, #{rng.randrange(bits)}"
        return f"{op} d{v[0]}, d{v[1]}, #{amount}"
    if kind == 4:
        return rng.choice((f"addp d{v[0]}, v{v[1]}.2d",
                           f"{rng.choice(('faddp', 'fmaxp', 'fminp', 'fmaxnmp', 'fminnmp'))} "
                           + rng.choice((f"s{v[0]}, v{v[1]}.2s", f"d{v[0]}, v{v[1]}.2d")),
                           f"{rng.choice(('sqshrn', 'uqshrn', 'sqrshrun'))} s{v[0]}, d{v[1]}, "
                           f"#{rng.randrange(1, 33)}"))
    if rng.random() < .25:  # fixed-point conversions: #fbits fraction bits
        p, w = rng.choice("sd"), rng.choice("wx")
        fbits = rng.randrange(1, 33 if w == "w" else 65)
        x = rng.randrange(DATA_REGS)
        return rng.choice((f"{rng.choice(('scvtf', 'ucvtf'))} {p}{v[0]}, {w}{x}, #{fbits}",
                           f"{rng.choice(('fcvtzs', 'fcvtzu'))} {w}{x}, {p}{v[0]}, #{fbits}"))
    if rng.random() < .5:  # scalar FP compares, FABD, conversions in FP registers
        p = rng.choice("sd")
        return rng.choice((
            f"{rng.choice(('fabd', 'fcmeq', 'fcmge', 'fcmgt', 'facge', 'facgt', 'fmulx'))} "
            f"{p}{v[0]}, {p}{v[1]}, {p}{v[2]}",
            f"{rng.choice(('fcmeq', 'fcmge', 'fcmgt', 'fcmle', 'fcmlt'))} {p}{v[0]}, "
            f"{p}{v[1]}, #0.0",
            f"{rng.choice(('scvtf', 'ucvtf', 'fcvtzs', 'fcvtzu', 'fcvtns', 'fcvtmu', 'fcvtau'))}"
            f" {p}{v[0]}, {p}{v[1]}"))
    count = 128 // LANE_BITS[r]
    return f"mov {r}{v[0]}, v{v[1]}.{r}[{rng.randrange(count)}]"


def random_by_element_instruction(rng: random.Random, v: list[int]) -> str:
    """MUL & co with one lane of Vm (v0-v15 for H lanes: the index takes a bit)."""
    lane, arr = rng.choice((("h", "8h"), ("h", "4h"), ("s", "4s"), ("s", "2s")))
    idx = f"v{v[2]}.{lane}[{rng.randrange(8 if lane == 'h' else 4)}]"
    kind = rng.randrange(3)
    if kind == 0:
        op = rng.choice(("mul", "mla", "mls", "sqdmulh", "sqrdmulh"))
        return f"{op} v{v[0]}.{arr}, v{v[1]}.{arr}, {idx}"
    if kind == 1:
        op = rng.choice(("smull", "umull", "smlal", "umlal", "smlsl", "umlsl", "sqdmull",
                         "sqdmlal", "sqdmlsl"))
        two = arr in ("8h", "4s")
        wide = "4s" if lane == "h" else "2d"
        return f"{op}{'2' if two else ''} v{v[0]}.{wide}, v{v[1]}.{arr}, {idx}"
    op = rng.choice(("fmul", "fmla", "fmls", "fmulx"))
    if rng.random() < .4:
        return f"{op} v{v[0]}.2d, v{v[1]}.2d, v{v[2]}.d[{rng.randrange(2)}]"
    arr = rng.choice(("4s", "2s"))
    return f"{op} v{v[0]}.{arr}, v{v[1]}.{arr}, v{v[2]}.s[{rng.randrange(4)}]"


def random_neon_instruction(rng: random.Random) -> str:
    """One random instruction of the wider Advanced SIMD set (saturating, widening and
    narrowing, permutes and tables, shifts by immediate, across lanes, structure loads
    and stores, vector FP) over v0..v15; memory through x26/x25."""
    v = [rng.randrange(16) for _ in range(4)]
    t = rng.choice(SIMD_ARRANGEMENTS + ("2d",))
    no_d = rng.choice(SIMD_ARRANGEMENTS)
    hs = rng.choice(("8h", "4h", "4s", "2s"))
    narrow, narrow2, wide = rng.choice(NARROW_WIDE)
    two = rng.random() < .5
    nar = narrow2 if two else narrow
    sfx = "2" if two else ""
    kind = rng.randrange(18)
    if kind == 16:
        return random_scalar_neon_instruction(rng, v)
    if kind == 17:
        return random_by_element_instruction(rng, v)
    if kind == 0:
        op = rng.choice(("sqadd", "uqadd", "sqsub", "uqsub", "sshl", "ushl", "srshl", "urshl",
                         "sqshl", "uqshl", "sqrshl", "uqrshl"))
        return f"{op} v{v[0]}.{t}, v{v[1]}.{t}, v{v[2]}.{t}"
    if kind == 1:
        op = rng.choice(("smax", "smin", "smaxp", "sminp", "sabd", "uabd", "saba", "uaba",
                         "mul", "mla", "mls", "shadd", "uhadd", "srhadd", "urhadd", "shsub",
                         "uhsub"))
        return f"{op} v{v[0]}.{no_d}, v{v[1]}.{no_d}, v{v[2]}.{no_d}"
    if kind == 2:
        return rng.choice((f"{rng.choice(('sqdmulh', 'sqrdmulh'))} v{v[0]}.{hs}, v{v[1]}.{hs}, "
                           f"v{v[2]}.{hs}",
                           f"pmul v{v[0]}.16b, v{v[1]}.16b, v{v[2]}.16b"))
    if kind == 3:  # long and wide
        op = rng.choice(("saddl", "uaddl", "ssubl", "usubl", "sabdl", "uabdl", "sabal",
                         "uabal", "smull", "umull", "smlal", "umlal", "smlsl", "umlsl"))
        if rng.random() < .3:
            op = rng.choice(("saddw", "uaddw", "ssubw", "usubw"))
            return f"{op}{sfx} v{v[0]}.{wide}, v{v[1]}.{wide}, v{v[2]}.{nar}"
        if rng.random() < .2 and wide in ("4s", "2d"):
            op = rng.choice(("sqdmull", "sqdmlal", "sqdmlsl"))
        if rng.random() < .1:
            return f"pmull{sfx} v{v[0]}.8h, v{v[1]}.{'16b' if two else '8b'}, " \
                   f"v{v[2]}.{'16b' if two else '8b'}"
        return f"{op}{sfx} v{v[0]}.{wide}, v{v[1]}.{nar}, v{v[2]}.{nar}"
    if kind == 4:  # narrowing
        op = rng.choice(("addhn", "raddhn", "subhn", "rsubhn"))
        if rng.random() < .5:
            return f"{op}{sfx} v{v[0]}.{nar}, v{v[1]}.{wide}, v{v[2]}.{wide}"
        op = rng.choice(("xtn", "sqxtn", "uqxtn", "sqxtun"))
        return f"{op}{sfx} v{v[0]}.{nar}, v{v[1]}.{wide}"
    if kind == 5:  # narrowing and long shifts
        bits = LANE_BITS[nar[-1]]
        if rng.random() < .5:
            op = rng.choice(("shrn", "rshrn", "sqshrn", "uqshrn", "sqrshrn", "uqrshrn",
                             "sqshrun", "sqrshrun"))
            return f"{op}{sfx} v{v[0]}.{nar}, v{v[1]}.{wide}, #{rng.randrange(1, bits + 1)}"
        op = rng.choice(("sshll", "ushll"))
        return f"{op}{sfx} v{v[0]}.{wide}, v{v[1]}.{nar}, #{rng.randrange(bits)}"
    if kind == 6:  # shifts by immediate
        bits = LANE_BITS[t[-1]]
        op = rng.choice(("ssra", "usra", "srshr", "urshr", "srsra", "ursra", "sri", "sli",
                         "sqshl", "uqshl", "sqshlu"))
        left = op in ("sli", "sqshl", "uqshl", "sqshlu")
        amount = rng.randrange(bits) if left else rng.randrange(1, bits + 1)
        return f"{op} v{v[0]}.{t}, v{v[1]}.{t}, #{amount}"
    if kind == 7:  # two-register miscellaneous
        op = rng.choice(("abs", "neg", "sqabs", "sqneg"))
        if rng.random() < .5:
            return f"{op} v{v[0]}.{t}, v{v[1]}.{t}"
        op, arr = rng.choice((("cls", no_d), ("clz", no_d), ("rbit", rng.choice(("8b", "16b"))),
                              ("rev64", no_d), ("rev32", rng.choice(("8b", "16b", "4h", "8h"))),
                              ("rev16", rng.choice(("8b", "16b")))))
        return f"{op} v{v[0]}.{arr}, v{v[1]}.{arr}"
    if kind == 8:  # pairwise long, SHLL
        op = rng.choice(("saddlp", "uaddlp", "sadalp", "uadalp"))
        if rng.random() < .3:
            return f"shll{sfx} v{v[0]}.{wide}, v{v[1]}.{nar}, #{LANE_BITS[nar[-1]]}"
        src = rng.choice(("16b", "8b", "8h", "4h", "4s", "2s"))
        dst = {"16b": "8h", "8b": "4h", "8h": "4s", "4h": "2s", "4s": "2d", "2s": "1d"}[src]
        return f"{op} v{v[0]}.{dst}, v{v[1]}.{src}"
    if kind == 9:  # across lanes
        if rng.random() < .25:
            op = rng.choice(("fmaxv", "fminv", "fmaxnmv", "fminnmv"))
            return f"{op} s{v[0]}, v{v[1]}.4s"
        op = rng.choice(("smaxv", "sminv", "umaxv", "uminv", "addv", "saddlv", "uaddlv"))
        arr = rng.choice(("16b", "8b", "8h", "4h", "4s"))
        reg = arr[-1]
        if op.endswith("lv"):
            reg = {"b": "h", "h": "s", "s": "d"}[reg]
        return f"{op} {reg}{v[0]}, v{v[1]}.{arr}"
    if kind == 10:  # permutes, tables
        if rng.random() < .6:
            op = rng.choice(("zip1", "zip2", "uzp1", "uzp2", "trn1", "trn2"))
            return f"{op} v{v[0]}.{t}, v{v[1]}.{t}, v{v[2]}.{t}"
        first, count = rng.randrange(12), rng.randrange(1, 5)
        table = ", ".join(f"v{first + i}.16b" for i in range(count))
        arr = rng.choice(("8b", "16b"))
        # indexes into range often: the index register's bytes masked
        return (f"movi v{v[3]}.16b, #{(16 * count) | 15 if rng.random() < .3 else 63}\n"
                f"    and v{v[2]}.16b, v{v[2]}.16b, v{v[3]}.16b\n"
                f"    {rng.choice(('tbl', 'tbx'))} v{v[0]}.{arr}, {{{table}}}, v{v[2]}.{arr}")
    if kind == 11:  # structure loads and stores
        n = rng.randrange(1, 5)
        first = rng.randrange(16 - n + 1)
        arr = rng.choice(("16b", "8b", "8h", "4h", "4s", "2s", "2d"))
        regs = ", ".join(f"v{first + i}.{arr}" for i in range(n))
        op = f"{rng.choice(('ld', 'st'))}{n}"
        post = rng.choice(("", f", #{n * (16 if arr in ('16b', '8h', '4s', '2d') else 8)}",
                           ", x24"))
        return (f"add x25, x26, #{rng.randrange(0, 8) * 8}\n    mov x24, #{rng.randrange(4) * 8}"
                f"\n    {op} {{{regs}}}, [x25]{post}")
    if kind == 12:  # single lanes and replicate
        n = rng.randrange(1, 5)
        first = rng.randrange(16 - n + 1)
        lane = rng.choice("bhsd")
        count = 128 // LANE_BITS[lane]
        regs = ", ".join(f"v{first + i}.{lane}" for i in range(n))
        if rng.random() < .3:
            arr = rng.choice({"b": ("8b", "16b"), "h": ("4h", "8h"), "s": ("2s", "4s"),
                              "d": ("1d", "2d")}[lane])
            regs = ", ".join(f"v{first + i}.{arr}" for i in range(n))
            return f"add x25, x26, #{rng.randrange(0, 100)}\n    ld{n}r {{{regs}}}, [x25]"
        op = f"{rng.choice(('ld', 'st'))}{n}"
        return (f"add x25, x26, #{rng.randrange(0, 100)}\n"
                f"    {op} {{{regs}}}[{rng.randrange(count)}], [x25], "
                f"#{n * LANE_BITS[lane] // 8}")
    fs = rng.choice(("4s", "2s", "2d"))
    if kind == 13:  # vector FP arithmetic
        op = rng.choice(("fadd", "fsub", "fmul", "fdiv", "fmax", "fmin", "fmaxnm", "fminnm",
                         "fmla", "fmls", "fabd", "faddp", "fmaxp", "fminp", "fmaxnmp",
                         "fminnmp", "fmulx"))
        return f"{op} v{v[0]}.{fs}, v{v[1]}.{fs}, v{v[2]}.{fs}"
    if kind == 14:  # vector FP compares
        if rng.random() < .5:
            op = rng.choice(("fcmeq", "fcmge", "fcmgt", "facge", "facgt"))
            return f"{op} v{v[0]}.{fs}, v{v[1]}.{fs}, v{v[2]}.{fs}"
        op = rng.choice(("fcmeq", "fcmge", "fcmgt", "fcmle", "fcmlt"))
        return f"{op} v{v[0]}.{fs}, v{v[1]}.{fs}, #0.0"
    op = rng.choice(("fabs", "fneg", "fsqrt", "scvtf", "ucvtf", "fcvtzs", "fcvtzu", "fcvtns",
                     "fcvtnu", "fcvtms", "fcvtmu", "fcvtps", "fcvtpu", "fcvtas", "fcvtau",
                     "frintn", "frintm", "frintp", "frintz", "frinta", "frintx", "frinti"))
    if rng.random() < .2:
        return rng.choice((f"fcvtl{sfx} v{v[0]}.2d, v{v[1]}.{'4s' if two else '2s'}",
                           f"fcvtn{sfx} v{v[0]}.{'4s' if two else '2s'}, v{v[1]}.2d"))
    return f"{op} v{v[0]}.{fs}, v{v[1]}.{fs}"


def random_program(seed: int, length: int = 150, simd: bool = False, neon: bool = False
                   ) -> str:
    """Random values into x0..x20 and the buffer, ``length`` random instructions (a
    forward branch or two among them), then the registers, NZCV and the buffer written
    to stdout: the same bytes must come out of pemu and qemu."""
    rng = random.Random(seed)
    data = random.Random(seed + 0x5EED)  # the values, apart: a shorter program same data
    lines = [".global _start", "_start:", "    adr x26, mem", "    adr x23, _start"]
    for r in range(DATA_REGS):
        value = data.choice((data.getrandbits(64), data.getrandbits(8), (1 << 63),
                            (1 << 64) - 1, (1 << 31), 0))
        lines += [f"    movz x{r}, #{value & 0xFFFF}"] + [
            f"    movk x{r}, #{(value >> s) & 0xFFFF}, lsl #{s}" for s in (16, 32, 48)]
    lines.append(f"    msr nzcv, x{data.randrange(DATA_REGS)}")
    simd = simd or neon
    if simd:  # V registers from the random buffer: every kind of float bit pattern
        lines += [f"    ldr q{r}, [x26, #{16 * r}]" for r in range(16)]
    for _ in range(length):
        if neon and rng.random() < 0.5:
            lines.append("    " + random_neon_instruction(rng))
        elif simd and rng.random() < 0.5:
            lines.append("    " + random_simd_instruction(rng))
        else:
            lines.append("    " + random_instruction(rng))
        if rng.random() < 0.05:
            lines.append(f"    b.{rng.choice(CONDS)} 1f\n    eor x{rng.randrange(DATA_REGS)},"
                         f" x{rng.randrange(DATA_REGS)}, #1\n1:")
        if rng.random() < 0.03:
            lines.append(f"    cbz x{rng.randrange(DATA_REGS)}, 2f\n    add x0, x0, #3\n2:")
        if rng.random() < 0.03:
            lines.append(f"    tbnz x{rng.randrange(DATA_REGS)}, #{rng.randrange(64)}, 3f\n"
                         f"    add x1, x1, #5\n3:")
    lines += ["    mrs x21, nzcv", "    adr x22, out"]
    lines += [f"    str x{r}, [x22, #{8 * r}]" for r in range(DATA_REGS + 1)]
    if simd:
        lines += ["    mrs x0, fpsr", f"    str x0, [x22, #{8 * (DATA_REGS + 1)}]"]
        lines += [f"    str q{r}, [x22, #{Q_OFFSET + 16 * r}]" for r in range(16)]
    lines += ["    mov x0, #1", "    adr x1, out", f"    mov x2, #{OUT_BYTES}",
              "    mov x8, #64", "    svc #0",
              "    mov x0, #1", "    adr x1, mem", f"    mov x2, #{MEM_BYTES}", "    svc #0",
              "    mov x0, #0", "    mov x8, #93", "    svc #0",
              ".data", ".balign 16", "mem:"]
    lines += [f"    .quad {data.getrandbits(64):#x}" for _ in range(MEM_BYTES // 8)]
    lines += [".balign 16", "out:", f"    .skip {OUT_BYTES}"]
    return "\n".join(lines) + "\n"
