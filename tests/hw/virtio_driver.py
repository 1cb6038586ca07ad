"""A minimal virtio-mmio driver, written from the spec, for driving devices in tests.

It talks to the transport only through MMIO loads/stores and builds its rings in guest
RAM, the way a guest kernel would, so tests see what a real driver sees.
"""

from __future__ import annotations

import struct

from pemu.hw.core import IRQLine
from pemu.hw.virtio import mmio as r
from pemu.hw.virtio.device import (
    STATUS_ACKNOWLEDGE,
    STATUS_DRIVER,
    STATUS_DRIVER_OK,
    STATUS_FEATURES_OK,
    VIRTIO_F_EVENT_IDX,
    VIRTIO_F_INDIRECT_DESC,
    VIRTIO_F_VERSION_1,
)
from pemu.hw.virtio.virtqueue import VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE
from pemu.memory.address_space import AddressSpace

RAM_BASE = 0x80000000
RAM_SIZE = 16 << 20
MMIO_BASE = 0x10001000


class GuestRAM:
    """A bump allocator over the test machine's RAM."""

    def __init__(self, space: AddressSpace) -> None:
        self.space = space
        self.next = RAM_BASE

    def alloc(self, size: int, align: int = 16) -> int:
        self.next = (self.next + align - 1) & ~(align - 1)
        addr = self.next
        self.next += size
        assert self.next <= RAM_BASE + RAM_SIZE, "test RAM exhausted"
        self.space.write(addr, bytes(size))
        return addr


def make_machine(device, irq: IRQLine | None = None):
    space = AddressSpace()
    space.add_ram("ram", RAM_BASE, RAM_SIZE)
    irq = irq or IRQLine(name="virtio")
    transport = r.VirtioMMIO(space, device, irq)
    space.add_mmio("virtio", MMIO_BASE, r.REGION_SIZE, transport)
    return space, transport, irq


class GuestQueue:
    def __init__(self, drv: Driver, index: int, num: int) -> None:
        self.drv, self.index, self.num = drv, index, num
        ram = drv.ram
        self.desc = ram.alloc(16 * num, 16)
        self.avail = ram.alloc(6 + 2 * num, 2)
        self.used = ram.alloc(6 + 8 * num, 4)
        self.free = list(range(num))
        self.avail_idx = 0
        self.last_used = 0

    def write_desc(self, table: int, i: int, addr: int, length: int, flags: int, nxt: int
                   ) -> None:
        self.drv.space.write(table + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))

    def add(self, bufs: list[tuple[int, int, bool]], indirect: bool = False) -> int:
        """Post a chain of (addr, len, device_writable) buffers; returns the head."""
        if indirect:
            table = self.drv.ram.alloc(16 * len(bufs), 16)
            for i, (addr, length, w) in enumerate(bufs):
                last = i == len(bufs) - 1
                flags = (VIRTQ_DESC_F_WRITE if w else 0) | (0 if last else VIRTQ_DESC_F_NEXT)
                self.write_desc(table, i, addr, length, flags, i + 1 if not last else 0)
            head = self.free.pop(0)
            self.write_desc(self.desc, head, table, 16 * len(bufs), VIRTQ_DESC_F_INDIRECT, 0)
        else:
            ids = [self.free.pop(0) for _ in bufs]
            for n, (i, (addr, length, w)) in enumerate(zip(ids, bufs, strict=True)):
                last = n == len(bufs) - 1
                flags = (VIRTQ_DESC_F_WRITE if w else 0) | (0 if last else VIRTQ_DESC_F_NEXT)
                self.write_desc(self.desc, i, addr, length, flags, 0 if last else ids[n + 1])
            head = ids[0]
        self.publish(head)
        return head

    def publish(self, head: int) -> None:
        sp = self.drv.space
        sp.write(self.avail + 4 + 2 * (self.avail_idx % self.num), struct.pack("<H", head))
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        sp.write(self.avail + 2, struct.pack("<H", self.avail_idx))

    def kick(self) -> None:
        self.drv.w32(r.QUEUE_NOTIFY, self.index)
        self.drv.settle()

    def used_idx(self) -> int:
        return struct.unpack("<H", self.drv.space.read(self.used + 2, 2))[0]

    def get_used(self) -> list[tuple[int, int]]:
        out = []
        while self.last_used != self.used_idx():
            slot = self.last_used % self.num
            out.append(struct.unpack("<II", self.drv.space.read(self.used + 4 + 8 * slot, 8)))
            self.last_used = (self.last_used + 1) & 0xFFFF
        return out

    def set_used_event(self, value: int) -> None:
        self.drv.space.write(self.avail + 4 + 2 * self.num, struct.pack("<H", value))

    def set_avail_flags(self, flags: int) -> None:
        self.drv.space.write(self.avail, struct.pack("<H", flags))


