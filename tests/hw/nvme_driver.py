"""A small NVMe host driver, written from the NVMe 1.4 spec, for tests.

It reaches the controller only the way a guest does: config space through ECAM, the
registers and doorbells through BAR0, queues and data in guest RAM.  I/O completes on the
drive's I/O thread, so waiting for a completion polls the phase tag with a timeout.
"""

from __future__ import annotations

import struct
import time

from pci_driver import PCIMachine

from pemu.hw.nvme import spec as S

PAGE = 4096


def sqe(opcode: int, cid: int = 0, nsid: int = 0, prp1: int = 0, prp2: int = 0,
        cdw: tuple[int, ...] = (), flags: int = 0) -> bytes:
    words = (list(cdw) + [0] * 6)[:6]
    return S.SQE.pack(opcode, flags, cid, nsid, 0, 0, prp1, prp2, *words)


class Completion:
    def __init__(self, raw: bytes) -> None:
        self.result, _, self.sq_head, self.sqid, self.cid, tail = struct.unpack("<IIHHHH", raw)
        self.phase = tail & 1
        self.status = (tail >> 1) & 0x3FFF  # SCT/SC, without DNR and M
        self.dnr = bool(tail >> 15)


class QueuePair:
    def __init__(self, drv: NvmeDriver, qid: int, entries: int) -> None:
        self.drv, self.qid, self.entries = drv, qid, entries
        self.sq = drv.ram.alloc(entries * S.SQ_ENTRY, PAGE)
        self.cq = drv.ram.alloc(entries * S.CQ_ENTRY, PAGE)
        self.tail = self.head = 0
        self.phase = 1
        self.next_cid = 1

    def submit(self, entry: bytes, ring: bool = True) -> None:
        self.drv.space.write(self.sq + self.tail * S.SQ_ENTRY, entry)
        self.tail = (self.tail + 1) % self.entries
        if ring:
            self.ring_tail()

    def ring_tail(self) -> None:
        self.drv.doorbell(2 * self.qid, self.tail)

    def peek(self) -> Completion | None:
        c = Completion(self.drv.space.read(self.cq + self.head * S.CQ_ENTRY, S.CQ_ENTRY))
        return c if c.phase == self.phase else None

    def reap(self, timeout: float = 10.0, ring: bool = True) -> Completion:
        deadline = time.monotonic() + timeout
        while (c := self.peek()) is None:
            assert time.monotonic() < deadline, "no completion"
            time.sleep(0.001)
        self.head = (self.head + 1) % self.entries
        if self.head == 0:
            self.phase ^= 1
        if ring:
            self.ring_head()
        return c

    def ring_head(self) -> None:
        self.drv.doorbell(2 * self.qid + 1, self.head)

    def cmd(self, opcode: int, **kw) -> Completion:
        """Submit one command and wait for its completion."""
        cid = self.next_cid
        self.next_cid = (self.next_cid + 1) & 0xFFFF
        self.submit(sqe(opcode, cid, **kw))
        c = self.reap()
        assert c.cid == cid and c.sqid == self.qid
        return c


class NvmeDriver:
    def __init__(self, machine: PCIMachine, devfn: int) -> None:
        self.machine = machine
        self.space = machine.space
        self.ram = machine.ram
        self.cfg = machine.cfg(devfn)
        self.bars = machine.assign_bars(self.cfg)
        self.bar0 = self.bars[0]
        self.admin: QueuePair | None = None

    def r(self, off: int, size: int = 4) -> int:
        return self.space.load(self.bar0 + off, size)

    def w(self, off: int, value: int, size: int = 4) -> None:
        self.space.store(self.bar0 + off, size, value)

    def doorbell(self, index: int, value: int) -> None:
        self.w(S.DOORBELLS + 4 * index, value)

    def enable(self, entries: int = 8, asq: int | None = None) -> QueuePair:
        self.w(S.REG_CC, 0)
        assert not self.r(S.REG_CSTS) & S.CSTS_RDY
        q = QueuePair(self, 0, entries)
        if asq is not None:
            q.sq = asq
        self.w(S.REG_AQA, (entries - 1) << 16 | (entries - 1))
        for reg, addr in ((S.REG_ASQ, q.sq), (S.REG_ACQ, q.cq)):
            self.w(reg, addr & 0xFFFFFFFF)
            self.w(reg + 4, addr >> 32)
        self.w(S.REG_CC, S.CC_EN | S.SQES_LOG2 << 16 | S.CQES_LOG2 << 20)
        self.admin = q
        return q

    def identify(self, cns: int, nsid: int = 0) -> tuple[Completion, bytes]:
        buf = self.ram.alloc(PAGE, PAGE)
        c = self.admin.cmd(S.ADM_IDENTIFY, nsid=nsid, prp1=buf, cdw=(cns,))
        return c, self.space.read(buf, PAGE)

    def create_io_queues(self, qid: int, entries: int = 16, vector: int = 0,
                         irq: bool = True) -> QueuePair:
        q = QueuePair(self, qid, entries)
        size_qid = (entries - 1) << 16 | qid
        c = self.admin.cmd(S.ADM_CREATE_CQ, prp1=q.cq,
                           cdw=(size_qid, vector << 16 | int(irq) << 1 | 1))
        assert c.status == 0, hex(c.status)
        c = self.admin.cmd(S.ADM_CREATE_SQ, prp1=q.sq, cdw=(size_qid, qid << 16 | 1))
        assert c.status == 0, hex(c.status)
        return q


def prps_for(ram, length: int, pages: list[int] | None = None) -> tuple[int, int, list[int]]:
    """PRP1/PRP2 for ``length`` bytes over page-aligned ``pages`` (allocated if None):
    PRP2 is the second page, or a PRP list (chained over list pages when long)."""
    count = (length + PAGE - 1) // PAGE
    pages = pages or [ram.alloc(PAGE, PAGE) for _ in range(count)]
    if count == 1:
        return pages[0], 0, pages
    if count == 2:
        return pages[0], pages[1], pages
    rest = pages[1:]
    per_page = PAGE // 8
    lists = []
    while rest:
        lp = ram.alloc(PAGE, PAGE)
        lists.append(lp)
        if len(rest) <= per_page:
            chunk, rest = rest, []
        else:
            chunk, rest = rest[:per_page - 1], rest[per_page - 1:]
        ram.space.write(lp, struct.pack(f"<{len(chunk)}Q", *chunk))
    for a, b in zip(lists, lists[1:], strict=False):  # each list page's last slot chains
        ram.space.write(a + PAGE - 8, struct.pack("<Q", b))
    return pages[0], lists[0], pages
