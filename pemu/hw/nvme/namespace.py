"""A namespace: a block backend seen as LBAs, and the NVM command set on it.

``prepare`` checks a command and maps its data on the vCPU thread (cheap) and returns
the block work as a callable; the controller runs it on the drive's I/O thread
(``BlockBackend.submit``, as virtio-blk does), or inline for a backend without one.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from pemu.hw.nvme.prp import map_prps
from pemu.hw.nvme.spec import (
    INVALID_FIELD,
    INVALID_OPCODE,
    LBA_OUT_OF_RANGE,
    NS_WRITE_PROTECTED,
    NVM_DSM,
    NVM_FLUSH,
    NVM_READ,
    NVM_WRITE,
    NVM_WRITE_ZEROES,
    Command,
    NvmeError,
)
from pemu.hw.virtio.blk import BlockBackendLike
from pemu.memory.address_space import AddressSpace

DSM_RANGE = struct.Struct("<IIQ")  # context attributes, length in LBAs, starting LBA
DSM_DEALLOCATE = 1 << 2
DSM_MAX_RANGES = 256
WZ_DEALLOCATE = 1 << 25
FUA = 1 << 30

Work = Callable[[], None]


class Namespace:
    def __init__(self, backend: BlockBackendLike, nsid: int, block_size: int = 512) -> None:
        if block_size < 512 or block_size & (block_size - 1):
            raise ValueError("logical_block_size must be a power of 2 >= 512")
        self.backend = backend
        self.nsid = nsid
        self.block_size = block_size
        self.lba_shift = block_size.bit_length() - 1

    @property
    def blocks(self) -> int:
        return self.backend.size >> self.lba_shift

    def _range(self, slba: int, nlb: int) -> tuple[int, int]:
        if slba + nlb > self.blocks:
            raise NvmeError(LBA_OUT_OF_RANGE, f"LBA {slba}+{nlb} beyond {self.blocks}")
        return slba << self.lba_shift, nlb << self.lba_shift

    def _writable(self) -> None:
        if self.backend.read_only:
            raise NvmeError(NS_WRITE_PROTECTED, "read-only drive")

    def prepare(self, cmd: Command, space: AddressSpace, page: int, max_bytes: int) -> Work:
        be = self.backend
        op = cmd.opcode
        if op == NVM_FLUSH:
            return be.flush
        if op in (NVM_READ, NVM_WRITE, NVM_WRITE_ZEROES):
            slba = cmd.cdw10 | cmd.cdw11 << 32
            offset, length = self._range(slba, (cmd.cdw12 & 0xFFFF) + 1)
            if op == NVM_WRITE_ZEROES:
                self._writable()
                unmap = bool(cmd.cdw12 & WZ_DEALLOCATE)
                return lambda: be.write_zeroes(offset, length, may_unmap=unmap)
            if length > max_bytes:
                raise NvmeError(INVALID_FIELD, "transfer larger than MDTS")
            views = map_prps(space, cmd.prp1, cmd.prp2, length, page)
            if op == NVM_READ:
                return lambda: be.preadv(offset, views)
            self._writable()
            if cmd.cdw12 & FUA:
                def write_through() -> None:
                    be.pwritev(offset, views)
                    be.flush()
                return write_through
            return lambda: be.pwritev(offset, views)
        if op == NVM_DSM:
            return self._dsm(cmd, space, page)
        raise NvmeError(INVALID_OPCODE, f"I/O opcode {op:#x}")

    def _dsm(self, cmd: Command, space: AddressSpace, page: int) -> Work:
        count = (cmd.cdw10 & 0xFF) + 1
        raw = b"".join(bytes(v) for v in map_prps(space, cmd.prp1, cmd.prp2,
                                                  count * DSM_RANGE.size, page))
        if not cmd.cdw11 & DSM_DEALLOCATE:
            return lambda: None  # only hints (access frequency ...): nothing to do
        self._writable()
        ranges = []
        for i in range(count):
            _attrs, nlb, slba = DSM_RANGE.unpack_from(raw, i * DSM_RANGE.size)
            if nlb:
                ranges.append(self._range(slba, nlb))

        def deallocate() -> None:
            for offset, length in ranges:
                self.backend.discard(offset, length)
        return deallocate
