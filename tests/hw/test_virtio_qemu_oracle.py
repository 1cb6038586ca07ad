"""virtio-mmio + virtio-rng against QEMU's, driven by the same bare-metal driver script.

The script (built here as a list of MMIO/RAM accesses) brings the device up as Linux
does, completes requests, and then breaks the rules in several ways; after each broken
chain both QEMU and pemu must show DEVICE_NEEDS_RESET, a config interrupt and a new
config generation, and must work again after a reset.  QEMU completes virtio-rng
requests asynchronously, so the script waits (POLL) for used-ring and status changes.
"""

from __future__ import annotations

import pytest
from riscv_probe import POLL, READ, WRITE, missing_tools, run_on_qemu

from pemu.hw.core import IRQLine
from pemu.hw.virtio import mmio as r
from pemu.hw.virtio.rng import VirtioRng
from pemu.hw.virtio.virtqueue import VIRTQ_DESC_F_NEXT as NEXT
from pemu.hw.virtio.virtqueue import VIRTQ_DESC_F_WRITE as WR
from pemu.memory.address_space import AddressSpace

pytestmark = pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))

SLOT = 0x10008000  # QEMU puts the first virtio-mmio device in the last of the 8 slots
DESC, AVAIL, USED, BUF = 0x80200000, 0x80201000, 0x80202000, 0x80203000
QSIZE = 8
VERSION_1, INDIRECT, EVENT_IDX = 1 << 32, 1 << 28, 1 << 29


class Script:
    """Emits the accesses a small virtio driver makes."""

    def __init__(self) -> None:
        self.ops: list[tuple[int, ...]] = []
        self.avail_idx = 0
        self.used_seen = 0

    def w(self, addr: int, value: int) -> None:
        self.ops.append((WRITE, 4, addr, value & 0xFFFFFFFF))

    def r(self, addr: int, compare_mask: int = 0xFFFFFFFF) -> None:
        self.ops.append((READ, 4, addr, 0, compare_mask))

    def poll(self, addr: int, value: int, mask: int) -> None:
        self.ops.append((POLL, 4, addr, value, mask))

    def reg_w(self, off: int, value: int) -> None:
        self.w(SLOT + off, value)

    def reg_r(self, *offs: int) -> None:
        for off in offs:
            self.r(SLOT + off)

    def bring_up(self, features: int) -> None:
        self.reg_w(r.STATUS, 0)
        self.reg_r(r.STATUS, r.INTERRUPT_STATUS)
        for status in (1, 3):
            self.reg_w(r.STATUS, status)
        for sel in (0, 1):
            self.reg_w(r.DRIVER_FEATURES_SEL, sel)
            self.reg_w(r.DRIVER_FEATURES, features >> (32 * sel))
        self.reg_w(r.STATUS, 0x0B)
        self.reg_r(r.STATUS)
        for addr in range(DESC, BUF, 4):  # fresh rings
            if addr % 0x1000 < 0x100:
                self.w(addr, 0)
        self.reg_w(r.QUEUE_SEL, 0)
        # (QueueNumMax differs by design: QEMU's virtio-mmio always reports 1024.)
        self.reg_r(r.QUEUE_READY)
        self.reg_w(r.QUEUE_NUM, QSIZE)
        for reg, addr in ((r.QUEUE_DESC_LOW, DESC), (r.QUEUE_DRIVER_LOW, AVAIL),
                          (r.QUEUE_DEVICE_LOW, USED)):
            self.reg_w(reg, addr)
            self.reg_w(reg + 4, addr >> 32)
        self.reg_w(r.QUEUE_READY, 1)
        self.reg_r(r.QUEUE_READY)
        self.reg_w(r.STATUS, 0x0F)
        self.reg_r(r.STATUS)
        self.avail_idx = 0
        self.used_seen = 0

    def desc(self, i: int, addr: int, length: int, flags: int, nxt: int = 0) -> None:
        base = DESC + 16 * i
        self.w(base, addr)
        self.w(base + 4, addr >> 32)
        self.w(base + 8, length)
        self.w(base + 12, flags | nxt << 16)

    def publish(self, head: int) -> None:
        slot = self.avail_idx % QSIZE
        word = AVAIL + 4 + 2 * (slot & ~1)
        # Ring entries are u16 pairs; rewrite the pair (the other half is never live).
        self.w(word, head << 16 if slot & 1 else head)
        self.avail_idx += 1
        self.w(AVAIL, self.avail_idx << 16)  # flags 0, idx
        self.reg_w(r.QUEUE_NOTIFY, 0)

    def expect_completion(self) -> None:
        self.used_seen += 1
        self.poll(USED, self.used_seen << 16, 0xFFFF0000)
        slot = (self.used_seen - 1) % QSIZE
        self.r(USED + 4 + 8 * slot)  # id
        self.r(USED + 8 + 8 * slot)  # len
        self.reg_r(r.INTERRUPT_STATUS)
        self.reg_w(r.INTERRUPT_ACK, 1)
        self.reg_r(r.INTERRUPT_STATUS)

    def expect_broken(self) -> None:
        self.poll(SLOT + r.STATUS, 0x40, 0x40)
        # Only the config-change bit: QEMU also raises a spurious used-buffer bit here
        # (virtio-rng notifies after a failed pop), which pemu does not.
        self.r(SLOT + r.INTERRUPT_STATUS, compare_mask=r.INT_CONFIG_CHANGE)
        self.reg_r(r.CONFIG_GENERATION)
        self.reg_w(r.INTERRUPT_ACK, 3)


