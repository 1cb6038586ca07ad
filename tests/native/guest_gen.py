"""Random RV64GC guest programs for the backend differential test.

A program is a list of *groups* (one or a few instructions that belong together,
such as ``addi t, base, off`` + ``amo*``), a terminator, and the starting state:
x and f registers, fcsr and the contents of one data page.  Memory accesses go
through ``BASE_REG``, which the generator never writes, so every load, store and
AMO lands where the generator meant: inside the data page, a few bytes across its
lower edge or (only when faults are allowed) in the unmapped page below it.

Control flow only goes forward, to the start of a later group or to the
terminator, so every program ends.  Branch targets are group boundaries, which
keeps an AMO together with the ``addi`` that computes its address.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import strategies as st

from pemu.target.riscv.cpu_state import ABI_NAMES
from pemu.target.riscv.disas import disassemble

MASK64 = (1 << 64) - 1
PAGE = 4096
BASE_REG = 9  # s1: also reachable by the compressed loads and stores
BASE_OFFSET = 0x100  # BASE_REG = data page + this, so small negative offsets stay mapped
# the generated code touches [base + MIN_OFFSET, base + MAX_OFFSET + 8); the qemu
# oracle's register dump lives above that, at base + DUMP_OFFSET
MIN_OFFSET = -BASE_OFFSET
MAX_OFFSET = 0x400
DUMP_OFFSET = 0x500
X_WRITABLE = [r for r in range(1, 32) if r != BASE_REG]
# the extensions the generated code uses beyond the default rv64 (QEMU 7.2 has them too)
GUEST_CPU = "rv64,zbkb=on,zbkc=on,zbkx=on"
X_COMPRESSED = [r for r in range(8, 16) if r != BASE_REG]  # rd'/rs' of RVC, minus base

EBREAK = 0x0010_0073
ECALL = 0x0000_0073
C_EBREAK = 0x9002


# -- instruction encoders ---------------------------------------------------------------

def enc_r(op: int, f3: int, f7: int, rd: int, rs1: int, rs2: int) -> int:
    return f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op


def enc_i(op: int, f3: int, rd: int, rs1: int, imm: int) -> int:
    return (imm & 0xFFF) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op


def enc_s(op: int, f3: int, rs1: int, rs2: int, imm: int) -> int:
    return ((imm >> 5) & 0x7F) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (imm & 0x1F) << 7 | op


def enc_b(f3: int, rs1: int, rs2: int, off: int) -> int:
    return (((off >> 12) & 1) << 31 | ((off >> 5) & 0x3F) << 25 | rs2 << 20 | rs1 << 15
            | f3 << 12 | ((off >> 1) & 0xF) << 8 | ((off >> 11) & 1) << 7 | 0x63)


def enc_j(rd: int, off: int) -> int:
    return (((off >> 20) & 1) << 31 | ((off >> 1) & 0x3FF) << 21 | ((off >> 11) & 1) << 20
            | ((off >> 12) & 0xFF) << 12 | rd << 7 | 0x6F)


def enc_c_j(off: int) -> int:
    bits = {11: 12, 4: 11, 9: 10, 8: 9, 10: 8, 6: 7, 7: 6, 3: 5, 2: 4, 1: 3, 5: 2}
    return 0xA001 | sum(((off >> b) & 1) << pos for b, pos in bits.items())


def enc_c_branch(f3: int, rs1: int, off: int) -> int:
    bits = {8: 12, 4: 11, 3: 10, 7: 6, 6: 5, 2: 4, 1: 3, 5: 2}
    return (f3 << 13 | (rs1 - 8) << 7 | 1
            | sum(((off >> b) & 1) << pos for b, pos in bits.items()))


def enc_c_ci(f3: int, quadrant: int, rd: int, imm: int) -> int:
    """CI format: imm[5] in bit 12, imm[4:0] in bits 6:2."""
    return f3 << 13 | ((imm >> 5) & 1) << 12 | rd << 7 | (imm & 0x1F) << 2 | quadrant


def enc_c_mem(f3: int, rs1: int, rd: int, off: int, size: int) -> int:
    """c.lw/c.ld/c.fld/c.sw/c.sd/c.fsd (CL/CS format, zero-extended scaled offset)."""
    word = f3 << 13 | ((off >> 3) & 7) << 10 | (rs1 - 8) << 7 | (rd - 8) << 2
    if size == 4:
        return word | ((off >> 2) & 1) << 6 | ((off >> 6) & 1) << 5
    return word | ((off >> 6) & 3) << 5


# -- program representation -------------------------------------------------------------

@dataclass(frozen=True)
class Insn:
    """One instruction; a forward jump has ``skip`` and ``encode(byte offset)``."""

    word: int
    size: int = 4
    skip: int = -1  # groups to jump over (jumps only)
    encode: Callable[[int], int] | None = field(default=None, compare=False)


Group = list[Insn]


@dataclass
class GuestProgram:
    groups: list[Group]
    terminator: Group
    x: list[int]  # x0..x31 (x0 and BASE_REG are ignored)
    f: list[int]
    fcsr: int
    data_seed: int
    # where the code starts in its (two-page) area: near the end of the first page, blocks
    # and instructions cross a page boundary
    code_offset: int = 0

    def body(self) -> bytes:
        """The groups' code with jump targets resolved (targets at most the end)."""
        starts = [0]
        for group in self.groups:
            starts.append(starts[-1] + sum(i.size for i in group))
        out = bytearray()
        for g, group in enumerate(self.groups):
            for insn in group:
                word = insn.word
                if insn.encode is not None:
                    target = starts[min(g + 1 + insn.skip, len(self.groups))]
                    word = insn.encode(target - len(out))
                out += word.to_bytes(insn.size, "little")
        return bytes(out)

    def code(self) -> bytes:
        return self.body() + b"".join(i.word.to_bytes(i.size, "little") for i in self.terminator)

    def data(self) -> bytes:
        return random.Random(self.data_seed).randbytes(PAGE)

    def listing(self, pc: int) -> str:
        """pemu's disassembly, with names for what capstone does not know (Zb*)."""
        lines = []
        for line in disassemble(self.code(), pc):
            if ".insn 4, " in line:
                line += f"  ({bitmanip_name(int(line.rsplit(' ', 1)[1], 16))})"
            lines.append(line)
        return "\n".join(lines)

    def describe(self, pc: int) -> str:
        """What a failing example prints: the code and how to rebuild it."""
        words = [f"0x{int.from_bytes(c, 'little'):x}" for c in _split(self.code())]
        regs = ", ".join(f"{ABI_NAMES[i]}=0x{v:x}" for i, v in enumerate(self.x)
                         if i and i != BASE_REG)
        fregs = ", ".join(f"f{i}=0x{v:x}" for i, v in enumerate(self.f))
        return (f"{self.listing(pc)}\nwords: [{', '.join(words)}]\nx: {regs}\nf: {fregs}\n"
                f"fcsr=0x{self.fcsr:x} data_seed={self.data_seed} "
                f"code_offset=0x{self.code_offset:x}")