class Driver:
    def __init__(self, space: AddressSpace, base: int = MMIO_BASE) -> None:
        self.space = space
        self.base = base
        self.ram = GuestRAM(space)

    def r32(self, off: int) -> int:
        return self.space.load(self.base + off, 4)

    def settle(self) -> None:
        """Wait for requests a device runs on its I/O thread (virtio-blk) to complete,
        as a driver waiting for the interrupt would."""
        device = getattr(self.space.find(self.base).handler, "device", None)
        drain = getattr(device, "drain", None)
        if drain is not None:
            drain()

    def w32(self, off: int, value: int) -> None:
        self.space.store(self.base + off, 4, value)

    def config(self, off: int, size: int) -> int:
        return self.space.load(self.base + r.CONFIG + off, size)

    def device_features(self) -> int:
        self.w32(r.DEVICE_FEATURES_SEL, 0)
        lo = self.r32(r.DEVICE_FEATURES)
        self.w32(r.DEVICE_FEATURES_SEL, 1)
        return lo | self.r32(r.DEVICE_FEATURES) << 32

    def negotiate(self, want: int | None = None) -> int:
        """Reset, acknowledge, accept ``want`` (default: all offered); FEATURES_OK."""
        self.w32(r.STATUS, 0)
        self.w32(r.STATUS, STATUS_ACKNOWLEDGE)
        self.w32(r.STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER)
        offered = self.device_features()
        features = offered if want is None else want
        for sel in (0, 1):
            self.w32(r.DRIVER_FEATURES_SEL, sel)
            self.w32(r.DRIVER_FEATURES, (features >> (32 * sel)) & 0xFFFFFFFF)
        self.w32(r.STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK)
        return features

    def setup_queue(self, index: int, num: int | None = None) -> GuestQueue:
        self.w32(r.QUEUE_SEL, index)
        num = num or self.r32(r.QUEUE_NUM_MAX)
        q = GuestQueue(self, index, num)
        self.w32(r.QUEUE_NUM, num)
        for reg, addr in ((r.QUEUE_DESC_LOW, q.desc), (r.QUEUE_DRIVER_LOW, q.avail),
                          (r.QUEUE_DEVICE_LOW, q.used)):
            self.w32(reg, addr & 0xFFFFFFFF)
            self.w32(reg + 4, addr >> 32)
        self.w32(r.QUEUE_READY, 1)
        return q

    def driver_ok(self) -> None:
        self.w32(r.STATUS, self.r32(r.STATUS) | STATUS_DRIVER_OK)

    def bring_up(self, nqueues: int, want: int | None = None, num: int | None = None
                 ) -> list[GuestQueue]:
        self.negotiate(want)
        qs = [self.setup_queue(i, num) for i in range(nqueues)]
        self.driver_ok()
        return qs

    def ack_interrupts(self) -> int:
        status = self.r32(r.INTERRUPT_STATUS)
        self.w32(r.INTERRUPT_ACK, status)
        return status


MODERN = 1 << VIRTIO_F_VERSION_1
INDIRECT = 1 << VIRTIO_F_INDIRECT_DESC
EVENT_IDX = 1 << VIRTIO_F_EVENT_IDX
