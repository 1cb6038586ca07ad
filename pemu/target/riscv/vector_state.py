"""The V extension's architectural state: 32 vector registers and the vector CSRs.

The registers live in one ``bytearray`` (register ``r`` at ``r * vlenb``), so a
register group of LMUL registers is one contiguous run of bytes and element ``i`` of
a group is at ``base + i * element_size`` whatever LMUL is, as the spec lays groups out.
The array is sized for the largest VLEN pemu supports; ``vlenb``/``elen`` are the
hart's (``-cpu ...,vlen=,elen=``; vlenb 0: the hart has no V).

vtype is decoded here once (``VType``); the vector helpers and the CSRs share it.
"""

from __future__ import annotations

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
    """Vector registers, vl, vtype, vstart and the fixed-point vxrm/vxsat."""

    __slots__ = ("vlenb", "elen", "regs", "views", "vl", "vtype", "vstart", "vxrm", "vxsat")

    def __init__(self, vlenb: int = 0, elen: int = 64) -> None:
        self.vlenb = vlenb
        self.elen = elen
        self.regs = bytearray(N_VREGS * MAX_VLENB)
        # the registers as arrays of 1-, 2-, 4- and 8-byte elements (native byte order:
        # little-endian, as the host pemu runs on); the array never changes size
        raw = memoryview(self.regs)
        self.views = {size: raw.cast(fmt) for size, fmt in ((1, "B"), (2, "H"), (4, "I"),
                                                               (8, "Q"))}
        self.vl = 0
        self.vtype = ILLEGAL_VTYPE  # the reset value: vill set (as QEMU)
        self.vstart = 0
        self.vxrm = 0
        self.vxsat = 0

    def reset(self) -> None:
        self.regs[:] = bytes(len(self.regs))
        self.vl = self.vstart = self.vxrm = self.vxsat = 0
        self.vtype = ILLEGAL_VTYPE

    def copy_from(self, other: VectorState) -> None:
        self.regs[:] = other.regs
        self.vl, self.vtype, self.vstart = other.vl, other.vtype, other.vstart
        self.vxrm, self.vxsat = other.vxrm, other.vxsat

    # -- the register file as bytes, for signal frames and migration ------------------
    def register_bytes(self) -> bytes:
        return bytes(self.regs[:N_VREGS * self.vlenb])

    def set_register_bytes(self, data: bytes) -> None:
        self.regs[:N_VREGS * self.vlenb] = data


__all__ = ["ILLEGAL_VTYPE", "MAX_VLENB", "N_VREGS", "VTYPE_VILL", "VType", "VectorState",
           "decode_vtype"]
