"""H's two-stage address translation (privileged spec 1.12, section 8.5).

With V=1 a virtual address goes through the VS-stage (vsatp: the guest's own page
tables, whose every page-table read is itself a guest physical address) and then the
G-stage (hgatp Sv39x4/48x4/57x4: guest physical -> host physical, every leaf a U page).
A G-stage refusal is a guest-page fault (cause 20/21/23) that records the guest
physical address; tval stays the guest virtual address.

``TwoStage`` is used by the hart's RiscvMMU for the softmmu (V=1 code's TLB lives in
its own address-space context, keyed by vsatp and hgatp) and by hlv/hsv, which
translate as V=1 from HS-mode without caching.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.accel.tcg.softmmu import ACCESS_EXEC, ACCESS_READ, PAGE_SHIFT, PERM_ALL
from pemu.target.riscv.exceptions import RiscvTrap
from pemu.target.riscv.hyp import GUEST_PAGE_FAULT, GuestTrap
from pemu.target.riscv.mmu import ACCESS_FAULT, PAGE_FAULT, walk
from pemu.target.riscv.priv import MSTATUS_MXR

NO_LIMIT = 64  # a page shift that limits nothing (a Bare stage)


class TwoStage:
    """The VS- and G-stage walks of one hart."""

    def __init__(self, ps, pte_load: Callable[[int], int],
                 pte_store: Callable[[int, int], None],
                 pte_allowed: Callable[[int], bool], walk_ext: Callable[[], int]) -> None:
        self.ps = ps
        self._load = pte_load
        self._store = pte_store
        self._allowed = pte_allowed
        self._ext = walk_ext

    def g_stage(self, gpa: int, access: int, fault_access: int, gva: int
                ) -> tuple[int, int, int]:
        """(host paddr, perms, shift) of guest physical ``gpa``; ``fault_access``:
        the access a refusal is reported as (the original one, for the VS-stage's
        implicit page-table accesses)."""
        hgatp = self.ps.hyp.hgatp
        mode = hgatp >> 60
        if not mode:
            if gpa >> 56:
                raise GuestTrap(ACCESS_FAULT[fault_access], gva, gva=True)
            return gpa, PERM_ALL, NO_LIMIT
        try:
            t = walk(hgatp, gpa, access, 0, False, bool(self.ps.mstatus & MSTATUS_MXR),
                     self._load, self._store, self._allowed, self._ext(), g_stage=True)
        except RiscvTrap as trap:
            if trap.cause == PAGE_FAULT[access]:
                raise GuestTrap(GUEST_PAGE_FAULT[PAGE_FAULT[fault_access]], gva, gpa=gpa,
                                gva=True) from None
            raise GuestTrap(ACCESS_FAULT[fault_access], gva, gva=True) from None
        return t.paddr, t.perms, t.shift

    def translate(self, vaddr: int, access: int, priv: int, sum_: bool
                  ) -> tuple[int, int, int]:
        """(host paddr, perms, shift) of a V=1 access by ``priv`` (VS or VU)."""
        ps = self.ps
        vsatp = ps.hyp.vsatp
        mxr = bool((ps.mstatus | ps.hyp.vsstatus) & MSTATUS_MXR)
        if vsatp >> 60:
            def load(gpa: int) -> int:
                return self._load(self.g_stage(gpa, ACCESS_READ, access, vaddr)[0])

            def store(gpa: int, value: int) -> None:
                self._store(self.g_stage(gpa, 1, access, vaddr)[0], value)

            try:
                vs = walk(vsatp, vaddr, access, priv, sum_, mxr, load, store,
                          lambda gpa: True, self._ext())
            except GuestTrap:
                raise
            except RiscvTrap as trap:  # a VS-stage fault: V=1 addresses are guest ones
                raise GuestTrap(trap.cause, trap.tval, gva=True) from None
            gpa, vs_perms, vs_shift = vs.paddr, vs.perms, vs.shift
        else:
            gpa, vs_perms, vs_shift = vaddr, PERM_ALL, NO_LIMIT
        paddr, g_perms, g_shift = self.g_stage(gpa, access, access, vaddr)
        shift = min(vs_shift, g_shift)
        return paddr, vs_perms & g_perms, PAGE_SHIFT if shift == NO_LIMIT else shift

    def translate_hlvx(self, vaddr: int, priv: int, sum_: bool) -> tuple[int, int, int]:
        """hlvx: a read that needs execute permission, refused as a load."""
        try:
            return self.translate(vaddr, ACCESS_EXEC, priv, sum_)
        except GuestTrap as trap:
            cause = {12: 13, 20: 21, 1: 5}.get(trap.cause, trap.cause)
            raise GuestTrap(cause, trap.tval, trap.gpa, trap.gva) from None


__all__ = ["TwoStage"]
