"""virtio-blk (spec 5.2): a block backend behind a request queue.

Request layout (the driver may split it over descriptors any way it likes):
  out: header {type u32, ioprio u32, sector u64} [+ data for writes / segments]
  in:  [data for reads / the 20-byte id] + status u8 (the very last writable byte)

Data moves with ``preadv``/``pwritev`` straight between the backend and memoryviews of
guest RAM.  A request that is well formed as a chain but wrong as a block request
(short header, beyond the end of the disk, write to a read-only disk) completes with
IOERR or UNSUPP; a backend error completes with IOERR.  Nothing here raises into the
vCPU loop.
"""

from __future__ import annotations

import struct
import sys
from typing import Protocol

from pemu.hw.virtio.device import VIRTIO_ID_BLOCK, VirtioDevice, bit
from pemu.hw.virtio.virtqueue import VirtqElement, VirtQueue, slice_bufs
from pemu.qom.registry import DEVICE, Property, RegistryError, TypeInfo, int_property, register

# Feature bits (spec 5.2.3)
VIRTIO_BLK_F_SIZE_MAX = 1
VIRTIO_BLK_F_SEG_MAX = 2
VIRTIO_BLK_F_RO = 5
VIRTIO_BLK_F_BLK_SIZE = 6
VIRTIO_BLK_F_FLUSH = 9
VIRTIO_BLK_F_DISCARD = 13
VIRTIO_BLK_F_WRITE_ZEROES = 14

# Request types
VIRTIO_BLK_T_IN = 0
VIRTIO_BLK_T_OUT = 1
VIRTIO_BLK_T_FLUSH = 4
VIRTIO_BLK_T_GET_ID = 8
VIRTIO_BLK_T_DISCARD = 11
VIRTIO_BLK_T_WRITE_ZEROES = 13

# Status values
VIRTIO_BLK_S_OK = 0
VIRTIO_BLK_S_IOERR = 1
VIRTIO_BLK_S_UNSUPP = 2

VIRTIO_BLK_ID_BYTES = 20
SECTOR = 512
WRITE_ZEROES_F_UNMAP = 1

_HEADER = struct.Struct("<IIQ")
_SEGMENT = struct.Struct("<QII")  # sector, num_sectors, flags
MAX_DISCARD_SECTORS = (1 << 22) - 1


class BlockBackendLike(Protocol):
    """The part of ``pemu.block.BlockBackend`` this device uses."""

    size: int
    read_only: bool

    def preadv(self, offset: int, bufs: list[memoryview]) -> int: ...

    def pwritev(self, offset: int, bufs: list[memoryview]) -> int: ...

    def flush(self) -> None: ...

    def discard(self, offset: int, length: int) -> None: ...

    def write_zeroes(self, offset: int, length: int, may_unmap: bool = False) -> None: ...


