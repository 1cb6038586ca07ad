"""The V extension's architectural state: 32 vector registers and the vector CSRs.

The registers live in one ``bytearray`` (register ``r`` at ``r * vlenb``), so a
register group of LMUL registers is one contiguous run of bytes and element ``i`` of
a group is at ``base + i * element_size`` whatever LMUL is, as the spec lays groups out.
The array is sized for the largest VLEN pemu supports; ``vlenb``/``elen`` are the
hart's (``-cpu ...,vlen=,elen=``; vlenb 0: the hart has no V).

vtype is decoded here once (``VType``); the vector helpers and the CSRs share it.

vl, vtype and vstart live in four consecutive slots of the hart's state block (vl,
the raw vtype, vstart, and the register file's host address), where translated code
reads and writes them (vector_inline.py); the attributes here are views of them.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from pemu.target.riscv.isa import MAX_VLEN

N_VREGS = 32
MAX_VLENB = MAX_VLEN // 8
VTYPE_VILL = 1 << 63


@dataclass(frozen=True)
class VType:
    """A decoded vtype value; ``vill`` when the hart does not support it."""

    raw: int
    sew: int = 8  # bits
    lmul_num: int = 1  # LMUL = lmul_num / lmul_den
    lmul_den: int = 1
    ta: bool = False
    ma: bool = False
    vill: bool = False

    @property
    def sew_bytes(self) -> int:
        return self.sew // 8

    def vlmax(self, vlenb: int) -> int:
        return vlenb * 8 * self.lmul_num // (self.lmul_den * self.sew)

    @property
    def group(self) -> int:
        """Registers per group: LMUL rounded up to 1 (register alignment)."""
        return self.lmul_num


ILLEGAL_VTYPE = VType(VTYPE_VILL, vill=True)


def decode_vtype(raw: int, elen: int = 64) -> VType:
    """The spec's vtype, or ``ILLEGAL_VTYPE`` for reserved or unsupported settings
    (reserved bits, vsew > 64, vlmul 4, SEW > ELEN * LMUL)."""
    vlmul, vsew = raw & 7, (raw >> 3) & 7
    if raw >> 8 or vsew > 3 or vlmul == 4:
        return ILLEGAL_VTYPE
    sew = 8 << vsew
    num, den = (1 << vlmul, 1) if vlmul < 4 else (1, 1 << (8 - vlmul))
    if sew > elen or sew * den > elen * num and den > 1:
        return ILLEGAL_VTYPE
    return VType(raw, sew, num, den, bool(raw >> 6 & 1), bool(raw >> 7 & 1))


class VectorState:
    """Vector registers, vl, vtype, vstart and the fixed-point vxrm/vxsat.

    ``slots`` (the hart's state block as 64-bit words) holds vl at ``first_slot``,
    the raw vtype, vstart and the address of ``regs`` after it; without a block (a
    standalone state) a private one is used."""

    __slots__ = ("vlenb", "elen", "regs", "views", "vxrm", "vxsat", "_slots", "_vl",
                 "_vtype", "_vstart", "_vtypes", "_regs_c")

    def __init__(self, vlenb: int = 0, elen: int = 64, slots: memoryview | None = None,
                 first_slot: int = 0) -> None:
        self.vlenb = vlenb
        self.elen = elen
        self.regs = bytearray(N_VREGS * MAX_VLENB)
        # the registers as arrays of 1-, 2-, 4- and 8-byte elements (native byte order:
        # little-endian, as the host pemu runs on); the array never changes size
        raw = memoryview(self.regs)
        self.views = {size: raw.cast(fmt) for size, fmt in ((1, "B"), (2, "H"), (4, "I"),
                                                               (8, "Q"))}
        # the file's host address, for translated code (bytearray storage stays put
        # while a buffer export such as this one exists)
        self._regs_c = (ctypes.c_char * len(self.regs)).from_buffer(self.regs)
        if slots is None:
            slots = memoryview(bytearray(8 * 4)).cast("Q")
            first_slot = 0
        self._slots = slots
        self._vl, self._vtype, self._vstart = first_slot, first_slot + 1, first_slot + 2
        self._vtypes: dict[int, VType] = {}  # raw -> decoded
        self.vxrm = 0
        self.vxsat = 0
        self.reset()

    @property
    def regs_address(self) -> int:
        return ctypes.addressof(self._regs_c)

    # -- vl, vtype, vstart: views of the slots ---------------------------------------------
    @property
    def vl(self) -> int:
        return self._slots[self._vl]

    @vl.setter
    def vl(self, value: int) -> None:
        self._slots[self._vl] = value

    @property
    def vstart(self) -> int:
        return self._slots[self._vstart]

    @vstart.setter
    def vstart(self, value: int) -> None:
        self._slots[self._vstart] = value

    @property
    def vtype(self) -> VType:
        raw = self._slots[self._vtype]
        vt = self._vtypes.get(raw)
        if vt is None:
            vt = ILLEGAL_VTYPE if raw == VTYPE_VILL else decode_vtype(raw, self.elen)
            self._vtypes[raw] = vt
        return vt

    @vtype.setter
    def vtype(self, vt: VType) -> None:
        self._vtypes.setdefault(vt.raw, vt)
        self._slots[self._vtype] = vt.raw

    def reset(self) -> None:
        """Registers zero, vtype vill (as QEMU); also after the hart zeroed its slots."""
        self.regs[:] = bytes(len(self.regs))
        self.vl = self.vstart = self.vxrm = self.vxsat = 0
        self.vtype = ILLEGAL_VTYPE
        self._slots[self._vl + 3] = self.regs_address

    def copy_from(self, other: VectorState) -> None:
        self.regs[:] = other.regs
        self.vl, self.vtype, self.vstart = other.vl, other.vtype, other.vstart
        self.vxrm, self.vxsat = other.vxrm, other.vxsat
        self._slots[self._vl + 3] = self.regs_address

    # -- the register file as bytes, for signal frames and migration ------------------
    def register_bytes(self) -> bytes:
        return bytes(self.regs[:N_VREGS * self.vlenb])

    def set_register_bytes(self, data: bytes) -> None:
        self.regs[:N_VREGS * self.vlenb] = data


__all__ = ["ILLEGAL_VTYPE", "MAX_VLENB", "N_VREGS", "VTYPE_VILL", "VType", "VectorState",
           "decode_vtype"]
