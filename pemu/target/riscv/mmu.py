"""RISC-V address translation (Sv39, Sv48, Sv57) and physical memory protection (PMP).

``walk`` translates one virtual address for one access the way the privileged spec
(1.12, section 4.3.2) describes, and updates the A and D bits in the leaf PTE itself
(the "hardware updating" option, as QEMU does), so guests never see a fault just for
A/D.  It returns what the softmmu TLB needs: the physical page, which accesses the
same mapping would also allow (so a read fill can install a write entry when D is
already set), and the page size (so ``sfence.vma addr`` can drop every 4 KiB piece of
a superpage).

``PMP`` keeps the pmpcfg/pmpaddr registers and compiles them into an ordered list of
byte ranges, checked per access and per page (a TLB entry is only cached when the
whole 4 KiB page has one PMP verdict).
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.accel.tcg.softmmu import (
    ACCESS_EXEC,
    ACCESS_READ,
    ACCESS_WRITE,
    PERM_GLOBAL,
    PERM_R,
    PERM_W,
    PERM_X,
)
from pemu.target.riscv.exceptions import (
    INSN_ACCESS_FAULT,
    INSN_PAGE_FAULT,
    LOAD_ACCESS_FAULT,
    LOAD_PAGE_FAULT,
    STORE_ACCESS_FAULT,
    STORE_PAGE_FAULT,
    RiscvTrap,
)

PAGE_FAULT = {ACCESS_READ: LOAD_PAGE_FAULT, ACCESS_WRITE: STORE_PAGE_FAULT,
              ACCESS_EXEC: INSN_PAGE_FAULT}
ACCESS_FAULT = {ACCESS_READ: LOAD_ACCESS_FAULT, ACCESS_WRITE: STORE_ACCESS_FAULT,
                ACCESS_EXEC: INSN_ACCESS_FAULT}

PTE_V, PTE_R, PTE_W, PTE_X, PTE_U, PTE_G, PTE_A, PTE_D = 1, 2, 4, 8, 16, 32, 64, 128
PTE_PPN_SHIFT = 10
PTE_PPN_MASK = (1 << 44) - 1
PTE_RESERVED = 0xFFC0_0000_0000_0000  # N, PBMT and reserved bits
PTE_N = 1 << 63  # Svnapot: a 64 KiB naturally aligned power-of-two mapping
PTE_PBMT = 3 << 61  # Svpbmt: memory type (PMA, NC, IO; 3 is reserved)
PTE_PBMT_RESERVED = 3 << 61
NAPOT_64K_PPN = 0b1000  # ppn[3:0] of a 64 KiB NAPOT PTE (the only size defined)

# What the hart's extensions allow the walk (the ``ext`` argument of ``walk``)
WALK_NAPOT = 1  # Svnapot
WALK_PBMT = 2  # Svpbmt
WALK_AD_FAULT = 4  # Svade without Svadu's menvcfg.ADUE: clear A/D bits fault

SATP_MODE_BARE = 0
SATP_MODE_SV39 = 8
SATP_MODE_SV48 = 9
SATP_MODE_SV57 = 10
SATP_LEVELS = {SATP_MODE_SV39: 3, SATP_MODE_SV48: 4, SATP_MODE_SV57: 5}
SATP_PPN_MASK = (1 << 44) - 1

PRV_U, PRV_S, PRV_M = 0, 1, 3

# Access kinds and the permission bits of a translation result are the softmmu's.
_ACCESS_PERM = {ACCESS_READ: PERM_R, ACCESS_WRITE: PERM_W, ACCESS_EXEC: PERM_X}

PhysLoad = Callable[[int], int]  # 8-byte PTE read at a physical address (may raise)
PhysStore = Callable[[int, int], None]


class Translation:
    """A successful walk: ``paddr`` of the access, permissions, page shift."""

    __slots__ = ("paddr", "perms", "shift")

    def __init__(self, paddr: int, perms: int, shift: int) -> None:
        self.paddr = paddr
        self.perms = perms
        self.shift = shift


def walk(satp: int, vaddr: int, access: int, priv: int, sum_: bool, mxr: bool,
         pte_load: PhysLoad, pte_store: PhysStore,
         pte_allowed: Callable[[int], bool], ext: int = 0,
         g_stage: bool = False) -> Translation:
    """Translate ``vaddr`` under ``satp`` for one access by ``priv`` (U or S).

    Raises ``RiscvTrap`` with the page-fault cause of the access, or the access-fault
    cause when a PTE lies where PMP forbids S-mode reads or no memory is.  ``ext``:
    WALK_* bits for the Sv* extensions that change what a PTE may hold.

    ``g_stage``: H's guest-physical stage (hgatp Sv39x4/48x4/57x4, mode in ``satp``'s
    place): the address is a zero-extended guest physical address two bits wider
    and the root table, four times as large, is indexed by 11 bits.  The caller
    turns the page faults raised into guest-page faults.
    """
    reserved = PTE_RESERVED
    if ext & WALK_NAPOT:
        reserved &= ~PTE_N
    if ext & WALK_PBMT:
        reserved &= ~PTE_PBMT
    mode = satp >> 60
    levels = SATP_LEVELS[mode]
    va_bits = 12 + 9 * levels
    fault = PAGE_FAULT[access]
    if g_stage:
        if vaddr >> (va_bits + 2):
            raise RiscvTrap(fault, vaddr)
    else:
        # The address must be the sign extension of its low va_bits.
        top = vaddr >> (va_bits - 1)
        if top != 0 and top != (1 << (65 - va_bits)) - 1:
            raise RiscvTrap(fault, vaddr)
    table = (satp & SATP_PPN_MASK) << 12
    global_ = 0  # G on any level: the mapping is the same in every address space
    for level in range(levels - 1, -1, -1):
        shift = 12 + 9 * level
        index_mask = 0x7FF if g_stage and level == levels - 1 else 0x1FF
        pte_addr = table + ((vaddr >> shift) & index_mask) * 8
        if not pte_allowed(pte_addr):
            raise RiscvTrap(ACCESS_FAULT[access], vaddr)
        try:
            pte = pte_load(pte_addr)
        except RiscvTrap:
            raise  # H: the G-stage refused the VS-stage's page-table read
        except Exception:  # noqa: BLE001 - no memory there: an access fault for the guest
            raise RiscvTrap(ACCESS_FAULT[access], vaddr) from None
        if (not pte & PTE_V or (pte & (PTE_R | PTE_W)) == PTE_W or pte & reserved
                or pte & PTE_PBMT == PTE_PBMT_RESERVED):
            raise RiscvTrap(fault, vaddr)
        ppn = (pte >> PTE_PPN_SHIFT) & PTE_PPN_MASK
        global_ |= pte & PTE_G
        if not pte & (PTE_R | PTE_X):  # pointer to the next level
            if pte & (PTE_D | PTE_A | PTE_U | PTE_N | PTE_PBMT):
                raise RiscvTrap(fault, vaddr)  # reserved for non-leaf PTEs
            table = ppn << 12
            continue
        if ppn & ((1 << (9 * level)) - 1):
            raise RiscvTrap(fault, vaddr)  # misaligned superpage
        if pte & PTE_N:
            if level or ppn & 0xF != NAPOT_64K_PPN:
                raise RiscvTrap(fault, vaddr)  # no other NAPOT size is defined
            shift = 16
            ppn &= ~0xF
        perms = _leaf_perms(pte, priv, sum_, mxr)
        if not perms & _ACCESS_PERM[access]:
            raise RiscvTrap(fault, vaddr)
        new = pte | PTE_A | (PTE_D if access == ACCESS_WRITE else 0)
        if new != pte and ext & WALK_AD_FAULT:
            raise RiscvTrap(fault, vaddr)  # Svade: software sets A and D
        if new != pte:
            try:
                pte_store(pte_addr, new)
            except RiscvTrap:
                raise
            except Exception:  # noqa: BLE001
                raise RiscvTrap(ACCESS_FAULT[access], vaddr) from None
        if not new & PTE_D:
            perms &= ~PERM_W  # the first write must come back here to set D
        if global_:
            perms |= PERM_GLOBAL
        offset_mask = (1 << shift) - 1
        paddr = ((ppn << 12) & ~offset_mask) | (vaddr & offset_mask)
        return Translation(paddr, perms, shift)
    raise RiscvTrap(fault, vaddr)  # a pointer PTE at level 0


def _leaf_perms(pte: int, priv: int, sum_: bool, mxr: bool) -> int:
    if pte & PTE_U:
        if priv == PRV_S:
            if not sum_:
                return 0
            perms = 0  # S-mode never executes user pages
        else:
            perms = PERM_X if pte & PTE_X else 0
    else:
        if priv == PRV_U:
            return 0
        perms = PERM_X if pte & PTE_X else 0
    if pte & PTE_R or (mxr and pte & PTE_X):
        perms |= PERM_R
    if pte & PTE_W:
        perms |= PERM_W
    return perms


# -- PMP ---------------------------------------------------------------------------------

PMP_R, PMP_W, PMP_X = 1, 2, 4
PMP_A_SHIFT = 3
PMP_OFF, PMP_TOR, PMP_NA4, PMP_NAPOT = 0, 1, 2, 3
PMP_L = 0x80
PMP_ADDR_MASK = (1 << 54) - 1  # pmpaddr holds physical address bits 55:2
PMP_ENTRIES = 16


class PMP:
    """pmpcfg0..3/pmpaddr0..15 and the checks (4-byte granularity)."""

    def __init__(self, entries: int = PMP_ENTRIES,
                 on_change: Callable[[], None] | None = None) -> None:
        self.entries = entries
        self.cfg = [0] * entries
        self.addr = [0] * entries
        self.on_change = on_change
        # (lo, hi_exclusive, perms, locked) in priority order
        self.rules: list[tuple[int, int, int, bool]] = []

    def reset(self) -> None:
        self.cfg = [0] * self.entries
        self.addr = [0] * self.entries
        self._compile()

    # -- registers -------------------------------------------------------------------
    def read_cfg(self, reg: int) -> int:
        """pmpcfgN (N even on RV64): eight 8-bit entry configs."""
        first = reg * 4
        return sum(self.cfg[first + i] << (8 * i) for i in range(8)
                   if first + i < self.entries)

    def write_cfg(self, reg: int, value: int) -> None:
        first = reg * 4
        for i in range(8):
            n = first + i
            if n >= self.entries or self.cfg[n] & PMP_L:
                continue
            byte = (value >> (8 * i)) & 0x9F
            if byte & (PMP_R | PMP_W) == PMP_W:
                byte &= ~PMP_W  # R=0 W=1 is reserved: read it back as no access
            self.cfg[n] = byte
        self._compile()

    def read_addr(self, n: int) -> int:
        return self.addr[n]

    def write_addr(self, n: int, value: int) -> None:
        if self.cfg[n] & PMP_L:
            return
        nxt = n + 1
        if (nxt < self.entries and self.cfg[nxt] & PMP_L
                and (self.cfg[nxt] >> PMP_A_SHIFT) & 3 == PMP_TOR):
            return  # locked TOR entry above uses this address
        self.addr[n] = value & PMP_ADDR_MASK
        self._compile()

    def _compile(self) -> None:
        rules = []
        for n in range(self.entries):
            cfg = self.cfg[n]
            mode = (cfg >> PMP_A_SHIFT) & 3
            if mode == PMP_OFF:
                continue
            a = self.addr[n]
            if mode == PMP_TOR:
                lo = (self.addr[n - 1] << 2) if n else 0
                hi = a << 2
            elif mode == PMP_NA4:
                lo, hi = a << 2, (a << 2) + 4
            else:
                mask = a ^ (a + 1)
                lo = (a & ~mask) << 2
                hi = lo + ((mask + 1) << 2)
            if hi > lo:
                rules.append((lo, hi, cfg & 7, bool(cfg & PMP_L)))
        self.rules = rules
        if self.on_change is not None:
            self.on_change()

    # -- checks ---------------------------------------------------------------------
    def allows(self, paddr: int, size: int, perm: int, priv: int) -> bool:
        """May ``priv`` access [paddr, paddr+size) with ``perm`` (PMP_R/W/X)?"""
        if not self.rules:
            return True  # no entry programmed: everything is allowed (as QEMU does)
        end = paddr + size
        for lo, hi, perms, locked in self.rules:
            if paddr < hi and lo < end:
                if not (lo <= paddr and end <= hi):
                    return False  # straddles the entry's edge: always denied
                if priv == PRV_M and not locked:
                    return True
                return bool(perms & perm)
        return priv == PRV_M

    def page_allows(self, page: int, perm: int, priv: int) -> bool:
        """True if every byte of the 4 KiB page at ``page`` passes: a TLB may cache it."""
        return self.allows(page, 4096, perm, priv)