def _split(code: bytes) -> list[bytes]:
    out, off = [], 0
    while off < len(code):
        size = 4 if code[off] & 3 == 3 else 2
        out.append(code[off:off + size])
        off += size
    return out


# -- starting values ----------------------------------------------------------------------

INT_SPECIAL = [0, 1, 2, 3, 7, 31, 32, 63, 64, MASK64, MASK64 - 1, 1 << 63, (1 << 63) - 1,
               0xFFFF_FFFF_8000_0000, 0x7FFF_FFFF, 0xFFFF_FFFF, 0x8000_0000, 0x1_0000_0000,
               0xFFFF_FFFF_FFFF_F800, 0x7FF, 0x8000, 0xFFFF, 0x80, 0xFF, 0x0123_4567_89AB_CDEF]
ints = st.one_of(st.sampled_from(INT_SPECIAL), st.integers(-300, 300).map(lambda v: v & MASK64),
                 st.integers(0, MASK64))

SINGLE_SPECIAL = [0x0000_0000, 0x8000_0000, 0x3F80_0000, 0xBFC0_0000, 0x3F00_0000, 0x4020_0000,
                  0xC020_0000, 0x3FC0_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0xFFC0_0000,
                  0x7F80_0001, 0x7FA0_0000, 0x0000_0001, 0x807F_FFFF, 0x0080_0000, 0x7F7F_FFFF,
                  0x4F00_0000, 0xCF00_0000, 0x4F80_0000, 0x5F00_0000, 0xDF00_0000, 0x4EFF_FFFF]
