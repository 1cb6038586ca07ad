"""A small x86-64 assembler: the instructions the native backend emits, with labels.

Only what code generation needs is here: integer ALU, moves and extensions, shifts,
multiply/divide, bit counts, conditional moves/sets/jumps, push/pop and indirect
calls.  Every jump to a label is a rel32 (no relaxation): simple, and a block is
small enough that the few extra bytes do not matter.

Operands are host register numbers (``RAX``..``R15``) or ``Mem`` (base + index*scale
+ disp).  ``w`` selects the operand size: 64 (REX.W) or 32 (which zero-extends the
destination register, the IR's I32 rule for free).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI = range(8)
R8, R9, R10, R11, R12, R13, R14, R15 = range(8, 16)
REG_NAMES = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"]

# condition codes (the low nibble of Jcc/SETcc/CMOVcc)
CC_O, CC_NO, CC_B, CC_AE, CC_E, CC_NE, CC_BE, CC_A = range(8)
CC_S, CC_NS, CC_P, CC_NP, CC_L, CC_GE, CC_LE, CC_G = range(8, 16)

# group-1 ALU operations (the /digit of 0x81/0x83 and the opcode row)
ADD, OR, ADC, SBB, AND, SUB, XOR, CMP = range(8)
# group-2 shifts
ROL, ROR, SHL, SHR, SAR = 0, 1, 4, 5, 7
# group-3 unary
NOT, NEG, MUL, IMUL1, DIV, IDIV = 2, 3, 4, 5, 6, 7


class Mem(NamedTuple):
    """``[base + index*scale + disp]``; a tuple so that it hashes fast (encoding cache)."""

    base: int
    disp: int = 0
    index: int | None = None
    scale: int = 1


class Label:
    __slots__ = ("pos",)

    def __init__(self) -> None:
        self.pos: int | None = None


def fits_i8(v: int) -> bool:
    return -128 <= v <= 127


def fits_i32(v: int) -> bool:
    return -(1 << 31) <= v < (1 << 31)


def signed64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >> 63 else v


def _rex_byte(w: bool, reg: int, index: int, base: int, force: bool) -> int | None:
    rex = 0x40 | (8 if w else 0) | (4 if reg & 8 else 0) | (2 if index & 8 else 0) | (
        1 if base & 8 else 0)
    return rex if rex != 0x40 or force else None


def _modrm_rm(reg: int, rm: int | Mem) -> bytes:
    """ModRM (+SIB, disp) for a register field and a register or memory operand."""
    reg &= 7
    if isinstance(rm, int):
        return bytes((0xC0 | reg << 3 | rm & 7,))
    base, disp = rm.base, rm.disp
    if disp == 0 and base & 7 != RBP:
        mod, dbytes = 0, b""
    elif fits_i8(disp):
        mod, dbytes = 1, struct.pack("<b", disp)
    else:
        mod, dbytes = 2, struct.pack("<i", disp)
    if rm.index is not None:
        ss = {1: 0, 2: 1, 4: 2, 8: 3}[rm.scale]
        head = bytes((mod << 6 | reg << 3 | 4, ss << 6 | (rm.index & 7) << 3 | base & 7))
    elif base & 7 == RSP:
        head = bytes((mod << 6 | reg << 3 | 4, 0x24))
    else:
        head = bytes((mod << 6 | reg << 3 | base & 7,))
    return head + dbytes


def _encode(opcode: bytes, reg: int, rm: int | Mem, w: int, prefix: bytes,
            byte_reg: bool) -> bytes:
    if isinstance(rm, Mem):
        idx = rm.index if rm.index is not None else 0
        rex = _rex_byte(w == 64, reg, idx, rm.base, byte_reg and reg >= 4)
    else:
        rex = _rex_byte(w == 64, reg, 0, rm, byte_reg and (reg >= 4 or rm >= 4))
    return prefix + (b"" if rex is None else bytes((rex,))) + opcode + _modrm_rm(reg, rm)


_ENCODINGS: dict[tuple[bytes, int, int | Mem, int, bytes, bool], bytes] = {}
_ENCODINGS_MAX = 1 << 16
# the commonest forms by their own short keys: moves, loads and stores of the state
# block and the frame are most of what a block emits
_MOVES: dict[tuple[int, int, int], bytes] = {}  # (w, d, s) -> mov d, s
_LOADS: dict[tuple[int, int, Mem], bytes] = {}  # (w, d, m) -> mov d, [m]
_STORES: dict[tuple[int, Mem, int], bytes] = {}  # (size 4/8, m, s) -> mov [m], s
_STORE_IMMS: dict[tuple[int, Mem], bytes] = {}  # (size 4/8, m) -> mov [m], imm32 (less imm)
_ALU_IMMS: dict[tuple[int, int, int | Mem, bool], bytes] = {}  # (aop, w, d, imm8?) -> less imm


def _short_cache(table: dict, key: object, opcode: bytes, reg: int, rm: int | Mem,
                 w: int) -> bytes:
    """Encode into one of the short-key caches (bounded like the general one)."""
    if len(table) >= _ENCODINGS_MAX:
        table.clear()
    enc = table[key] = _encode(opcode, reg, rm, w, b"", False)
    return enc


def mov_ri_code(d: int, imm: int) -> bytes:
    """The bytes of ``mov d, imm`` (64-bit pattern), shortest encoding; a register
    that does not use REX.B is 32 bits, so the common case is one dict look-up."""
    imm &= (1 << 64) - 1
    if imm == 0:
        return _XOR_SELF[d]  # xor d32, d32
    if imm < (1 << 32):
        return _MOV_IMM32[d] + imm.to_bytes(4, "little")
    s = imm - (1 << 64) if imm >> 63 else imm
    if -(1 << 31) <= s < 0:  # (a positive s is 2**32 or more here)
        return _MOV_SX_IMM32[d] + (s & 0xFFFF_FFFF).to_bytes(4, "little")
    return _MOV_IMM64[d] + imm.to_bytes(8, "little")


_XOR_SELF = [_encode(b"\x31", d, d, 32, b"", False) for d in range(16)]
_MOV_IMM32 = [(b"\x41" if d & 8 else b"") + bytes((0xB8 + (d & 7),)) for d in range(16)]
_MOV_SX_IMM32 = [_encode(b"\xC7", 0, d, 64, b"", False) for d in range(16)]
_MOV_IMM64 = [bytes((0x49 if d & 8 else 0x48, 0xB8 + (d & 7))) for d in range(16)]
_JMP_REL32 = b"\xE9\0\0\0\0"
_JCC_REL32 = [bytes((0x0F, 0x80 + cc, 0, 0, 0, 0)) for cc in range(16)]


class Assembler:
    def __init__(self) -> None:
        self.buf = bytearray()
        self.fixups: list[tuple[int, Label]] = []  # rel32 field position -> label

    # -- plumbing -----------------------------------------------------------------
    def pos(self) -> int:
        return len(self.buf)

    def bind(self, label: Label) -> None:
        label.pos = len(self.buf)

    def byte(self, *bs: int) -> None:
        self.buf += bytes(bs)

    def imm32(self, v: int) -> None:
        self.buf += struct.pack("<I", v & 0xFFFF_FFFF)  # imm32: the low 32 bits

    def rel32(self, label: Label) -> None:
        self.fixups.append((len(self.buf), label))
        self.buf += b"\0\0\0\0"

    def finish(self) -> bytes:
        buf, pack = self.buf, struct.pack_into
        for at, label in self.fixups:
            pos = label.pos
            if pos is None:
                raise ValueError("jump to an unbound label")
            pack("<i", buf, at, pos - (at + 4))
        self.fixups.clear()
        return bytes(self.buf)

    def align(self, n: int, fill: int = 0x90) -> None:
        while len(self.buf) % n:
            self.buf.append(fill)

    def _rex(self, w: bool, reg: int, index: int, base: int, force: bool = False) -> None:
        rex = _rex_byte(w, reg, index, base, force)
        if rex is not None:
            self.buf.append(rex)

    def op(self, opcode: bytes, reg: int, rm: int | Mem, w: int = 64, prefix: bytes = b"",
           byte_reg: bool = False) -> None:
        """Emit prefix, REX, opcode, ModRM for ``opcode reg, rm``.

        Translation emits tens of thousands of these per second of start-up and the
        operands repeat (the same few registers and state slots), so each distinct
        encoding is computed once and then copied from a cache.
        """
        key = (opcode, reg, rm, w, prefix, byte_reg)
        enc = _ENCODINGS.get(key)
        if enc is None:
            if len(_ENCODINGS) >= _ENCODINGS_MAX:
                _ENCODINGS.clear()
            enc = _ENCODINGS[key] = _encode(opcode, reg, rm, w, prefix, byte_reg)
        self.buf += enc

    # -- moves ----------------------------------------------------------------------
    def mov_rr(self, w: int, d: int, s: int) -> None:
        if d != s or w == 32:
            key = (w, d, s)
            enc = _MOVES.get(key)
            self.buf += enc if enc is not None else _short_cache(_MOVES, key, b"\x89", s, d, w)

    def mov_ri(self, d: int, imm: int) -> None:
        """d = imm (64-bit pattern), shortest encoding."""
        self.buf += mov_ri_code(d, imm)

    def mov_ri64(self, d: int, imm: int) -> int:
        """d = imm in the 10-byte form whatever its value; returns the imm64's offset
        (an address patched when cached code is loaded in another process)."""
        self._rex(True, 0, 0, d)
        self.buf.append(0xB8 + (d & 7))
        at = len(self.buf)
        self.buf += struct.pack("<Q", imm & ((1 << 64) - 1))
        return at

    def load_rip(self, d: int, at: int) -> None:
        """d = the 64-bit word at offset ``at`` of this code (RIP-relative: the code
        reads it wherever it is placed)."""
        self.buf += bytes((0x48 | (d >> 3 & 1) << 2, 0x8B, 0x05 | (d & 7) << 3))
        self.buf += struct.pack("<i", at - (len(self.buf) + 4))

    def load(self, w: int, d: int, m: Mem) -> None:
        key = (w, d, m)
        enc = _LOADS.get(key)
        self.buf += enc if enc is not None else _short_cache(_LOADS, key, b"\x8B", d, m, w)

    def store(self, size: int, m: Mem, s: int) -> None:
        if size == 1:
            self.op(b"\x88", s, m, 32, byte_reg=True)
        elif size == 2:
            self.op(b"\x89", s, m, 32, prefix=b"\x66")
        else:
            key = (size, m, s)
            enc = _STORES.get(key)
            if enc is None:
                enc = _short_cache(_STORES, key, b"\x89", s, m, 64 if size == 8 else 32)
            self.buf += enc

    def lock_cmpxchg(self, size: int, m: Mem, s: int) -> None:
        """``lock cmpxchg [m], s`` (4 or 8 bytes): compares with eax/rax."""
        self.op(b"\x0F\xB1", s, m, 64 if size == 8 else 32, prefix=b"\xF0")

    def store_imm(self, size: int, m: Mem, imm: int) -> None:
        """Store a constant; for size 8 it must fit a sign-extended imm32."""
        if size == 1:
            self.op(b"\xC6", 0, m, 32)
            self.buf.append(imm & 0xFF)
        elif size == 2:
            self.op(b"\xC7", 0, m, 32, prefix=b"\x66")
            self.buf += struct.pack("<H", imm & 0xFFFF)
        else:
            key = (size, m)
            enc = _STORE_IMMS.get(key)
            if enc is None:
                enc = _short_cache(_STORE_IMMS, key, b"\xC7", 0, m, 64 if size == 8 else 32)
            self.buf += enc
            self.buf += (imm & 0xFFFF_FFFF).to_bytes(4, "little")

    def movzx(self, d: int, src: int | Mem, size: int) -> None:
        """Zero-extending load/move of a 1, 2 or 4 byte value into a 64-bit register."""
        if size == 1:
            self.op(b"\x0F\xB6", d, src, 32, byte_reg=True)
        elif size == 2:
            self.op(b"\x0F\xB7", d, src, 32)
        elif size == 4:
            if isinstance(src, Mem):
                self.op(b"\x8B", d, src, 32)
            else:
                self.op(b"\x89", src, d, 32)
        else:
            if isinstance(src, Mem):
                self.op(b"\x8B", d, src, 64)
            else:
                self.mov_rr(64, d, src)

    def movsx(self, w: int, d: int, src: int | Mem, size: int) -> None:
        """Sign-extend a 1, 2 or 4 byte value to w bits (w=32 zero-extends beyond)."""
        if size == 1:
            self.op(b"\x0F\xBE", d, src, w, byte_reg=True)
        elif size == 2:
            self.op(b"\x0F\xBF", d, src, w)
        elif size == 4 and w == 64:
            self.op(b"\x63", d, src, 64)
        else:
            self.movzx(d, src, size)

    def lea(self, d: int, m: Mem) -> None:
        self.op(b"\x8D", d, m, 64)

    # -- ALU ------------------------------------------------------------------------
    def alu_rr(self, aop: int, w: int, d: int, s: int) -> None:
        self.op(bytes([aop * 8 + 1]), s, d, w)

    def alu_rm(self, aop: int, w: int, d: int, m: Mem) -> None:
        self.op(bytes([aop * 8 + 3]), d, m, w)

    def alu_ri(self, aop: int, w: int, d: int | Mem, imm: int) -> None:
        """``aop d, imm``; imm must fit a sign-extended imm32 (checked by the caller)."""
        short = -128 <= imm <= 127
        key = (aop, w, d, short)
        enc = _ALU_IMMS.get(key)
        if enc is None:
            enc = _short_cache(_ALU_IMMS, key, b"\x83" if short else b"\x81", aop, d, w)
        self.buf += enc
        if short:
            self.buf.append(imm & 0xFF)
        else:
            self.buf += (imm & 0xFFFF_FFFF).to_bytes(4, "little")

    def test_rr(self, w: int, a: int, b: int) -> None:
        self.op(b"\x85", b, a, w)

    def test_ri(self, w: int, r: int, imm: int) -> None:
        """``test r, imm32`` (sign-extended for w=64)."""
        self.op(b"\xF7", 0, r, w)
        self.imm32(imm)

    def imul_rr(self, w: int, d: int, s: int) -> None:
        self.op(b"\x0F\xAF", d, s, w)

    def imul_rri(self, w: int, d: int, s: int, imm: int) -> None:
        if fits_i8(imm):
            self.op(b"\x6B", d, s, w)
            self.buf.append(imm & 0xFF)
        else:
            self.op(b"\x69", d, s, w)
            self.imm32(imm)

    def unary(self, uop: int, w: int, r: int) -> None:
        self.op(b"\xF7", uop, r, w)

    def shift_ri(self, sop: int, w: int, r: int, n: int) -> None:
        if n == 1:
            self.op(b"\xD1", sop, r, w)
        else:
            self.op(b"\xC1", sop, r, w)
            self.buf.append(n & 0xFF)

    def shift_cl(self, sop: int, w: int, r: int) -> None:
        self.op(b"\xD3", sop, r, w)

    def cqo(self, w: int) -> None:
        if w == 64:
            self.byte(0x48)
        self.byte(0x99)

    def bswap(self, w: int, r: int) -> None:
        self._rex(w == 64, 0, 0, r)
        self.byte(0x0F, 0xC8 + (r & 7))

    def bitcount(self, opcode: int, w: int, d: int, s: int) -> None:
        """lzcnt (0xBD), tzcnt (0xBC) or popcnt (0xB8): F3 prefix before REX."""
        self.op(bytes([0x0F, opcode]), d, s, w, prefix=b"\xF3")

    def cmov(self, cc: int, w: int, d: int, s: int) -> None:
        self.op(bytes([0x0F, 0x40 + cc]), d, s, w)

    def setcc(self, cc: int, r: int) -> None:
        self.op(bytes([0x0F, 0x90 + cc]), 0, r, 32, byte_reg=True)

    # -- control flow ---------------------------------------------------------------
    def jmp(self, label: Label) -> None:
        buf = self.buf
        self.fixups.append((len(buf) + 1, label))
        buf += _JMP_REL32

    def jcc(self, cc: int, label: Label) -> None:
        buf = self.buf
        self.fixups.append((len(buf) + 2, label))
        buf += _JCC_REL32[cc]

    def jmp_abs_rel(self, target_offset: int) -> None:
        """jmp to a position given relative to the start of this buffer."""
        self.byte(0xE9)
        self.buf += struct.pack("<i", target_offset - (len(self.buf) + 4))

    def jcc_abs_rel(self, cc: int, target_offset: int) -> None:
        self.byte(0x0F, 0x80 + cc)
        self.buf += struct.pack("<i", target_offset - (len(self.buf) + 4))

    def jmp_r(self, r: int) -> None:
        self.op(b"\xFF", 4, r, 32)

    def call(self, label: Label) -> None:
        """``call rel32`` to a label in the same buffer."""
        self.byte(0xE8)
        self.rel32(label)

    def call_r(self, r: int) -> None:
        self.op(b"\xFF", 2, r, 32)

    def push(self, r: int) -> None:
        self._rex(False, 0, 0, r)
        self.byte(0x50 + (r & 7))

    def pop(self, r: int) -> None:
        self._rex(False, 0, 0, r)
        self.byte(0x58 + (r & 7))

    def ret(self) -> None:
        self.byte(0xC3)


class Template:
    """A fixed instruction sequence over some labels, assembled once, then copied.

    Code generation emits the same sequences again and again (a guest access's TLB
    check for the same registers and size, its slow-path call): assembling one is tens
    of Python calls, copying it is one.  A template is made from an Assembler that
    assembled the sequence with ``labels`` (its parameters): ``jumps`` (rel32 field,
    label index) and ``binds`` (label index, offset) say where a copy's jumps go and
    where it binds its labels (memory_common.AccessCode patches each copy).  A jump to
    a label bound inside the sequence and not a parameter is resolved at once (it is
    relative, so right wherever the copy lies).  ``ext``: offsets of rel32 fields that
    point outside the block, in the order the caller gives their targets.
    """

    __slots__ = ("code", "jumps", "binds", "ext")

    def __init__(self, a: Assembler, labels: Sequence[Label], ext: Sequence[int] = ()) -> None:
        index = {id(label): i for i, label in enumerate(labels)}
        buf = bytearray(a.buf)
        jumps = []
        for at, label in a.fixups:
            i = index.get(id(label))
            if i is not None:
                jumps.append((at, i))
            elif label.pos is not None:
                struct.pack_into("<i", buf, at, label.pos - (at + 4))
            else:
                raise ValueError("template: a jump to a label that is neither bound in "
                                 "it nor one of its parameters")
        self.code = bytes(buf)
        self.jumps = tuple(jumps)
        self.binds = tuple((i, label.pos) for i, label in enumerate(labels)
                           if label.pos is not None)
        self.ext = tuple(ext)
