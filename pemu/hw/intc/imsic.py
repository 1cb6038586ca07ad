"""The RISC-V Incoming MSI Controller (AIA spec 1.0, chapter 3).

Each hart has an interrupt file per privilege level (machine and supervisor on QEMU's
virt) and, with ``-M virt,aia-guests=N``, N guest files for VS guests (hstatus.VGEIN
picks one; their lines are hgeip's bits, see target/riscv/aia_hyp_csrs.py).

A file is a bitmap of pending identities (eip), one of enabled
identities (eie), ``eithreshold`` and ``eidelivery``; its top identity is the lowest
pending-and-enabled one below the threshold, and the file drives the hart's MEIP or
SEIP while delivery is on and a top identity exists.

Devices (PCI MSI/MSI-X, the APLIC in MSI mode, other harts' IPIs) reach a file through
its 4 KiB MMIO page: a 32-bit write of an identity to ``seteipnum_le`` (offset 0) or,
byte-swapped, ``seteipnum_be`` (offset 4) makes it pending.  The hart reaches the rest
through its AIA CSRs (target/riscv/aia_csrs.py): ``[ms]iselect``/``[ms]ireg`` for the
indirect registers (``read_indirect``/``write_indirect``) and ``[ms]topei``.

``ImsicPages`` maps the files of one level, one page per hart, as QEMU's virt does
(machine files at 0x24000000, supervisor files at 0x28000000).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from pemu.hw.core import Device, IRQLine, VMState, VMStateField, VMStateInvalid
from pemu.hw.intc.bitmap_words import from_words, to_words, words_for

NUM_IDS = 255  # QEMU virt: "riscv,num-ids" (identities 1..255)
MAX_AIA_GUESTS = 7  # QEMU 7.2 virt's limit for aia-guests (3 guest index bits)
PAGE_SIZE = 0x1000
SETEIPNUM_LE, SETEIPNUM_BE = 0x0, 0x4

# indirect register numbers ([ms]iselect values)
ISELECT_EIDELIVERY = 0x70
ISELECT_EITHRESHOLD = 0x72
ISELECT_EIP0, ISELECT_EIP63 = 0x80, 0xBF
ISELECT_EIE0, ISELECT_EIE63 = 0xC0, 0xFF
TOPEI_ID_SHIFT = 16


class ImsicFile:
    """One interrupt file.  ``output`` is the level the hart's xEIP follows."""

    def __init__(self, num_ids: int = NUM_IDS, name: str = "imsic") -> None:
        self.num_ids = num_ids
        self._valid = ((1 << (num_ids + 1)) - 1) & ~1  # identity 0 does not exist
        self._threshold_mask = (1 << num_ids.bit_length()) - 1
        self.lock = threading.RLock()
        self.output = IRQLine(name=name)
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.eip = 0
            self.eie = 0
            self.eithreshold = 0
            self.eidelivery = 0
            self._update()

    # -- what the MMIO page and the CSRs do ----------------------------------------------
    def set_pending(self, identity: int) -> None:
        """A write to seteipnum (any thread); identities out of range are ignored."""
        if not 0 < identity <= self.num_ids:
            return
        with self.lock:
            self.eip |= 1 << identity
            self._update()

    def topei(self) -> int:
        """The [ms]topei value: identity in bits 26:16 and 10:0 (its own priority)."""
        with self.lock:
            top = self._top()
        return top << TOPEI_ID_SHIFT | top

    def claim(self) -> None:
        """A write to [ms]topei: the top identity stops being pending."""
        with self.lock:
            top = self._top()
            self.eip &= ~(1 << top)
            self._update()

    def read_indirect(self, select: int, xlen: int = 64) -> int | None:
        """Indirect register ``select`` (None: no such register, an illegal access)."""
        with self.lock:
            if select == ISELECT_EIDELIVERY:
                return self.eidelivery
            if select == ISELECT_EITHRESHOLD:
                return self.eithreshold
            word = self._array_word(select, xlen)
            if word is None:
                return None
            bits = self.eip if select <= ISELECT_EIP63 else self.eie
            return bits >> (32 * word) & ((1 << xlen) - 1)

    def write_indirect(self, select: int, value: int, xlen: int = 64) -> bool:
        """Write indirect register ``select``; False: no such register (illegal)."""
        with self.lock:
            if select == ISELECT_EIDELIVERY:
                self.eidelivery = value & 1  # no APLIC direct forwarding (0x40000000)
            elif select == ISELECT_EITHRESHOLD:
                self.eithreshold = value & self._threshold_mask
            else:
                word = self._array_word(select, xlen)
                if word is None:
                    return False
                shift = 32 * word
                mask = ((1 << xlen) - 1) << shift
                field = (value << shift) & mask & self._valid
                if select <= ISELECT_EIP63:
                    self.eip = self.eip & ~mask | field
                else:
                    self.eie = self.eie & ~mask | field
            self._update()
        return True

    # -- internals (under the lock) ---------------------------------------------------------
    @staticmethod
    def _array_word(select: int, xlen: int) -> int | None:
        """The 32-bit word index an eip/eie select starts at (RV64: even selects only)."""
        if not ISELECT_EIP0 <= select <= ISELECT_EIE63:
            return None
        index = (select - ISELECT_EIP0) & 0x3F
        if xlen == 64 and index & 1:
            return None
        return index

    def _top(self) -> int:
        ready = self.eip & self.eie
        if not ready:
            return 0
        top = (ready & -ready).bit_length() - 1
        if self.eithreshold and top >= self.eithreshold:
            return 0
        return top

    def _update(self) -> None:
        # under the lock: two threads must not set the line in the other order
        self.output.set_level(self.eidelivery == 1 and self._top() != 0)


