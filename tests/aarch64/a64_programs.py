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


def random_program(seed: int, length: int = 150, simd: bool = False) -> str:
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
    if simd:  # V registers from the random buffer: every kind of float bit pattern
        lines += [f"    ldr q{r}, [x26, #{16 * r}]" for r in range(16)]
    for _ in range(length):
        if simd and rng.random() < 0.5:
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