DOUBLE_SPECIAL = [0, 1 << 63, 0x3FF0_0000_0000_0000, 0xBFF8_0000_0000_0000, 0x4004_0000_0000_0000,
                  0xC004_0000_0000_0000, 0x3FE0_0000_0000_0000, 0x7FF0_0000_0000_0000,
                  0xFFF0_0000_0000_0000, 0x7FF8_0000_0000_0000, 0x7FF0_0000_0000_0001,
                  0x7FF4_0000_0000_0000, 0x0000_0000_0000_0001, 0x800F_FFFF_FFFF_FFFF,
                  0x0010_0000_0000_0000, 0x7FEF_FFFF_FFFF_FFFF, 0x41E0_0000_0000_0000,
                  0xC1E0_0000_0000_0000, 0x41EF_FFFF_FFE0_0000, 0x43E0_0000_0000_0000,
                  0xC3E0_0000_0000_0000, 0x43F0_0000_0000_0000, 0x41DF_FFFF_FFC0_0000,
                  0x3690_0000_0000_0000, 0x47EF_FFFF_E000_0000]
BOX = 0xFFFF_FFFF_0000_0000
fp_values = st.one_of(
    st.sampled_from([BOX | s for s in SINGLE_SPECIAL] + DOUBLE_SPECIAL),
    st.integers(0, 0xFFFF_FFFF).map(lambda s: BOX | s),
    st.floats(width=64).map(lambda d: struct.unpack("<Q", struct.pack("<d", d))[0]),
    st.floats(width=32).map(lambda s: BOX | struct.unpack("<I", struct.pack("<f", s))[0]),
    st.integers(0, MASK64),  # mostly not NaN-boxed: reads as the canonical NaN
)


# capstone 5 has no Zba/Zbb/Zbc/Zbs/Zbk*: their names for failure listings
_ZB_RR = {(0x33, 2, 0x10): "sh1add", (0x33, 4, 0x10): "sh2add", (0x33, 6, 0x10): "sh3add",
          (0x3B, 0, 0x04): "add.uw", (0x3B, 2, 0x10): "sh1add.uw", (0x3B, 4, 0x10): "sh2add.uw",
          (0x3B, 6, 0x10): "sh3add.uw", (0x33, 7, 0x20): "andn", (0x33, 6, 0x20): "orn",
          (0x33, 4, 0x20): "xnor", (0x33, 4, 0x05): "min", (0x33, 5, 0x05): "minu",
          (0x33, 6, 0x05): "max", (0x33, 7, 0x05): "maxu", (0x33, 1, 0x30): "rol",
          (0x33, 5, 0x30): "ror", (0x3B, 1, 0x30): "rolw", (0x3B, 5, 0x30): "rorw",
          (0x33, 1, 0x24): "bclr", (0x33, 5, 0x24): "bext", (0x33, 1, 0x34): "binv",
          (0x33, 1, 0x14): "bset", (0x33, 1, 0x05): "clmul", (0x33, 2, 0x05): "clmulr",
          (0x33, 3, 0x05): "clmulh", (0x33, 4, 0x04): "pack", (0x33, 7, 0x04): "packh",
          (0x3B, 4, 0x04): "packw", (0x33, 2, 0x14): "xperm4", (0x33, 4, 0x14): "xperm8"}
_ZB_UNARY = {(0x13, 1, 0x600): "clz", (0x13, 1, 0x601): "ctz", (0x13, 1, 0x602): "cpop",
             (0x13, 1, 0x604): "sext.b", (0x13, 1, 0x605): "sext.h", (0x13, 5, 0x287): "orc.b",
             (0x13, 5, 0x6B8): "rev8", (0x1B, 1, 0x600): "clzw", (0x1B, 1, 0x601): "ctzw",
             (0x1B, 1, 0x602): "cpopw", (0x3B, 4, 0x080): "zext.h", (0x13, 5, 0x687): "brev8"}