class ImsicPages(Device):
    """The MMIO window of one privilege level's files: page h is hart h's file.

    It is also the level's migratable state (section ``riscv.imsic``, instance 0 the
    machine files, 1 the supervisor files): per hart eidelivery, eithreshold and the
    eip/eie bitmaps as 32-bit words, and the hart's ``[ms]iselect`` of this level
    (``hart_selects``: the harts' ``AiaHartState``, set by the board; the select
    register exists only with an IMSIC, so it travels with it).  Post-load re-derives
    each file's xEIP line.
    """

    type_name = "riscv.imsic"
    vmstate = VMState("riscv.imsic", 1, (
        VMStateField("eidelivery", "u32[]", max=1),
        VMStateField("eithreshold", "u32[]", max="threshold_max"),
        VMStateField("eip_words", "u32[]"),
        VMStateField("eie_words", "u32[]"),
        VMStateField("iselect", "u32[]", max=0xFFF),  # aia_csrs.ISELECT_MASK
    ))

    def __init__(self, files: list[ImsicFile], id: str | None = None,
                 machine_level: bool = True, files_per_hart: int = 1) -> None:
        super().__init__(id)
        self.files = files
        # S level with H: each hart's S file is followed by its guest files, the hart's
        # pages padded to a power of two (the guest index bits of the MSI address)
        self.files_per_hart = files_per_hart
        self.hart_stride = PAGE_SIZE * hart_pages(files_per_hart)
        self.region_size = self.hart_stride * (len(files) // files_per_hart)
        self.select_attr = "miselect" if machine_level else "siselect"
        self.hart_selects: list = []  # AiaHartState per hart, once the board made them

    # -- the state's views --------------------------------------------------------------
    @property
    def threshold_max(self) -> int:
        return self.files[0]._threshold_mask if self.files else 0

    @property
    def _nwords(self) -> int:
        return words_for(self.files[0].num_ids + 1) if self.files else 0

    def _per_file(self, attr: str) -> list[int]:
        return [getattr(f, attr) for f in self.files]

    def _set_per_file(self, attr: str, values: list[int]) -> None:
        for f, v in zip(self.files, values, strict=True):
            setattr(f, attr, v)

    eidelivery = property(lambda self: self._per_file("eidelivery"),
                          lambda self, v: self._set_per_file("eidelivery", v))
    eithreshold = property(lambda self: self._per_file("eithreshold"),
                           lambda self, v: self._set_per_file("eithreshold", v))

    def _words(self, attr: str) -> list[int]:
        return [w for f in self.files for w in to_words(getattr(f, attr), self._nwords)]

    def _set_words(self, attr: str, words: list[int]) -> None:
        n = self._nwords
        for h, f in enumerate(self.files):
            setattr(f, attr, from_words(words[h * n:(h + 1) * n]))

    eip_words = property(lambda self: self._words("eip"),
                         lambda self, w: self._set_words("eip", w))
    eie_words = property(lambda self: self._words("eie"),
                         lambda self, w: self._set_words("eie", w))

    @property
    def iselect(self) -> list[int]:
        return [getattr(aia, self.select_attr) for aia in self.hart_selects]

    @iselect.setter
    def iselect(self, values: list[int]) -> None:
        for aia, v in zip(self.hart_selects, values, strict=True):
            setattr(aia, self.select_attr, v)

    def vmstate_check(self, state: Mapping[str, object]) -> None:
        n = self._nwords
        for name in ("eip_words", "eie_words"):
            words: list[int] = state[name]  # type: ignore[assignment]
            for h, f in enumerate(self.files):
                if from_words(words[h * n:(h + 1) * n]) & ~f._valid:
                    raise VMStateInvalid(name, f"hart {h}: bits for identities this "
                                         f"file does not have (1..{f.num_ids})")

    def vmstate_post_load(self) -> None:
        for f in self.files:
            with f.lock:
                f._update()

    def reset(self) -> None:
        for f in self.files:
            f.reset()

    def mmio_read(self, offset: int, size: int) -> int:
        return 0  # seteipnum_le/be read as zero; the rest of the page is reserved

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        hart, in_hart = divmod(offset, self.hart_stride)
        page, reg = divmod(in_hart, PAGE_SIZE)
        index = hart * self.files_per_hart + page
        if size != 4 or page >= self.files_per_hart or index >= len(self.files):
            return
        if reg == SETEIPNUM_LE:
            self.files[index].set_pending(value & 0xFFFF_FFFF)
        elif reg == SETEIPNUM_BE:
            self.files[index].set_pending(int.from_bytes(value.to_bytes(4, "little"), "big"))


def guest_index_bits(guests: int) -> int:
    """Bits of an MSI address that pick a hart's S file (0) or guest file (1..)."""
    return guests.bit_length()


def hart_pages(files_per_hart: int) -> int:
    """Pages of one hart at a level: its files, padded to a power of two."""
    return 1 << guest_index_bits(files_per_hart - 1)
