"""A guest-side NVMe driver for the migration scenario: BAR0 and queues at fixed
places, submissions and completions read straight from guest RAM (no waiting: without
namespaces every command completes inline)."""

from __future__ import annotations

import struct

from pemu.hw.nvme import controller as N
from pemu.hw.nvme import spec as S
from pemu.hw.pci import config as C
from tests.migration.pci_rig import MEM_WINDOW_BASE, PCIRig

PAGE = 4096
BAR0 = MEM_WINDOW_BASE + 0x40_0000


class GuestQueuePair:
    """One SQ/CQ pair as the host driver tracks it (its bookkeeping is guest RAM)."""

    def __init__(self, rig: PCIRig, qid: int, entries: int) -> None:
        self.qid, self.entries = qid, entries
        self.sq = rig.ram.alloc(entries * S.SQ_ENTRY, PAGE)
        self.cq = rig.ram.alloc(entries * S.CQ_ENTRY, PAGE)
        self.sq_tail = self.cq_head = 0
        self.phase = 1


class NvmeGuest:
    def __init__(self, rig: PCIRig, devfn: int) -> None:
        self.rig, self.devfn, self.space = rig, devfn, rig.space
        self.cid = 0

    def reg(self, off: int, size: int = 4) -> int:
        return self.space.load(BAR0 + off, size)

    def doorbell(self, qid: int, is_cq: bool, value: int) -> None:
        self.space.store(BAR0 + S.DOORBELLS + 8 * qid + 4 * int(is_cq), 4, value)

    def msix_entry(self, vector: int, address: int, data: int, masked: bool) -> None:
        base = BAR0 + N.MSIX_TABLE + 16 * vector
        for off, value in ((0, address), (4, 0), (8, data), (12, int(masked))):
            self.space.store(base + off, 4, value)

    def pba(self) -> int:
        return self.space.load(BAR0 + N.MSIX_PBA, 4)

    def map_bar(self) -> None:
        rig, fn = self.rig, self.devfn
        rig.cfg_w(fn, C.BAR0, 4, BAR0 & 0xFFFFFFFF)
        rig.cfg_w(fn, C.BAR0 + 4, 4, BAR0 >> 32)
        rig.cfg_w(fn, C.COMMAND, 2, C.COMMAND_MEMORY | C.COMMAND_MASTER)

    def enable(self, msix_cap: int, entries: int = 4) -> GuestQueuePair:
        self.rig.cfg_w(self.devfn, msix_cap + 2, 2, 0x8000)
        admin = GuestQueuePair(self.rig, 0, entries)
        self.space.store(BAR0 + S.REG_AQA, 4, (entries - 1) << 16 | (entries - 1))
        self.space.store(BAR0 + S.REG_ASQ, 8, admin.sq)
        self.space.store(BAR0 + S.REG_ACQ, 8, admin.cq)
        self.space.store(BAR0 + S.REG_CC, 4, S.CC_EN | 6 << 16 | 4 << 20)
        return admin

    def submit(self, q: GuestQueuePair, opcode: int, nsid: int = 0, prp1: int = 0,
               cdw10: int = 0, cdw11: int = 0) -> int:
        self.cid += 1
        raw = S.SQE.pack(opcode, 0, self.cid, nsid, 0, 0, prp1, 0, cdw10, cdw11, 0, 0, 0, 0)
        self.space.write(q.sq + q.sq_tail * S.SQ_ENTRY, raw)
        q.sq_tail = (q.sq_tail + 1) % q.entries
        self.doorbell(q.qid, False, q.sq_tail)
        return self.cid

    def reap(self, q: GuestQueuePair, ring: bool = True) -> list[tuple[int, int, int]]:
        """(cid, status, result) of every new completion; moves the head doorbell."""
        out = []
        while True:
            result, _, _, _, cid, tail = struct.unpack(
                "<IIHHHH", self.space.read(q.cq + q.cq_head * S.CQ_ENTRY, 16))
            if tail & 1 != q.phase:
                break
            out.append((cid, (tail >> 1) & 0x3FFF, result))
            q.cq_head = (q.cq_head + 1) % q.entries
            if q.cq_head == 0:
                q.phase ^= 1
        if ring and out:
            self.doorbell(q.qid, True, q.cq_head)
        return out
