"""A SCSI logical unit on a block backend: ``scsi-hd`` (SBC) and ``scsi-cd`` (MMC).

``execute(cdb, data_out, data_in)`` runs one command to the end, block I/O included,
so a transport calls it on the drive's I/O thread (``BlockBackend.submit``).  Data moves
straight between the backend and the transport's memoryviews of guest RAM.  A failed
command is CHECK CONDITION with fixed sense, which the unit also keeps for a following
REQUEST SENSE (what ATAPI hosts ask; virtio-scsi gets it in the response).
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass

from pemu.hw.scsi import mmc
from pemu.hw.scsi import sense as K
from pemu.hw.scsi.buffers import clip, gather, scatter, total
from pemu.hw.scsi.sense import SenseError
from pemu.hw.virtio.blk import BlockBackendLike

TYPE_DISK = 0x00
TYPE_ROM = 0x05
CD_BLOCK = 2048
MAX_TRANSFER_BLOCKS = 0xFFFF  # what we advertise (VPD B0) and accept per command
MAX_UNMAP_DESCRIPTORS = 255
MAX_UNMAP_BLOCKS = 0xFFFFFFFF
VPD_PAGES_DISK = (0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2)
VPD_PAGES_CD = (0x00, 0x80, 0x83)

# (opcode) -> (LBA offset, LBA bytes, length offset, length bytes) of the R/W CDBs
_RW = {0x08: (1, 3, 4, 1), 0x28: (2, 4, 7, 2), 0xA8: (2, 4, 6, 4), 0x88: (2, 8, 10, 4),
       0x0A: (1, 3, 4, 1), 0x2A: (2, 4, 7, 2), 0xAA: (2, 4, 6, 4), 0x8A: (2, 8, 10, 4)}
_WRITES = {0x0A, 0x2A, 0xAA, 0x8A}
_NO_DATA_OK = {0x00, 0x1B, 0x1E, 0x2F, 0x8F}  # TEST UNIT READY, START STOP, PREVENT
# ALLOW MEDIUM REMOVAL, VERIFY(10/16): nothing to do for an emulated, always-ready unit


# a CDB's length by its opcode's group code (SPC: opcode bits 7:5); groups 3, 6 and 7
# (reserved, vendor) are checked by their handlers, which know none: invalid opcode
_GROUP_CDB_LEN = (6, 10, 10, 0, 16, 12, 0, 0)


@dataclass
class ScsiResult:
    status: int  # GOOD or CHECK_CONDITION
    data_in: int = 0  # bytes put into the initiator's buffers
    sense: bytes = b""


def _be(cdb: bytes, off: int, n: int) -> int:
    return int.from_bytes(cdb[off:off + n], "big")


class ScsiDisk:
    """One logical unit; ``cdrom`` picks the MMC personality (2 KiB blocks, read-only,
    removable, READ TOC & co.)."""

    def __init__(self, backend: BlockBackendLike, cdrom: bool = False, serial: str = "",
                 block_size: int | None = None, id: str | None = None) -> None:
        block_size = block_size or (CD_BLOCK if cdrom else 512)
        if block_size < 512 or block_size & (block_size - 1):
            raise ValueError("logical_block_size must be a power of 2 >= 512")
        self.backend = backend
        self.cdrom = cdrom
        self.block_size = block_size
        self.id = id
        self.serial = (serial or id or "pemu-scsi")[:20]
        self.pending_sense = b""
        self._error_reported = False

    @property
    def type_name(self) -> str:
        return "scsi-cd" if self.cdrom else "scsi-hd"

    @property
    def blocks(self) -> int:
        return self.backend.size // self.block_size

    @property
    def read_only(self) -> bool:
        return self.cdrom or self.backend.read_only

    # -- the entry point -----------------------------------------------------------------
    def execute(self, cdb: bytes, data_out: list[memoryview],
                data_in: list[memoryview]) -> ScsiResult:
        try:
            if not cdb:
                raise K.invalid_opcode()
            if cdb[0] == 0x03:  # REQUEST SENSE: the sense of the last failure, once
                data = self.pending_sense or K.fixed_sense(K.NO_SENSE, 0, 0)
                self.pending_sense = b""
                return ScsiResult(K.GOOD, scatter(clip(data_in, cdb[4] if len(cdb) > 4
                                                       else 18), data))
            if len(cdb) < _GROUP_CDB_LEN[cdb[0] >> 5]:  # shorter than its opcode's CDB
                raise K.invalid_field()
            written = self._dispatch(bytes(cdb), data_out, data_in)
        except SenseError as e:
            self.pending_sense = e.sense()
            return ScsiResult(K.CHECK_CONDITION, 0, self.pending_sense)
        self.pending_sense = b""
        return ScsiResult(K.GOOD, written)

    def _dispatch(self, cdb: bytes, data_out: list[memoryview],
                  data_in: list[memoryview]) -> int:
        op = cdb[0]
        if op in _RW:
            return self._read_write(cdb, data_out, data_in)
        if op in _NO_DATA_OK:
            return 0
        if op in (0x35, 0x91):  # SYNCHRONIZE CACHE (10/16)
            self._io(self.backend.flush, write=True)
            return 0
        if op == 0x12:
            return self._reply(data_in, self._inquiry(cdb), _be(cdb, 3, 2))
        if op == 0x25:  # READ CAPACITY(10)
            last = min(self.blocks - 1, 0xFFFFFFFF)
            return self._reply(data_in, struct.pack(">II", last, self.block_size), 8)
        if op == 0x9E and cdb[1] & 0x1F == 0x10 and not self.cdrom:  # READ CAPACITY(16)
            return self._reply(data_in, self._capacity16(), _be(cdb, 10, 4))
        if op in (0x1A, 0x5A):
            return self._mode_sense(cdb, data_in)
        if op == 0x42 and not self.cdrom:
            self._unmap(cdb, data_out)
            return 0
        if self.cdrom and op in mmc.COMMANDS:
            reply, alloc = mmc.COMMANDS[op](cdb, self.blocks)
            return self._reply(data_in, reply, alloc)
        raise K.invalid_opcode()

    @staticmethod
    def _reply(data_in: list[memoryview], data: bytes, alloc: int) -> int:
        return scatter(clip(data_in, alloc), data)

    # -- block I/O -------------------------------------------------------------------------
    def _io(self, fn, *args: object, write: bool) -> None:  # noqa: ANN001 - a backend method
        try:
            fn(*args)
        except SenseError:
            raise
        except Exception as e:  # noqa: BLE001 - a failing disk is sense data, not a crash
            if not self._error_reported:  # once: a failing disk must not flood stderr
                self._error_reported = True
                print(f"pemu: {self.type_name} {self.id or ''}: I/O error: {e}",
                      file=sys.stderr)
            raise K.write_error() if write else K.read_error() from None

    def _read_write(self, cdb: bytes, data_out: list[memoryview],
                    data_in: list[memoryview]) -> int:
        lba_off, lba_len, n_off, n_len = _RW[cdb[0]]
        if len(cdb) < n_off + n_len:
            raise K.invalid_field()
        lba = _be(cdb, lba_off, lba_len)
        count = _be(cdb, n_off, n_len)
        if lba_len == 3:  # the 6-byte CDBs: 21-bit LBA, 0 blocks means 256
            lba &= 0x1FFFFF
            count = count or 256
        if lba + count > self.blocks:
            raise K.lba_out_of_range()
        offset, length = lba * self.block_size, count * self.block_size
        write = cdb[0] in _WRITES
        bufs = data_out if write else data_in
        if write and self.read_only:
            raise K.write_protected()
        if total(bufs) < length:
            raise K.invalid_field()  # the initiator gave less room than it asked for
        if write:
            self._io(self.backend.pwritev, offset, clip(bufs, length), write=True)
            if cdb[1] & 0x08:  # FUA: the data must be on stable storage
                self._io(self.backend.flush, write=True)
            return 0
        if length:
            self._io(self.backend.preadv, offset, clip(bufs, length), write=False)
        return length

    def _unmap(self, cdb: bytes, data_out: list[memoryview]) -> None:
        if self.read_only:
            raise K.write_protected()
        plen = _be(cdb, 7, 2)
        param = gather(data_out, plen)
        if plen == 0:
            return
        if len(param) < 8 or plen < 8:
            raise K.parameter_list_error()
        desc_len = _be(param, 2, 2)
        if desc_len % 16 or 8 + desc_len > len(param) or desc_len // 16 > MAX_UNMAP_DESCRIPTORS:
            raise K.parameter_list_error()
        ranges = []
        for off in range(8, 8 + desc_len, 16):
            lba, count = struct.unpack_from(">QI", param, off)
            if lba + count > self.blocks:
                raise K.lba_out_of_range()
            if count:
                ranges.append((lba * self.block_size, count * self.block_size))
        for offset, length in ranges:
            self._io(self.backend.discard, offset, length, write=True)

    # -- data-in commands ----------------------------------------------------------------
    def _inquiry(self, cdb: bytes) -> bytes:
        ptype = TYPE_ROM if self.cdrom else TYPE_DISK
        if cdb[1] & 1:
            return self._vpd(cdb[2], ptype)
        if cdb[2]:
            raise K.invalid_field()  # a page code without EVPD
        product = b"QEMU CD-ROM" if self.cdrom else b"QEMU HARDDISK"
        return bytes([ptype, 0x80 if self.cdrom else 0, 5, 0x12, 31, 0, 0, 0x02]) + \
            b"QEMU".ljust(8) + product.ljust(16) + b"2.5+"

    def _vpd(self, page: int, ptype: int) -> bytes:
        pages = VPD_PAGES_CD if self.cdrom else VPD_PAGES_DISK
        if page not in pages:
            raise K.invalid_field()
        if page == 0x00:
            body = bytes(pages)
        elif page == 0x80:
            body = self.serial.encode()
        elif page == 0x83:  # one vendor-specific ASCII designator: the serial
            ident = self.serial.encode()
            body = bytes([0x02, 0x00, 0, len(ident)]) + ident
        elif page == 0xB0:  # block limits
            body = bytearray(0x3C)
            struct.pack_into(">HII", body, 2, 1, MAX_TRANSFER_BLOCKS, MAX_TRANSFER_BLOCKS)
            struct.pack_into(">III", body, 16, MAX_UNMAP_BLOCKS, MAX_UNMAP_DESCRIPTORS, 1)
            body = bytes(body)
        elif page == 0xB1:  # block device characteristics: not rotating
            body = bytes([0, 1]) + bytes(0x3A)
        else:  # 0xB2 logical block provisioning: UNMAP is supported
            body = bytes([0, 0x80, 0, 0])
        return bytes([ptype, page]) + len(body).to_bytes(2, "big") + body

    def _capacity16(self) -> bytes:
        return struct.pack(">QIBBH", self.blocks - 1, self.block_size, 0, 0,
                           0x8000) + bytes(20)  # LBPME: UNMAP works

    def _mode_pages(self, page: int, changeable: bool) -> bytes:
        """The mode pages asked for (0x3F: all we have)."""
        pages = {0x08: bytes([0x08, 0x12, 0x04]) + bytes(17),  # caching: WCE
                 0x0A: bytes([0x0A, 0x0A]) + bytes(10)}  # control
        if self.cdrom:
            pages.pop(0x08)
        if page == 0x3F:
            chosen = [pages[k] for k in sorted(pages)]
        elif page in pages:
            chosen = [pages[page]]
        else:
            raise K.invalid_field()
        if changeable:  # nothing can be changed
            chosen = [p[:2] + bytes(len(p) - 2) for p in chosen]
        return b"".join(chosen)

    def _mode_sense(self, cdb: bytes, data_in: list[memoryview]) -> int:
        ten = cdb[0] == 0x5A
        if len(cdb) < (10 if ten else 6):
            raise K.invalid_field()
        pc, page = cdb[2] >> 6, cdb[2] & 0x3F
        if pc == 3:
            raise SenseError(K.ILLEGAL_REQUEST, 0x39, 0x00, "saving not supported")
        body = self._mode_pages(page, pc == 1)
        blockdesc = b"" if cdb[1] & 0x08 else struct.pack(
            ">II", min(self.blocks, 0xFFFFFF), self.block_size & 0xFFFFFF)
        wp = 0x80 if self.read_only else 0
        if ten:
            length = 6 + len(blockdesc) + len(body)
            head = struct.pack(">HBBHH", length, 0, wp, 0, len(blockdesc))
            alloc = _be(cdb, 7, 2)
        else:
            length = 3 + len(blockdesc) + len(body)
            head = bytes([length, 0, wp, len(blockdesc)])
            alloc = cdb[4]
        return self._reply(data_in, head + blockdesc + body, alloc)
