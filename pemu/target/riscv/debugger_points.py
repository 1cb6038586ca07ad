"""The system-mode gdb stub's breakpoints and watchpoints on the trigger machinery.

GDB's points (Z0/Z1 breakpoints, Z2/Z3/Z4 watchpoints) are checked where the guest's
Sdtrig triggers are (debug_triggers.py): their pcs join the translator's
``break_pcs`` and their pages the softmmu's watched pages, so a ``continue`` runs
translated code at full speed and stops exactly at a point.  They stay separate from
the guest's triggers, as QEMU keeps BP_GDB apart from BP_CPU: the guest neither sees
nor loses a trigger to the debugger.

A hit raises ``DebuggerHit`` before the instruction or the access; the hart hands it
to ``on_hit`` (the stub, on the hart's thread) instead of entering a trap, and leaves
its pc on that instruction, so it hits again until the stub has stopped the machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pemu.target.riscv.exceptions import RiscvTrap

PAGE_SHIFT = 12
ACCESS_WRITE = 1  # softmmu's access kind of a store (a read-for-store included)


class DebuggerHit(RiscvTrap):
    """A debugger point matched; never a guest exception."""

    def __init__(self, watch: Watch | None = None, vaddr: int = 0) -> None:
        super().__init__(-1, vaddr)
        self.watch = watch  # None: a breakpoint


@dataclass(frozen=True)
class Watch:
    kind: int  # the debugger's own code for it (gdb's Z type)
    addr: int
    length: int
    on_read: bool
    on_write: bool


@dataclass(eq=False)
class DebuggerPoints:
    """What the debugger set, shared by every hart of the machine."""

    on_hit: Callable[[object, DebuggerHit], None]
    pcs: frozenset[int] = frozenset()
    watches: tuple[Watch, ...] = ()
    # False while the debugger has the machine stopped or steps it itself: the stub
    # then finds hits by decoding the instruction it executes
    active: bool = False
    _pages: frozenset[int] = field(default=frozenset(), repr=False)

    def set_points(self, pcs: frozenset[int], watches: tuple[Watch, ...]) -> None:
        self.pcs = pcs
        self.watches = watches
        pages: set[int] = set()
        for w in watches:
            pages.update(range(w.addr >> PAGE_SHIFT, (w.addr + w.length - 1 >> PAGE_SHIFT) + 1))
        self._pages = frozenset(pages)

    def watch_pages(self) -> frozenset[int]:
        return self._pages

    def check_exec(self, pc: int) -> None:
        if self.active and pc in self.pcs:
            raise DebuggerHit()

    def check_data(self, vaddr: int, size: int, access: int) -> None:
        if not self.active:
            return
        writes = access == ACCESS_WRITE
        for w in self.watches:
            if (w.on_write if writes else w.on_read) and (
                    vaddr < w.addr + w.length and w.addr < vaddr + size):
                raise DebuggerHit(w, vaddr)


__all__ = ["DebuggerHit", "DebuggerPoints", "Watch"]
