"""The RISC-V Advanced Platform-Level Interrupt Controller (AIA spec 1.0, chapter 4).

An APLIC is a tree of interrupt domains.  QEMU's virt board, and pemu's, has two: the
machine-level root domain (0x0c000000), which receives every wired source, and one
supervisor-level child (0x0d000000).  The root may delegate a source to the child
(``sourcecfg.D``); the source is then inactive in the root and configurable in the child.

Each domain delivers in one of two modes, fixed by the board (``domaincfg.DM`` is
read-only here, as on QEMU):
  * direct: an interrupt delivery control (IDC) per hart drives the hart's MEIP (root)
    or SEIP (child) line; software claims through ``claimi``;
  * MSI: a pending and enabled source is forwarded as a 32-bit write of its EIID to the
    target hart's IMSIC page and stops being pending.  The write goes through
    ``msi_write(address, data)`` (the board's address space), the MSI address coming
    from the root's ``[ms]msiaddrcfg[h]`` registers.

Register map of a domain (offsets from its base):
  0x0000 domaincfg          0x0004+4*(i-1) sourcecfg[i]
  0x1bc0 mmsiaddrcfg(h)     0x1bc8 smsiaddrcfg(h)       (root only, MSI mode)
  0x1c00 setip[k]  0x1cdc setipnum   0x1d00 in_clrip[k]  0x1ddc clripnum
  0x1e00 setie[k]  0x1edc setienum   0x1f00 clrie[k]     0x1fdc clrienum
  0x2000 setipnum_le  0x2004 setipnum_be  0x3000 genmsi  0x3004+4*(i-1) target[i]
  0x4000+32*h IDC: idelivery 0x00, iforce 0x04, ithreshold 0x08, topi 0x18, claimi 0x1c
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pemu.hw.core import Device, IRQLine
from pemu.hw.intc.aplic_regs import (  # noqa: F401 - the layout is this module's API too
    CLAIMI,
    CLRIE,
    CLRIENUM,
    CLRIPNUM,
    DOMAIN_SIZE,
    DOMAINCFG,
    DOMAINCFG_DM,
    DOMAINCFG_IE,
    DOMAINCFG_RO,
    EIID_MASK,
    GENMSI,
    GENMSI_BUSY,
    IDC_BASE,
    IDC_SIZE,
    IDELIVERY,
    IFORCE,
    IN_CLRIP,
    IPRIO_BITS,
    ITHRESHOLD,
    MMSIADDRCFG,
    MMSIADDRCFGH,
    MSIADDRCFGH_L,
    NUM_SOURCES,
    SETIE,
    SETIENUM,
    SETIP,
    SETIPNUM,
    SETIPNUM_BE,
    SETIPNUM_LE,
    SM_DETACHED,
    SM_EDGE0,
    SM_EDGE1,
    SM_INACTIVE,
    SM_LEVEL0,
    SM_LEVEL1,
    SMSIADDRCFG,
    SMSIADDRCFGH,
    SOURCECFG,
    SOURCECFG_D,
    TARGET,
    TARGET_GUEST_SHIFT,
    TARGET_HART_MASK,
    TARGET_HART_SHIFT,
    TOPI,
)
from pemu.hw.intc.aplic_state import AplicDomainState

_INVERTED = (SM_EDGE0, SM_LEVEL0)
_LEVEL = (SM_LEVEL1, SM_LEVEL0)


def msi_addr_config(base: int, hart_stride_log2: int, num_harts: int) -> tuple[int, int]:
    """(xmsiaddrcfg, xmsiaddrcfgh) for IMSIC pages of 2**``hart_stride_log2`` bytes per
    hart starting at ``base`` (one group): LHXW is as wide as the hart index needs and
    LHXS the page stride beyond 4 KiB."""
    lhxw = max(0, (num_harts - 1).bit_length())
    lhxs = hart_stride_log2 - 12
    ppn = base >> 12
    return ppn & 0xFFFF_FFFF, (ppn >> 32) & 0xFFF | lhxs << 20 | lhxw << 12


class AplicDomain(AplicDomainState, Device):
    """One interrupt domain.  ``AplicDomain(num_harts, machine_level, msi_mode,
    parent=None)``; a child registers itself with its parent (child index = order).

    Wiring: ``root.input(n)`` is wired source n's IRQLine (only the root has inputs);
    direct mode: ``domain.outputs[h]`` is hart h's MEIP/SEIP line; MSI mode: set the
    root's ``msi_write`` to a callable that performs a 32-bit write on the bus.
    """

    type_name = "riscv.aplic"

    def __init__(self, num_harts: int, machine_level: bool, msi_mode: bool,
                 parent: AplicDomain | None = None, num_sources: int = NUM_SOURCES,
                 msi_config: tuple[int, int, int, int] = (0, 0, 0, 0),
                 id: str | None = None) -> None:
        super().__init__(id)
        self.num_harts = num_harts
        self.machine_level = machine_level
        self.msi_mode = msi_mode
        self.parent = parent
        self.root: AplicDomain = parent.root if parent is not None else self
        self.children: list[AplicDomain] = []
        self.child_index = 0
        if parent is not None:
            self.child_index = len(parent.children)
            parent.children.append(self)
        self.num_sources = num_sources
        # One lock for the whole tree: delegation changes touch parent and child at once.
        self.lock: threading.RLock = parent.lock if parent is not None else threading.RLock()
        self._msi_config_reset = msi_config
        self.msi_write: Callable[[int, int], None] | None = None
        self._genmsi_out: list[tuple[int, int]] = []  # sent once the lock is released
        self.outputs = [IRQLine(name=f"aplic-{'m' if machine_level else 's'}-idc{h}")
                        for h in range(num_harts)]
        # Raw (unrectified) levels of the wired sources; only the root's are used.
        self.levels = 0
        if parent is None:
            self._inputs = [IRQLine(lambda level, n=n: self.set_irq(n, level),
                                    name=f"aplic-{n}") for n in range(num_sources + 1)]
        self.reset()

    def reset(self) -> None:
        with self.lock:
            n = self.num_sources + 1
            self.domaincfg = 0
            self.sourcecfg = [0] * n
            # an active source's target is never priority 0 in direct mode; the value
            # a source starts with is unspecified, QEMU's is hart 0, priority 1
            self.target = [0 if self.msi_mode else 1] * n
            self.pending = 0
            self.enabled = 0
            self.idelivery = [0] * self.num_harts
            self.iforce = [0] * self.num_harts
            self.ithreshold = [0] * self.num_harts
            self.genmsi = 0
            (self.mmsiaddrcfg, self.mmsiaddrcfgh,
             self.smsiaddrcfg, self.smsiaddrcfgh) = self._msi_config_reset
            msis = self._update()
        self._send(msis)

    # -- wiring -------------------------------------------------------------------------
    def input(self, n: int) -> IRQLine:
        if self.parent is not None:
            raise ValueError("only the root APLIC domain has wired inputs")
        if not 0 < n <= self.num_sources:
            raise ValueError(f"APLIC source {n} out of range 1..{self.num_sources}")
        return self._inputs[n]

    def set_irq(self, n: int, level: bool) -> None:
        """A wired source changed level (any thread); only the root receives these."""
        if not 0 < n <= self.num_sources:
            return
        with self.lock:
            bit = 1 << n
            old = bool(self.levels & bit)
            self.levels = self.levels | bit if level else self.levels & ~bit
            if old == bool(level):
                return
            owner = self._owner(n)
            if owner is None:
                return
            owner._input_changed(n)
            msis = owner._update()
        owner._send(msis)

    def _owner(self, n: int) -> AplicDomain | None:
        """The domain where source n is not delegated further (None: a bad child index)."""
        domain = self
        while domain.sourcecfg[n] & SOURCECFG_D:
            index = domain.sourcecfg[n] & 0x3FF
            if index >= len(domain.children):
                return None
            domain = domain.children[index]
        return domain

    # -- source state -------------------------------------------------------------------
    def _delegated_here(self, n: int) -> bool:
        parent = self.parent
        if parent is None:
            return True
        cfg = parent.sourcecfg[n]
        return bool(cfg & SOURCECFG_D) and (cfg & 0x3FF) == self.child_index \
            and parent._delegated_here(n)

    def _mode(self, n: int) -> int:
        """Source mode of an active source, SM_INACTIVE otherwise (delegated included)."""
        cfg = self.sourcecfg[n]
        if cfg & SOURCECFG_D:
            return SM_INACTIVE
        return cfg & 7

    def _rectified(self, n: int) -> bool:
        mode = self._mode(n)
        if mode in (SM_INACTIVE, SM_DETACHED):
            return False
        return bool(self.root.levels >> n & 1) ^ (mode in _INVERTED)

    def _active_mask(self) -> int:
        mask = 0
        for n in range(1, self.num_sources + 1):
            if self._mode(n) != SM_INACTIVE:
                mask |= 1 << n
        return mask

    def _input_changed(self, n: int) -> None:
        mode = self._mode(n)
        bit = 1 << n
        high = self._rectified(n)
        if mode in (SM_EDGE1, SM_EDGE0):
            if high:  # called on every change of the raw level: a change to high is an edge
                self.pending |= bit
        elif mode in _LEVEL:
            if high:
                self.pending |= bit
            else:
                self.pending &= ~bit

    def _set_pending(self, n: int, value: bool) -> None:
        """A software write to setip*/in_clrip*/setipnum*/clripnum (spec 4.7)."""
        if not 0 < n <= self.num_sources:
            return
        mode = self._mode(n)
        if mode == SM_INACTIVE:
            return
        if mode in _LEVEL:
            if not self.msi_mode:
                return  # direct mode: the pending bit of a level source is its input
            if value and not self._rectified(n):
                return  # MSI mode: set only while the rectified input is high
        bit = 1 << n
        self.pending = self.pending | bit if value else self.pending & ~bit

    def _set_enabled(self, n: int, value: bool) -> None:
        if 0 < n <= self.num_sources and self._mode(n) != SM_INACTIVE:
            bit = 1 << n
            self.enabled = self.enabled | bit if value else self.enabled & ~bit

    def _write_sourcecfg(self, n: int, value: int) -> None:
        if not self._delegated_here(n):
            return  # not this domain's source: read-only zero
        old = self.sourcecfg[n]
        if value & SOURCECFG_D and self.children:  # a leaf domain cannot delegate
            index = value & 0x3FF
            value = SOURCECFG_D | (index if index < len(self.children) else 0)
        else:
            value &= 7
            if value in (2, 3):
                value = SM_INACTIVE  # reserved modes
        self.sourcecfg[n] = value
        bit = 1 << n
        if (old ^ value) & SOURCECFG_D or (old & SOURCECFG_D and (old ^ value) & 0x3FF):
            for child in self.children:
                child._forget(n)
        if self._mode(n) == SM_INACTIVE:
            self.pending &= ~bit
            self.enabled &= ~bit
        elif self._rectified(n):
            # The spec lets a sourcecfg write set the pending bit when the rectified
            # input is high under the new mode; QEMU does, and so does pemu.
            self.pending |= bit
        elif self._mode(n) in _LEVEL and not self.msi_mode:
            self.pending &= ~bit  # direct mode: a level source's pending bit is its input

    def _forget(self, n: int) -> None:
        """Source n stopped (or started) being delegated to this domain."""
        bit = 1 << n
        self.sourcecfg[n] = 0
        self.pending &= ~bit
        self.enabled &= ~bit
        for child in self.children:
            child._forget(n)

    def _write_target(self, n: int, value: int) -> None:
        # Kept even while the source is inactive (it reads zero then): the value an
        # activated source starts with is unspecified, and QEMU keeps the last one.
        hart = value >> TARGET_HART_SHIFT & TARGET_HART_MASK
        if self.msi_mode:
            # no guest interrupt files on this board: the guest index is read-only 0
            self.target[n] = hart << TARGET_HART_SHIFT | value & EIID_MASK
        else:
            prio = value & ((1 << IPRIO_BITS) - 1)
            self.target[n] = hart << TARGET_HART_SHIFT | (prio or 1)  # 0 means 1

    # -- delivery -----------------------------------------------------------------------
    def _topi(self, hart: int) -> int:
        """(source << 16 | priority) of hart's best deliverable source, 0 if none."""
        threshold = self.ithreshold[hart]
        best, best_prio = 0, 1 << IPRIO_BITS
        candidates = self.pending & self.enabled
        while candidates:
            low = candidates & -candidates
            n = low.bit_length() - 1
            candidates ^= low
            target = self.target[n]
            if target >> TARGET_HART_SHIFT != hart:
                continue
            prio = target & ((1 << IPRIO_BITS) - 1)
            if (threshold and prio >= threshold) or prio >= best_prio:
                continue  # ties go to the lowest source number (scanned first)
            best, best_prio = n, prio
        return best << 16 | best_prio if best else 0

    def _update(self) -> list[tuple[int, int]]:
        """Drive the IDC lines (direct) or take the MSIs to send (MSI mode); call the
        latter's result with ``_send`` once the lock is released."""
        enabled = bool(self.domaincfg & DOMAINCFG_IE)
        if not self.msi_mode:
            for h, line in enumerate(self.outputs):
                up = enabled and self.idelivery[h] and (self.iforce[h] or self._topi(h))
                line.set_level(bool(up))
            return []
        if not enabled:
            return []
        ready = self.pending & self.enabled
        msis = []
        while ready:
            low = ready & -ready
            n = low.bit_length() - 1
            ready ^= low
            self.pending &= ~low  # forwarded: no longer pending (a level source too)
            target = self.target[n]
            msis.append((self._msi_address(target >> TARGET_HART_SHIFT,
                                           target >> TARGET_GUEST_SHIFT & 0x3F),
                         target & EIID_MASK))
        return msis

    def _msi_address(self, hart: int, guest: int) -> int:
        root = self.root
        high = root.mmsiaddrcfgh
        lhxw, hhxw, hhxs = high >> 12 & 0xF, high >> 16 & 7, high >> 24 & 0x1F
        if self.machine_level:
            ppn, lhxs = root.mmsiaddrcfg | (high & 0xFFF) << 32, high >> 20 & 7
            guest = 0
        else:
            s_high = root.smsiaddrcfgh
            ppn, lhxs = root.smsiaddrcfg | (s_high & 0xFFF) << 32, s_high >> 20 & 7
        group = hart >> lhxw & ((1 << hhxw) - 1)
        ppn |= group << (hhxs + 12) | (hart & ((1 << lhxw) - 1)) << lhxs | guest
        return ppn << 12

    def _send(self, msis: list[tuple[int, int]]) -> None:
        write = self.root.msi_write
        if write is None:
            return
        for address, data in msis:
            write(address, data)

    # -- registers ----------------------------------------------------------------------
    def mmio_read(self, offset: int, size: int) -> int:
        if size != 4 or offset & 3:
            return 0
        with self.lock:
            value = self._read(offset)
            msis = self._update() if offset >= IDC_BASE else []
        self._send(msis)
        return value

    def _read(self, offset: int) -> int:
        if offset == DOMAINCFG:
            dm = DOMAINCFG_DM if self.msi_mode else 0
            return DOMAINCFG_RO | self.domaincfg | dm
        if SOURCECFG <= offset < SOURCECFG + 4 * self.num_sources:
            return self.sourcecfg[(offset - SOURCECFG) // 4 + 1]
        if MMSIADDRCFG <= offset <= SMSIADDRCFGH:
            if self.parent is not None or not self.msi_mode:
                return 0
            return (self.mmsiaddrcfg, self.mmsiaddrcfgh, self.smsiaddrcfg,
                    self.smsiaddrcfgh)[(offset - MMSIADDRCFG) // 4]
        for base, bits in ((SETIP, self.pending), (IN_CLRIP, self._rectified_bits()),
                           (SETIE, self.enabled)):
            if base <= offset < base + 0x80:
                word = (offset - base) // 4
                return (bits & self._active_mask()) >> (32 * word) & 0xFFFF_FFFF
        if offset == GENMSI:
            return self.genmsi if self.msi_mode else 0
        if TARGET <= offset < TARGET + 4 * self.num_sources:
            n = (offset - TARGET) // 4 + 1
            return self.target[n] if self._mode(n) != SM_INACTIVE else 0
        if offset >= IDC_BASE and not self.msi_mode:
            hart, reg = divmod(offset - IDC_BASE, IDC_SIZE)
            if hart >= self.num_harts:
                return 0
            if reg == IDELIVERY:
                return self.idelivery[hart]
            if reg == IFORCE:
                return self.iforce[hart]
            if reg == ITHRESHOLD:
                return self.ithreshold[hart]
            if reg == TOPI:
                return self._topi(hart)
            if reg == CLAIMI:
                return self._claim(hart)
        return 0

    def _rectified_bits(self) -> int:
        bits = 0
        for n in range(1, self.num_sources + 1):
            if self._rectified(n):
                bits |= 1 << n
        return bits

    def _claim(self, hart: int) -> int:
        topi = self._topi(hart)
        if not topi:
            self.iforce[hart] = 0  # a claim with nothing pending consumes a forced one
            return 0
        n = topi >> 16
        self.pending &= ~(1 << n)
        if self._mode(n) in _LEVEL:
            self._input_changed(n)  # still asserted: pending again at once
        return topi

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        if size != 4 or offset & 3:
            return
        value &= 0xFFFF_FFFF
        with self.lock:
            self._write(offset, value)
            msis = self._genmsi_out + self._update()
            self._genmsi_out = []
        self._send(msis)

    def _write(self, offset: int, value: int) -> None:
        if offset == DOMAINCFG:
            self.domaincfg = value & DOMAINCFG_IE
        elif SOURCECFG <= offset < SOURCECFG + 4 * self.num_sources:
            self._write_sourcecfg((offset - SOURCECFG) // 4 + 1, value)
        elif MMSIADDRCFG <= offset <= SMSIADDRCFGH:
            if self.parent is None and self.msi_mode and not self.mmsiaddrcfgh & MSIADDRCFGH_L:
                self._write_msi_config(offset, value)
        elif SETIP <= offset < SETIP + 0x80 or IN_CLRIP <= offset < IN_CLRIP + 0x80:
            setting = offset < IN_CLRIP
            first = 32 * ((offset - (SETIP if setting else IN_CLRIP)) // 4)
            for i in range(32):
                if value >> i & 1:
                    self._set_pending(first + i, setting)
        elif offset in (SETIPNUM, SETIPNUM_LE):
            self._set_pending(value, True)
        elif offset == SETIPNUM_BE:
            self._set_pending(int.from_bytes(value.to_bytes(4, "little"), "big"), True)
        elif offset == CLRIPNUM:
            self._set_pending(value, False)
        elif SETIE <= offset < SETIE + 0x80 or CLRIE <= offset < CLRIE + 0x80:
            setting = offset < CLRIE
            first = 32 * ((offset - (SETIE if setting else CLRIE)) // 4)
            for i in range(32):
                if value >> i & 1:
                    self._set_enabled(first + i, setting)
        elif offset in (SETIENUM, CLRIENUM):
            self._set_enabled(value, offset == SETIENUM)
        elif offset == GENMSI:
            if self.msi_mode:
                self._genmsi(value)
        elif TARGET <= offset < TARGET + 4 * self.num_sources:
            self._write_target((offset - TARGET) // 4 + 1, value)
        elif offset >= IDC_BASE and not self.msi_mode:
            hart, reg = divmod(offset - IDC_BASE, IDC_SIZE)
            if hart >= self.num_harts:
                return
            if reg == IDELIVERY:
                self.idelivery[hart] = value & 1
            elif reg == IFORCE:
                self.iforce[hart] = value & 1
            elif reg == ITHRESHOLD:
                self.ithreshold[hart] = value & ((1 << IPRIO_BITS) - 1)

    def _write_msi_config(self, offset: int, value: int) -> None:
        if offset == MMSIADDRCFG:
            self.mmsiaddrcfg = value
        elif offset == MMSIADDRCFGH:
            self.mmsiaddrcfgh = value & 0x9F7F_FFFF  # L, HHXS, LHXS, HHXW, LHXW, PPN
        elif offset == SMSIADDRCFG:
            self.smsiaddrcfg = value
        else:
            self.smsiaddrcfgh = value & 0x0070_0FFF  # LHXS and PPN

    def _genmsi(self, value: int) -> None:
        """An extempore MSI: sent at once, so the busy bit is never seen set."""
        hart = value >> TARGET_HART_SHIFT & TARGET_HART_MASK
        self.genmsi = hart << TARGET_HART_SHIFT | value & EIID_MASK
        self._genmsi_out.append((self._msi_address(hart, 0), value & EIID_MASK))


def aplic_source_spec(source: int) -> tuple[int, int]:
    """The two interrupt cells that name wired source n in the device tree: the
    source and IRQ_TYPE_LEVEL_HIGH, as QEMU's virt writes them."""
    return (source, 4)