_ZB_SHIFT = {(0x13, 5, 0x18): "rori", (0x13, 1, 0x12): "bclri", (0x13, 1, 0x0A): "bseti",
             (0x13, 1, 0x1A): "binvi", (0x13, 5, 0x12): "bexti", (0x1B, 1, 0x02): "slli.uw",
             (0x1B, 5, 0x30): "roriw"}


def bitmanip_name(word: int) -> str:
    """``name rd, rs1, rs2/imm`` for a Zba/Zbb/Zbs instruction, else ``?``."""
    op, f3 = word & 0x7F, (word >> 12) & 7
    rd, rs1, rs2 = (ABI_NAMES[(word >> n) & 31] for n in (7, 15, 20))
    if (name := _ZB_UNARY.get((op, f3, word >> 20))) is not None:
        return f"{name} {rd}, {rs1}"
    if (name := _ZB_RR.get((op, f3, word >> 25))) is not None:
        return f"{name} {rd}, {rs1}, {rs2}"
    width = 5 if (op, f3, word >> 25) == (0x1B, 5, 0x30) else 6
    if (name := _ZB_SHIFT.get((op, f3, word >> (20 + width)))) is not None:
        return f"{name} {rd}, {rs1}, {(word >> 20) & ((1 << width) - 1)}"
    return "?"


# -- instruction groups -------------------------------------------------------------------

rd_x = st.sampled_from(X_WRITABLE + [0])
rs_x = st.integers(0, 31)
reg_f = st.integers(0, 31)
rm_any = st.sampled_from([0, 1, 2, 3, 4, 7])  # RNE RTZ RDN RUP RMM, dyn

OP_RR = [  # (opcode, funct3, funct7)
    *((0x33, f3, 0) for f3 in range(8)), (0x33, 0, 0x20), (0x33, 5, 0x20),   # base
    *((0x33, f3, 1) for f3 in range(8)), *((0x3B, f3, 1) for f3 in (0, 4, 5, 6, 7)),  # M
    (0x3B, 0, 0), (0x3B, 0, 0x20), (0x3B, 1, 0), (0x3B, 5, 0), (0x3B, 5, 0x20),  # W forms
    (0x33, 2, 0x10), (0x33, 4, 0x10), (0x33, 6, 0x10), (0x3B, 0, 0x04),  # Zba
    (0x3B, 2, 0x10), (0x3B, 4, 0x10), (0x3B, 6, 0x10),
    (0x33, 7, 0x20), (0x33, 6, 0x20), (0x33, 4, 0x20), (0x33, 4, 0x05),  # Zbb
    (0x33, 5, 0x05), (0x33, 6, 0x05), (0x33, 7, 0x05), (0x33, 1, 0x30), (0x33, 5, 0x30),
    (0x3B, 1, 0x30), (0x3B, 5, 0x30),
    (0x33, 1, 0x24), (0x33, 5, 0x24), (0x33, 1, 0x34), (0x33, 1, 0x14),  # Zbs
    (0x33, 1, 0x05), (0x33, 2, 0x05), (0x33, 3, 0x05),  # Zbc
    (0x33, 4, 0x04), (0x33, 7, 0x04), (0x3B, 4, 0x04),  # Zbkb pack, packh, packw
    (0x33, 2, 0x14), (0x33, 4, 0x14),  # Zbkx
]
# The M ops again, so that divisions and multiplications are frequent
OP_MUL_DIV = [op for op in OP_RR if op[2] == 1]


def _li_sequences() -> list[Callable[[int], list[int]]]:
    """Ways to put an awkward M operand in a register (0, 1, -1, INT64_MIN, INT32_MIN,
    0x80000000 and 0xffffffff zero-extended)."""
    def addi(v: int) -> Callable[[int], list[int]]:
        return lambda r: [enc_i(0x13, 0, r, 0, v)]

    return [addi(0), addi(1), addi(-1), addi(7), addi(-7),
            lambda r: [enc_i(0x13, 0, r, 0, -1), enc_i(0x13, 1, r, r, 63)],
            lambda r: [0x80000 << 12 | r << 7 | 0x37],  # lui: sign-extended INT32_MIN
            lambda r: [enc_i(0x13, 0, r, 0, 1), enc_i(0x13, 1, r, r, 31)],
            lambda r: [enc_i(0x13, 0, r, 0, -1), enc_i(0x13, 5, r, r, 32)]]