def build_script() -> list[tuple[int, ...]]:
    s = Script()
    s.reg_r(r.MAGIC_VALUE, r.VERSION, r.DEVICE_ID, r.VENDOR_ID, r.CONFIG_GENERATION)
    s.bring_up(VERSION_1 | INDIRECT)
    for n in range(3):  # good requests, direct and (last) indirect
        if n < 2:
            s.desc(n, BUF + 0x100 * n, 16, WR)
            s.publish(n)
        else:
            table = BUF + 0x800
            for i, (addr, length) in enumerate(((BUF, 8), (BUF + 0x40, 24))):
                base = table + 16 * i
                s.w(base, addr)
                s.w(base + 4, 0)
                s.w(base + 8, length)
                s.w(base + 12, WR | (NEXT if i == 0 else 0) | (1 << 16 if i == 0 else 0))
            s.desc(2, table, 32, 4)  # VIRTQ_DESC_F_INDIRECT
            s.publish(2)
        s.expect_completion()

    # (A buffer outside guest memory is left out: QEMU bounces the DMA to unassigned
    # space and completes the request; pemu marks the device broken, as the spec allows.)
    broken_chains = [
        [(0, BUF, 4, WR | NEXT, 1), (1, BUF, 4, WR | NEXT, 0)],  # a loop
        [(0, BUF, 4, WR | NEXT, 100)],  # next beyond the ring
        [(0, BUF, 4, WR | NEXT, 1), (1, BUF + 8, 4, 0, 0)],  # readable after writable
    ]
    for chain in broken_chains:
        s.bring_up(VERSION_1 | INDIRECT)
        for i, addr, length, flags, nxt in chain:
            s.desc(i, addr, length, flags, nxt)
        s.publish(0)
        s.expect_broken()
    # A driver that moves the avail index too far.
    s.bring_up(VERSION_1)
    s.w(AVAIL, 100 << 16)
    s.reg_w(r.QUEUE_NOTIFY, 0)
    s.expect_broken()
    # After a reset all is well again, now with EVENT_IDX.
    s.bring_up(VERSION_1 | EVENT_IDX)
    s.desc(0, BUF, 16, WR)
    s.publish(0)
    s.expect_completion()
    s.r(USED + 4 + 8 * QSIZE)  # avail_event written by the device
    s.reg_w(r.STATUS, 0)
    s.reg_r(r.STATUS, r.INTERRUPT_STATUS)
    return s.ops


def run_on_model(ops):
    space = AddressSpace()
    space.add_ram("ram", 0x80000000, 4 << 20)
    transport = r.VirtioMMIO(space, VirtioRng(), IRQLine())
    space.add_mmio("virtio7", SLOT, r.REGION_SIZE, transport)
    reads = []
    for op in ops:
        kind, size, addr, value = op[:4]
        if kind == WRITE:
            space.store(addr, size, value)
        else:
            reads.append(space.load(addr, size))
    return reads


def test_virtio_rng_transport_matches_qemu(tmp_path, capsys):
    ops = build_script()
    ours = run_on_model(ops)
    capsys.readouterr()  # our one-line error reports for the broken chains
    _, theirs = run_on_qemu(ops, tmp_path, ["-global", "virtio-mmio.force-legacy=false",
                                            "-device", "virtio-rng-device"])
    reads = [op for op in ops if op[0] != WRITE]
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        mask = reads[i][4] if reads[i][0] == READ else 0xFFFFFFFF
        assert a & mask == b & mask, (
            f"read #{i} at 0x{reads[i][2]:x}: pemu 0x{a:x}, QEMU 0x{b:x}")
