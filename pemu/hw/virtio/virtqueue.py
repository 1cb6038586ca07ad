"""Split virtqueues (virtio 1.x, section 2.7), read and written in guest RAM.

Layout the driver sets up (all little-endian):
  descriptor table  16 bytes each: addr u64, len u32, flags u16, next u16
  available ring    flags u16, idx u16, ring[num] u16, used_event u16 (EVENT_IDX)
  used ring         flags u16, idx u16, ring[num] {id u32, len u32}, avail_event u16

Everything here is guest-controlled, so every index and address is checked.  A chain
that loops, leaves RAM, nests indirect tables, puts a readable buffer after a writable
one or is longer than the ring raises ``VirtqueueError``; the transport then marks the
device DEVICE_NEEDS_RESET and stops using it, and the VM keeps running.
Buffers are handed to devices as memoryviews of guest RAM so that block I/O can go
straight between the host file and the guest with preadv/pwritev.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from pemu.memory.address_space import AddressSpace, GuestMemoryError

VIRTQ_DESC_F_NEXT = 1
VIRTQ_DESC_F_WRITE = 2
VIRTQ_DESC_F_INDIRECT = 4
VIRTQ_AVAIL_F_NO_INTERRUPT = 1
VIRTQ_USED_F_NO_NOTIFY = 1

DESC_SIZE = 16
MAX_QUEUE_SIZE = 32768
# Longest chain we accept, direct or indirect (QEMU's VIRTQUEUE_MAX_SIZE).
MAX_CHAIN = 1024

_DESC = struct.Struct("<QIHH")
_U16 = struct.Struct("<H")
_USED_ELEM = struct.Struct("<II")


class VirtqueueError(Exception):
    """The driver broke the virtqueue rules; the device must go to NEEDS_RESET."""


@dataclass
class VirtqElement:
    """One popped descriptor chain: device-readable then device-writable buffers."""

    head: int
    out_bufs: list[memoryview] = field(default_factory=list)  # driver -> device
    in_bufs: list[memoryview] = field(default_factory=list)  # device -> driver

    @property
    def out_len(self) -> int:
        return sum(len(b) for b in self.out_bufs)

    @property
    def in_len(self) -> int:
        return sum(len(b) for b in self.in_bufs)

    def read_out(self, offset: int, size: int) -> bytes:
        """Gather ``size`` readable bytes from ``offset``; short if the chain is short."""
        out = bytearray()
        for buf in self.out_bufs:
            if offset >= len(buf):
                offset -= len(buf)
                continue
            take = buf[offset:offset + size - len(out)]
            out += take
            offset = 0
            if len(out) == size:
                break
        return bytes(out)

    def write_in(self, offset: int, data: bytes) -> int:
        """Scatter ``data`` into the writable buffers from ``offset``; returns bytes put."""
        done = 0
        for buf in self.in_bufs:
            if done == len(data):
                break
            if offset >= len(buf):
                offset -= len(buf)
                continue
            n = min(len(buf) - offset, len(data) - done)
            buf[offset:offset + n] = data[done:done + n]
            done += n
            offset = 0
        return done


def slice_bufs(bufs: list[memoryview], start: int, length: int) -> list[memoryview]:
    """The sub-range [start, start+length) of a scatter list, as views."""
    out = []
    for buf in bufs:
        if length <= 0:
            break
        if start >= len(buf):
            start -= len(buf)
            continue
        piece = buf[start:start + length]
        out.append(piece)
        length -= len(piece)
        start = 0
    return out


def vring_need_event(event_idx: int, new_idx: int, old_idx: int) -> bool:
    """True if ``event_idx`` lies in (old_idx, new_idx], modulo 2**16 (spec 2.7.10)."""
    return ((new_idx - event_idx - 1) & 0xFFFF) < ((new_idx - old_idx) & 0xFFFF)


class VirtQueue:
    """One split virtqueue as the device sees it."""

    def __init__(self, mem: AddressSpace, index: int, max_size: int) -> None:
        self.mem = mem
        self.index = index
        self.max_size = max_size
        self.event_idx = False
        self.indirect = False
        self.reset()

    def reset(self) -> None:
        self.num = self.max_size
        self.ready = False
        self.desc_addr = 0
        self.avail_addr = 0
        self.used_addr = 0
        self.last_avail_idx = 0
        self.used_idx = 0
        self.signalled_used = 0
        self.signalled_used_valid = False

    def check_layout(self) -> None:
        """Validate what the driver programmed before the queue goes live."""
        n = self.num
        if not (0 < n <= self.max_size and n & (n - 1) == 0):
            raise VirtqueueError(f"queue {self.index}: size {n} is not a power of 2 "
                                 f"in 1..{self.max_size}")
        if self.desc_addr % 16 or self.avail_addr % 2 or self.used_addr % 4:
            raise VirtqueueError(f"queue {self.index}: misaligned ring address")
        try:
            self.mem.view(self.desc_addr, DESC_SIZE * n)
            self.mem.view(self.avail_addr, 6 + 2 * n)
            self.mem.writable_view(self.used_addr, 6 + 8 * n)
        except GuestMemoryError as e:
            raise VirtqueueError(f"queue {self.index}: ring outside RAM ({e})") from None

    # -- guest memory accessors ------------------------------------------------------
    def _u16(self, addr: int) -> int:
        return _U16.unpack(self.mem.view(addr, 2))[0]

    def _put_u16(self, addr: int, value: int) -> None:
        _U16.pack_into(self.mem.writable_view(addr, 2), 0, value & 0xFFFF)

    def avail_idx(self) -> int:
        return self._u16(self.avail_addr + 2)

    def avail_flags(self) -> int:
        return self._u16(self.avail_addr)

    def used_event(self) -> int:
        return self._u16(self.avail_addr + 4 + 2 * self.num)

    def _set_avail_event(self, value: int) -> None:
        self._put_u16(self.used_addr + 4 + 8 * self.num, value)

    def set_no_notify(self, suppress: bool) -> None:
        """Ask the driver not to kick us (used while we are draining the queue)."""
        if self.event_idx:
            if not suppress:
                self._set_avail_event(self.avail_idx())
            return
        flags = self._u16(self.used_addr)
        flags = flags | VIRTQ_USED_F_NO_NOTIFY if suppress else flags & ~VIRTQ_USED_F_NO_NOTIFY
        self._put_u16(self.used_addr, flags)

    # -- consuming -----------------------------------------------------------------------
    def has_work(self) -> bool:
        return self.ready and self.avail_idx() != self.last_avail_idx

    def pop(self) -> VirtqElement | None:
        """The next available chain, or None.  Raises VirtqueueError if it is malformed."""
        if not self.ready:
            return None
        try:
            avail = self.avail_idx()
            pending = (avail - self.last_avail_idx) & 0xFFFF
            if pending == 0:
                return None
            if pending > self.num:
                raise VirtqueueError(f"queue {self.index}: driver moved avail idx by "
                                     f"{pending} with only {self.num} entries")
            slot = self.last_avail_idx % self.num
            head = self._u16(self.avail_addr + 4 + 2 * slot)
            elem = self._walk(head)
            self.last_avail_idx = (self.last_avail_idx + 1) & 0xFFFF
            if self.event_idx:
                self._set_avail_event(self.last_avail_idx)
            return elem
        except GuestMemoryError as e:
            raise VirtqueueError(f"queue {self.index}: {e}") from None

    def _read_desc(self, table: int, i: int) -> tuple[int, int, int, int]:
        return _DESC.unpack(self.mem.view(table + DESC_SIZE * i, DESC_SIZE))

    def _walk(self, head: int) -> VirtqElement:
        if head >= self.num:
            raise VirtqueueError(f"queue {self.index}: head {head} >= size {self.num}")
        elem = VirtqElement(head)
        table, table_size, i = self.desc_addr, self.num, head
        in_indirect = False
        seen = 0
        while True:
            addr, length, flags, nxt = self._read_desc(table, i)
            if flags & VIRTQ_DESC_F_INDIRECT:
                if in_indirect:
                    raise VirtqueueError(f"queue {self.index}: indirect table inside an "
                                         "indirect table")
                if not self.indirect:
                    raise VirtqueueError(f"queue {self.index}: indirect descriptor without "
                                         "VIRTIO_F_INDIRECT_DESC")
                if flags & VIRTQ_DESC_F_NEXT:
                    raise VirtqueueError(f"queue {self.index}: indirect descriptor with NEXT")
                if length == 0 or length % DESC_SIZE or length // DESC_SIZE > MAX_CHAIN:
                    raise VirtqueueError(f"queue {self.index}: bad indirect table length "
                                         f"{length}")
                self.mem.view(addr, length)  # the whole table must be RAM
                table, table_size, i = addr, length // DESC_SIZE, 0
                in_indirect = True
                seen = 0
                continue
            seen += 1
            if seen > min(table_size, MAX_CHAIN):
                raise VirtqueueError(f"queue {self.index}: descriptor chain loops or is "
                                     "longer than its table")
            if flags & VIRTQ_DESC_F_WRITE:
                elem.in_bufs.append(self.mem.writable_view(addr, length) if length
                                    else memoryview(bytearray()))
            elif elem.in_bufs:
                raise VirtqueueError(f"queue {self.index}: device-readable descriptor after "
                                     "a device-writable one")
            else:
                buf = self.mem.view(addr, length) if length else memoryview(b"")
                elem.out_bufs.append(buf.toreadonly())
            if not flags & VIRTQ_DESC_F_NEXT:
                return elem
            if nxt >= table_size:
                raise VirtqueueError(f"queue {self.index}: next {nxt} >= table size "
                                     f"{table_size}")
            i = nxt

    def unpop(self, count: int = 1) -> None:
        """Give back the last ``count`` popped chains, unused: a device that found too
        little room for a packet leaves the buffers to the next one."""
        self.last_avail_idx = (self.last_avail_idx - count) & 0xFFFF

    # -- completing -----------------------------------------------------------------------
    def push_batch(self, done: list[tuple[VirtqElement, int]]) -> None:
        """Return several chains at once: every used entry is written before the used
        index moves, so a driver never sees part of a packet spread over several
        buffers (virtio-net's mergeable receive buffers)."""
        try:
            for n, (elem, written) in enumerate(done):
                slot = (self.used_idx + n) % self.num
                _USED_ELEM.pack_into(self.mem.writable_view(self.used_addr + 4 + 8 * slot, 8), 0,
                                     elem.head, written)
            self.used_idx = (self.used_idx + len(done)) & 0xFFFF
            self._put_u16(self.used_addr + 2, self.used_idx)
        except GuestMemoryError as e:
            raise VirtqueueError(f"queue {self.index}: {e}") from None

    def push(self, elem: VirtqElement, written: int) -> None:
        """Return a chain to the driver with ``written`` bytes put in its buffers."""
        slot = self.used_idx % self.num
        try:
            _USED_ELEM.pack_into(self.mem.writable_view(self.used_addr + 4 + 8 * slot, 8), 0,
                                 elem.head, written)
            self.used_idx = (self.used_idx + 1) & 0xFFFF
            self._put_u16(self.used_addr + 2, self.used_idx)
        except GuestMemoryError as e:
            raise VirtqueueError(f"queue {self.index}: {e}") from None

    def should_notify(self) -> bool:
        """Whether the driver wants an interrupt for what we pushed since the last one."""
        if self.event_idx:
            old = self.signalled_used
            valid = self.signalled_used_valid
            self.signalled_used = self.used_idx
            self.signalled_used_valid = True
            return not valid or vring_need_event(self.used_event(), self.used_idx, old)
        return not self.avail_flags() & VIRTQ_AVAIL_F_NO_INTERRUPT