LI_SEQUENCES = _li_sequences()


@st.composite
def mul_div(draw: st.DrawFn) -> Group:
    """An M op, often with awkward operands put in place first (x/0, INT_MIN/-1)."""
    a, b = draw(st.sampled_from(X_WRITABLE)), draw(st.sampled_from(X_WRITABLE))
    op, f3, f7 = draw(st.sampled_from(OP_MUL_DIV))
    group = []
    for reg in (a, b):
        li = draw(st.one_of(st.none(), st.sampled_from(LI_SEQUENCES)))
        if li is not None:  # else: whatever the register holds
            group += [Insn(w) for w in li(reg)]
    group.append(Insn(enc_r(op, f3, f7, draw(rd_x), a, b)))
    return group


OP_IMM12 = [(0x13, f3) for f3 in (0, 2, 3, 4, 6, 7)] + [(0x1B, 0)]  # addi .. andi, addiw
# shift-like immediates: (opcode, funct3, imm[11:6] or imm[11:5] << 0 with the shamt width)
OP_SHIFT = [(0x13, 1, 0x00, 6), (0x13, 5, 0x00, 6), (0x13, 5, 0x10, 6), (0x13, 5, 0x18, 6),
            (0x13, 1, 0x12, 6), (0x13, 1, 0x0A, 6), (0x13, 1, 0x1A, 6), (0x13, 5, 0x12, 6),
            (0x1B, 1, 0x02, 6),  # slli.uw
            (0x1B, 1, 0x00, 5), (0x1B, 5, 0x00, 5), (0x1B, 5, 0x20, 5), (0x1B, 5, 0x30, 5)]
UNARY = [(0x13, 1, 0x600), (0x13, 1, 0x601), (0x13, 1, 0x602), (0x13, 1, 0x604),
         (0x13, 1, 0x605), (0x13, 5, 0x287), (0x13, 5, 0x6B8), (0x1B, 1, 0x600),
         (0x1B, 1, 0x601), (0x1B, 1, 0x602), (0x3B, 4, 0x080),  # ..., zext.h
         (0x13, 5, 0x687)]  # brev8
CTZW = (0x1B, 1, 0x601)
UNARY_QEMU = [op for op in UNARY if op != CTZW]


@st.composite
def alu_rr(draw: st.DrawFn) -> Group:
    op, f3, f7 = draw(st.sampled_from(OP_RR))
    return [Insn(enc_r(op, f3, f7, draw(rd_x), draw(rs_x), draw(rs_x)))]


@st.composite
def alu_imm(draw: st.DrawFn, qemu_oracle: bool = False) -> Group:
    kind = draw(st.integers(0, 3))
    rd, rs = draw(rd_x), draw(rs_x)
    if kind == 0:
        op, f3 = draw(st.sampled_from(OP_IMM12))
        imm = draw(st.one_of(st.sampled_from([0, 1, -1, 2047, -2048]), st.integers(-2048, 2047)))
        return [Insn(enc_i(op, f3, rd, rs, imm))]
    if kind == 1:
        op, f3, top, width = draw(st.sampled_from(OP_SHIFT))
        shamt = draw(st.integers(0, (1 << width) - 1))
        return [Insn(enc_i(op, f3, rd, rs, top << 6 | shamt if width == 6 else top << 5 | shamt))]
    if kind == 2:
        op, f3, imm = draw(st.sampled_from(UNARY_QEMU if qemu_oracle else UNARY))
        return [Insn(enc_i(op, f3, rd, rs, imm))]
    opcode = draw(st.sampled_from([0x37, 0x17]))  # lui, auipc
    return [Insn(draw(st.integers(0, 0xFFFFF)) << 12 | rd << 7 | opcode)]