class _RequestFailed(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


class VirtioBlk(VirtioDevice):
    """``VirtioBlk(backend, serial="", logical_block_size=512, queue_size=256)``."""

    device_id = VIRTIO_ID_BLOCK
    num_queues = 1
    type_name = "virtio-blk-device"

    def __init__(self, backend: BlockBackendLike, serial: str = "",
                 logical_block_size: int = 512, queue_size: int = 256,
                 max_discard_seg: int = 1, id: str | None = None) -> None:
        super().__init__(id)
        if logical_block_size < SECTOR or logical_block_size & (logical_block_size - 1):
            raise ValueError("logical_block_size must be a power of 2 >= 512")
        self.backend = backend
        self.serial = serial.encode()[:VIRTIO_BLK_ID_BYTES]
        self.block_size = logical_block_size
        self.queue_size = queue_size
        self.max_discard_seg = max_discard_seg
        self._error_reported = False
        # Requests run on the drive's I/O thread when the backend offers one, so the vCPU
        # that kicked the queue goes straight back to the guest.  A reset bumps the
        # generation: completions of requests from before it are dropped.
        self._async = callable(getattr(backend, "submit", None))

    @property
    def capacity_sectors(self) -> int:
        return self.backend.size // SECTOR

    def device_features(self) -> int:
        f = (bit(VIRTIO_BLK_F_SEG_MAX) | bit(VIRTIO_BLK_F_BLK_SIZE) | bit(VIRTIO_BLK_F_FLUSH)
             | bit(VIRTIO_BLK_F_DISCARD) | bit(VIRTIO_BLK_F_WRITE_ZEROES))
        if self.backend.read_only:
            f |= bit(VIRTIO_BLK_F_RO)
        return f

    def config_bytes(self) -> bytes:
        align = self.block_size // SECTOR
        return struct.pack(
            "<QII HBB I BBHI BBH III II B3x",
            self.capacity_sectors,
            0,  # size_max (feature not offered)
            self.queue_size - 2,  # seg_max: room for header and status
            0, 0, 0,  # geometry (not offered)
            self.block_size,
            0, 0, 0, 0,  # topology (not offered)
            1, 0, 1,  # writeback, unused, num_queues
            MAX_DISCARD_SECTORS, self.max_discard_seg, align,
            MAX_DISCARD_SECTORS, 1,
            1,  # write_zeroes_may_unmap
        )

    def notify_resized(self) -> None:
        """The backend grew or shrank (block_resize): tell the driver."""
        self.config_changed()

    # -- requests -------------------------------------------------------------------
    def queue_notified(self, vq: VirtQueue) -> None:
        while (elem := vq.pop()) is not None:
            if self._async:
                self.backend.submit(lambda e=elem: self._handle(e),
                                    self.completion_for(vq, elem))
            else:
                self.complete(vq, elem, self._handle(elem))

    def drain(self) -> None:
        """Wait until every submitted request has completed (reset, migration, tests)."""
        if self._async:
            self.backend.drain()

    def _handle(self, elem: VirtqElement) -> int:
        """Run one request; returns how many bytes went into the driver's buffers."""
        if elem.in_len < 1:
            # No place for a status byte: we can only hand the chain back untouched.
            return 0
        data_in = slice_bufs(elem.in_bufs, 0, elem.in_len - 1)
        status = VIRTIO_BLK_S_OK
        written = 0
        try:
            header = elem.read_out(0, _HEADER.size)
            if len(header) < _HEADER.size:
                raise _RequestFailed(VIRTIO_BLK_S_IOERR, "request header too short")
            rtype, _ioprio, sector = _HEADER.unpack(header)
            written = self._dispatch(rtype, sector, elem, data_in)
        except _RequestFailed as e:
            status = e.status
            written = 0
        except Exception as e:  # noqa: BLE001 - a backend failure must not kill the VM
            status = VIRTIO_BLK_S_IOERR
            written = 0
            if not self._error_reported:
                self._error_reported = True
                print(f"pemu: virtio-blk {self.id or ''}: I/O error: {e}", file=sys.stderr)
        elem.write_in(elem.in_len - 1, bytes((status,)))
        return written + 1

    def _dispatch(self, rtype: int, sector: int, elem: VirtqElement,
                  data_in: list[memoryview]) -> int:
        if rtype == VIRTIO_BLK_T_IN:
            length = sum(len(b) for b in data_in)
            offset = self._check_range(sector, length)
            self.backend.preadv(offset, data_in)
            return length
        if rtype == VIRTIO_BLK_T_OUT:
            if self.backend.read_only:
                raise _RequestFailed(VIRTIO_BLK_S_IOERR, "write to read-only disk")
            data_out = slice_bufs(elem.out_bufs, _HEADER.size, elem.out_len - _HEADER.size)
            length = sum(len(b) for b in data_out)
            offset = self._check_range(sector, length)
            self.backend.pwritev(offset, data_out)
            return 0
        if rtype == VIRTIO_BLK_T_FLUSH:
            self.backend.flush()
            return 0
        if rtype == VIRTIO_BLK_T_GET_ID:
            ident = self.serial.ljust(VIRTIO_BLK_ID_BYTES, b"\0")
            n = min(VIRTIO_BLK_ID_BYTES, sum(len(b) for b in data_in))
            put = 0
            for buf in data_in:
                take = min(len(buf), n - put)
                buf[:take] = ident[put:put + take]
                put += take
            return put
        if rtype in (VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES):
            self._segments(rtype, elem)
            return 0
        raise _RequestFailed(VIRTIO_BLK_S_UNSUPP, f"request type {rtype}")

    def _check_range(self, sector: int, length: int) -> int:
        if length % SECTOR:
            raise _RequestFailed(VIRTIO_BLK_S_IOERR, "length not a multiple of 512")
        offset = sector * SECTOR
        if offset + length > self.capacity_sectors * SECTOR:
            raise _RequestFailed(VIRTIO_BLK_S_IOERR, "beyond the end of the disk")
        return offset

    def _segments(self, rtype: int, elem: VirtqElement) -> None:
        payload = elem.out_len - _HEADER.size
        discard = rtype == VIRTIO_BLK_T_DISCARD
        max_seg = self.max_discard_seg if discard else 1
        if payload <= 0 or payload % _SEGMENT.size or payload // _SEGMENT.size > max_seg:
            raise _RequestFailed(VIRTIO_BLK_S_UNSUPP, "bad discard/write-zeroes payload")
        if self.backend.read_only:
            raise _RequestFailed(VIRTIO_BLK_S_IOERR, "read-only disk")
        segments = []
        for i in range(payload // _SEGMENT.size):
            raw = elem.read_out(_HEADER.size + i * _SEGMENT.size, _SEGMENT.size)
            sector, count, flags = _SEGMENT.unpack(raw)
            allowed = 0 if discard else WRITE_ZEROES_F_UNMAP
            if flags & ~allowed:
                raise _RequestFailed(VIRTIO_BLK_S_UNSUPP, "unknown segment flags")
            if count > MAX_DISCARD_SECTORS:
                raise _RequestFailed(VIRTIO_BLK_S_IOERR, "segment too large")
            if (sector * SECTOR) % self.block_size or (count * SECTOR) % self.block_size:
                raise _RequestFailed(VIRTIO_BLK_S_IOERR, "segment not block aligned")
            segments.append((self._check_range(sector, count * SECTOR), count * SECTOR,
                             bool(flags & WRITE_ZEROES_F_UNMAP)))
        for offset, length, unmap in segments:
            if discard:
                self.backend.discard(offset, length)
            else:
                self.backend.write_zeroes(offset, length, may_unmap=unmap)


def _create(ctx: object, opts: dict[str, str], name: str) -> VirtioBlk:
    driver = "virtio-blk-device"
    block_size = int_property(driver, opts, "logical_block_size", SECTOR)
    queue_size = int_property(driver, opts, "queue-size", 256)
    backend = ctx.take_drive(driver, opts.get("drive"))  # type: ignore[attr-defined]
    try:
        return VirtioBlk(backend, serial=opts.get("serial", ""),
                         logical_block_size=block_size, queue_size=queue_size, id=name)
    except ValueError as e:
        raise RegistryError(f"{driver}: {e}") from None


register(TypeInfo(
    "virtio-blk-device", DEVICE, "Virtio block device", bus="virtio-bus", factory=_create,
    properties=(
        Property("drive", "str", description="ID of the -drive that backs the disk"),
        Property("serial", "str", description="disk serial number (20 bytes at most)"),
        Property("logical_block_size", "size", "512", "logical block size in bytes"),
        Property("queue-size", "uint16", "256", "descriptors per virtqueue"),
    )))
