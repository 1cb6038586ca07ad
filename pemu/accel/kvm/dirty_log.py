"""KVM's dirty page log for live migration: which guest pages the vCPUs wrote.

Guest stores under KVM never pass through pemu, so the softmmu's way of marking pages
(pemu/memory/address_space.py: ``RAMBlock.dirty``) cannot see them.  While a migration
runs, every memory slot gets ``KVM_MEM_LOG_DIRTY_PAGES``; ``harvest`` asks KVM for each
slot's bitmap and adds the pages to the block's ``dirty`` set, the same set that device
writes through views of guest RAM already go to.  So the migration's pre-copy loop
stays the one TCG uses: it swaps ``dirty`` sets and resends, with one more step before
each swap (``MigratableMachine.sync_dirty_log``).

With ``KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2`` KVM_GET_DIRTY_LOG only reads the bitmap, and
``KVM_CLEAR_DIRTY_LOG`` re-protects exactly the pages harvested.  Both happen before
the pages' contents are read for sending, so a store between the two is still sent
(its page is read afterwards); a store after the clear is logged again.  Without the
capability KVM_GET_DIRTY_LOG reads and re-protects in one call.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from pemu.accel.kvm import abi
from pemu.accel.kvm.errors import KVMError
from pemu.accel.kvm.ioctl import ioctl_raw, kvm_ioctl

PAGE_SHIFT = 12


@dataclass
class LoggedSlot:
    """A KVM memory slot and the RAM block it maps (block offset 0 = slot start)."""

    slot: int
    block: object  # pemu.memory.address_space.RAMBlock

    @property
    def pages(self) -> int:
        return self.block.size >> PAGE_SHIFT  # type: ignore[attr-defined]


def bitmap_pages(words: ctypes.Array) -> list[int]:
    """Page numbers of the set bits of a KVM dirty bitmap (u64 words, bit n = page n)."""
    out = []
    for w, word in enumerate(words):
        base = w * 64
        while word:
            low = word & -word
            out.append(base + low.bit_length() - 1)
            word ^= low
    return out


class DirtyLog:
    """``DirtyLog(vm, slots)``: ``start``, then ``harvest`` as often as wanted, ``stop``."""

    def __init__(self, vm, slots: list[LoggedSlot]) -> None:  # vm: KVMVM
        self.vm = vm
        self.slots = slots
        self.active = False
        self._manual = False
        self._manual_tried = False

    def _enable_manual_protect(self) -> None:
        """Once per VM: KVM refuses to switch the capability on a second time."""
        if self._manual_tried:
            return
        self._manual_tried = True
        if not self.vm.check_extension(abi.KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2):
            return
        cap = abi.KvmEnableCap(cap=abi.KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2)
        cap.args[0] = abi.KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE
        ret, _ = ioctl_raw(self.vm.fd, abi.KVM_ENABLE_CAP, cap)
        self._manual = ret >= 0

    @property
    def manual_protect(self) -> bool:
        return self._manual

    def start(self) -> None:
        self._enable_manual_protect()
        for s in self.slots:
            self.vm.set_slot_flags(s.slot, abi.KVM_MEM_LOG_DIRTY_PAGES)
        self.active = True

    def stop(self) -> None:
        if not self.active:
            return
        self.active = False
        for s in self.slots:
            self.vm.set_slot_flags(s.slot, 0)

    def harvest(self) -> None:
        """Every page written since the last harvest (or ``start``) into its block's
        ``dirty`` set; KVM logs them afresh from now on."""
        if not self.active:
            return
        for s in self.slots:
            pages = self._read_and_reset(s)
            dirty = s.block.dirty  # type: ignore[attr-defined]
            if dirty is not None:
                dirty.update(pages)

    def _read_and_reset(self, s: LoggedSlot) -> list[int]:
        words = (ctypes.c_uint64 * ((s.pages + 63) // 64))()
        log = abi.KvmDirtyLog(slot=s.slot, dirty_bitmap=ctypes.addressof(words))
        kvm_ioctl(self.vm.fd, abi.KVM_GET_DIRTY_LOG, log, "GET_DIRTY_LOG")
        pages = bitmap_pages(words)
        if self._manual and pages:
            # the bitmap just read, handed back: exactly these pages are protected again
            clear = abi.KvmClearDirtyLog(slot=s.slot, first_page=0,
                                         num_pages=s.pages,
                                         dirty_bitmap=ctypes.addressof(words))
            ret, err = ioctl_raw(self.vm.fd, abi.KVM_CLEAR_DIRTY_LOG, clear)
            if ret < 0:
                raise KVMError(f"KVM CLEAR_DIRTY_LOG of slot {s.slot} failed (errno {err})")
        return pages


__all__ = ["DirtyLog", "LoggedSlot", "bitmap_pages"]