@st.composite
def compressed_alu(draw: st.DrawFn) -> Group:
    kind = draw(st.integers(0, 7))
    rd, rs2 = draw(st.sampled_from(X_WRITABLE)), draw(st.sampled_from(X_WRITABLE))
    rdp, rsp = draw(st.sampled_from(X_COMPRESSED)), draw(st.sampled_from(X_COMPRESSED))
    imm6 = draw(st.integers(-32, 31)) & 0x3F
    if kind == 0:  # c.addi
        word = enc_c_ci(0, 1, rd, imm6)
    elif kind == 1:  # c.addiw
        word = enc_c_ci(1, 1, rd, imm6)
    elif kind == 2:  # c.li
        word = enc_c_ci(2, 1, rd, imm6)
    elif kind == 3:  # c.lui (rd != sp, imm != 0)
        rd = draw(st.sampled_from([r for r in X_WRITABLE if r != 2]))
        word = enc_c_ci(3, 1, rd, imm6 or 1)
    elif kind == 4:  # c.slli (shamt 0 is a hint: left out)
        word = enc_c_ci(0, 2, rd, draw(st.integers(1, 63)))
    elif kind == 5:  # c.srli, c.srai, c.andi
        sub = draw(st.integers(0, 2))
        imm = draw(st.integers(1, 63)) if sub < 2 else imm6
        word = enc_c_ci(4, 1, 0, imm) | sub << 10 | (rdp - 8) << 7
    elif kind == 6:  # c.sub c.xor c.or c.and c.subw c.addw
        sub = draw(st.integers(0, 5))
        word = 0x8C01 | (sub >> 2) << 12 | (rdp - 8) << 7 | (sub & 3) << 5 | (rsp - 8) << 2
    else:  # c.mv, c.add
        word = 0x8002 | draw(st.integers(0, 1)) << 12 | rd << 7 | rs2 << 2
    return [Insn(word, size=2)]


@st.composite
def _offsets(draw: st.DrawFn, size: int, allow_faults: bool) -> int:
    """An offset from BASE_REG for a ``size``-byte access; about one access in twenty
    faults when faults are allowed (more and few programs would get far)."""
    roll = draw(st.integers(0, 99))
    if roll < 55:
        return draw(st.integers(0, 63)) * size  # aligned, and often the same few slots
    if roll < 85:
        return draw(st.integers(MIN_OFFSET, MAX_OFFSET - 8))  # misaligned ones too
    if roll < 95 or not allow_faults:
        return MIN_OFFSET + draw(st.integers(0, 8))  # just above the page's lower edge
    if roll < 98:
        return MIN_OFFSET - draw(st.integers(1, 8))  # straddling it, or just below
    return draw(st.integers(-2048, MIN_OFFSET - 9))  # the unmapped page below


LOADS = [(0, 1), (1, 2), (2, 4), (3, 8), (4, 1), (5, 2), (6, 4)]  # funct3, size


@st.composite
def load_store(draw: st.DrawFn, allow_faults: bool) -> Group:
    kind = draw(st.integers(0, 5))
    if kind <= 1:
        f3, size = draw(st.sampled_from(LOADS))
        return [Insn(enc_i(0x03, f3, draw(rd_x), BASE_REG, draw(_offsets(size, allow_faults))))]
    if kind <= 3:
        f3 = draw(st.integers(0, 3))
        off = draw(_offsets(1 << f3, allow_faults))
        return [Insn(enc_s(0x23, f3, BASE_REG, draw(rs_x), off))]
    f3 = draw(st.sampled_from([2, 3]))  # flw/fld, fsw/fsd
    off = draw(_offsets(1 << f3, allow_faults))
    if kind == 4:
        return [Insn(enc_i(0x07, f3, draw(reg_f), BASE_REG, off))]
    return [Insn(enc_s(0x27, f3, BASE_REG, draw(reg_f), off))]


@st.composite
def compressed_load_store(draw: st.DrawFn) -> Group:
    """c.lw c.ld c.fld c.sw c.sd c.fsd off BASE_REG (offsets are zero-extended, scaled)."""
    f3 = draw(st.sampled_from([1, 2, 3, 5, 6, 7]))
    size = 4 if f3 & 3 == 2 else 8
    off = draw(st.integers(0, 31)) * size
    reg = draw(st.sampled_from(X_COMPRESSED if f3 & 3 != 1 else range(8, 16)))
    return [Insn(enc_c_mem(f3, BASE_REG, reg, off, size), size=2)]


AMO_FUNCT5 = [0x01, 0x00, 0x04, 0x0C, 0x08, 0x10, 0x14, 0x18, 0x1C]


@st.composite
def atomics(draw: st.DrawFn, allow_faults: bool) -> Group:
    """addi t, base, off then an AMO, or an LR/SC pair on it (or a lone SC)."""
    f3 = draw(st.sampled_from([2, 3]))
    size = 1 << f3
    off = draw(st.integers(0, 31)) * size
    if allow_faults and draw(st.integers(0, 19)) == 0:
        off += draw(st.integers(1, size - 1))  # misaligned: a trap
    t = draw(st.sampled_from(X_WRITABLE))
    group = [Insn(enc_i(0x13, 0, t, BASE_REG, off))]
    aqrl = draw(st.integers(0, 3)) << 25

    def amo(funct5: int, rd: int, rs2: int) -> Insn:
        return Insn(funct5 << 27 | aqrl | rs2 << 20 | t << 15 | f3 << 12 | rd << 7 | 0x2F)

    kind = draw(st.integers(0, 3))
    if kind <= 1:
        group.append(amo(draw(st.sampled_from(AMO_FUNCT5)), draw(rd_x), draw(rs_x)))
        return group
    if kind == 2:
        not_t = st.sampled_from([0] + [r for r in X_WRITABLE if r != t])
        group.append(amo(0x02, draw(not_t), 0))
        # something in between that leaves t alone: a store, maybe to the reserved word
        # (same value or not), or an ALU op
        between = draw(st.integers(0, 2))
        if between == 1:
            at = draw(st.one_of(st.just(off), st.integers(0, 31).map(lambda k: k * size)))
            group.append(Insn(enc_s(0x23, f3, BASE_REG, draw(rs_x), at)))
        elif between == 2:
            op, fn3, f7 = draw(st.sampled_from(OP_RR))
            group.append(Insn(enc_r(op, fn3, f7, draw(not_t), draw(rs_x), draw(rs_x))))
    group.append(amo(0x03, draw(rd_x), draw(rs_x)))
    return group


BRANCH_F3 = [0, 1, 4, 5, 6, 7]


@st.composite
def jumps(draw: st.DrawFn) -> Group:
    skip = draw(st.integers(0, 4))
    kind = draw(st.integers(0, 6))
    if kind <= 2:
        f3, a, b = draw(st.sampled_from(BRANCH_F3)), draw(rs_x), draw(rs_x)
        return [Insn(0, skip=skip, encode=lambda off: enc_b(f3, a, b, off))]
    if kind == 3:
        rd = draw(rd_x)
        return [Insn(0, skip=skip, encode=lambda off: enc_j(rd, off))]
    if kind == 4:
        return [Insn(0, size=2, skip=skip, encode=enc_c_j)]
    if kind == 5:  # auipc t, 0; jalr rd, off(t), sometimes with bit 0 set (jalr clears it)
        t, rd, odd = draw(st.sampled_from(X_WRITABLE)), draw(rd_x), draw(st.integers(0, 1))
        return [Insn(t << 7 | 0x17),
                Insn(0, skip=skip, encode=lambda off: enc_i(0x67, 0, rd, t, off + 4 + odd))]
    f3, rs = draw(st.sampled_from([6, 7])), draw(st.sampled_from(range(8, 16)))
    return [Insn(0, size=2, skip=skip, encode=lambda off: enc_c_branch(f3, rs, off))]


FP_BINARY = [0x00, 0x01, 0x02, 0x03]  # fadd fsub fmul fdiv (funct5)


@st.composite
def fp_op(draw: st.DrawFn) -> Group:
    fmt = draw(st.integers(0, 1))  # S, D
    rd, a, b, c = draw(reg_f), draw(reg_f), draw(reg_f), draw(reg_f)
    rm = draw(rm_any)
    kind = draw(st.integers(0, 11))

    def fp(funct5: int, rd: int, rs1: int, rs2: int, f3: int) -> Insn:
        return Insn(enc_r(0x53, f3, funct5 << 2 | fmt, rd, rs1, rs2))

    xd = draw(rd_x)
    if kind <= 1:
        return [fp(draw(st.sampled_from(FP_BINARY)), rd, a, b, rm)]
    if kind == 2:
        return [fp(0x0B, rd, a, 0, rm)]  # fsqrt
    if kind == 3:
        return [fp(0x05, rd, a, b, draw(st.integers(0, 1)))]  # fmin fmax
    if kind == 4:
        return [fp(0x04, rd, a, b, draw(st.integers(0, 2)))]  # fsgnj fsgnjn fsgnjx
    if kind == 5:  # fmadd fmsub fnmsub fnmadd
        opcode = draw(st.sampled_from([0x43, 0x47, 0x4B, 0x4F]))
        return [Insn(c << 27 | fmt << 25 | b << 20 | a << 15 | rm << 12 | rd << 7 | opcode)]
    if kind == 6:  # fcvt.{w,wu,l,lu}.fmt
        return [fp(0x18, xd, a, draw(st.integers(0, 3)), rm)]
    if kind == 7:  # fcvt.fmt.{w,wu,l,lu}
        return [fp(0x1A, rd, draw(rs_x), draw(st.integers(0, 3)), rm)]
    if kind == 8:  # fcvt.s.d / fcvt.d.s
        return [fp(0x08, rd, a, 1 - fmt, rm)]
    if kind == 9:  # feq flt fle
        return [fp(0x14, xd, a, b, draw(st.integers(0, 2)))]
    if kind == 10:  # fclass, fmv.x.{w,d}
        return [fp(0x1C, xd, a, 0, draw(st.integers(0, 1)))]
    return [fp(0x1E, rd, draw(rs_x), 0, 0)]  # fmv.{w,d}.x


@st.composite
def fcsr_access(draw: st.DrawFn) -> Group:
    """csrr*/csrr*i on fflags, frm and fcsr (frm values 5..7 make dyn ops illegal)."""
    number = draw(st.sampled_from([1, 2, 3]))
    f3 = draw(st.sampled_from([1, 2, 3, 5, 6, 7]))
    if f3 & 4:
        src = draw(st.one_of(st.integers(0, 4), st.integers(0, 31)))
    else:
        src = draw(rs_x)
    return [Insn(number << 20 | src << 15 | f3 << 12 | draw(rd_x) << 7 | 0x73)]


def groups(allow_faults: bool, qemu_oracle: bool) -> st.SearchStrategy[Group]:
    return st.one_of(alu_rr(), alu_rr(), mul_div(), alu_imm(qemu_oracle), alu_imm(qemu_oracle),
                     compressed_alu(),
                     load_store(allow_faults), load_store(allow_faults), compressed_load_store(),
                     atomics(allow_faults), jumps(), jumps(), fp_op(), fp_op(), fp_op(),
                     fcsr_access())


TERMINATORS = [
    [Insn(EBREAK)],
    [Insn(C_EBREAK, size=2)],
    [Insn(enc_i(0x13, 0, 17, 0, 93)), Insn(ECALL)],  # li a7, 93 (exit); ecall
]


@st.composite
def programs(draw: st.DrawFn, qemu_oracle: bool = False, max_groups: int = 40) -> GuestProgram:
    """A program for the backend differential test, or (``qemu_oracle``) one for the
    comparison with qemu-riscv64: no faults (the oracle has no way to report the state
    at a fault) and no ctzw (qemu 7.2 gets it wrong, see tests/riscv/rvtest_programs)."""
    allow_faults = not qemu_oracle
    # a drawn length rather than st.lists: lists stay short (a handful of groups) on average
    n = draw(st.integers(1, max_groups))
    body = [draw(groups(allow_faults, qemu_oracle)) for _ in range(n)]
    x = [0] + [draw(ints) for _ in range(31)]
    f = [draw(fp_values) for _ in range(32)]
    frm = draw(st.one_of(st.integers(0, 4), st.integers(0, 7)))
    fcsr = frm << 5 | draw(st.integers(0, 31))
    code_offset = draw(st.one_of(st.just(0), st.integers(1, 64).map(lambda k: PAGE - 2 * k)))
    return GuestProgram(body, draw(st.sampled_from(TERMINATORS)), x, f, fcsr,
                        draw(st.integers(0, 1 << 32)), code_offset)
