"""``ide-cd``: an ATAPI CD-ROM, whose packets are SCSI CDBs run by the shared SCSI
layer's MMC unit (pemu/hw/scsi) — one SCSI target, two transports (this and
virtio-scsi).

A packet that ends in CHECK CONDITION is an ATA error whose Error register carries the
sense key in its high nibble; the host then asks REQUEST SENSE (another packet), which
the unit answers with the sense it kept.
"""

from __future__ import annotations

from pemu.hw.ahci import identify
from pemu.hw.ahci.ata import ERROR_ABRT, NO_DATA_OK, AtaCommand, AtaError, TaskFile
from pemu.hw.ahci.regs import SIG_ATAPI
from pemu.hw.scsi.buffers import scatter
from pemu.hw.scsi.disk import ScsiDisk
from pemu.hw.scsi.sense import GOOD
from pemu.hw.virtio.blk import BlockBackendLike

CMD_PACKET = 0xA0
CMD_IDENTIFY_PACKET = 0xA1
CMD_IDENTIFY = 0xEC
# After reset an ATAPI device leaves DRDY clear (ATA8-ACS 9.12: the "packet" signature)
RESET_STATUS = 0x00


class AtapiCd:
    signature = SIG_ATAPI
    is_atapi = True
    reset_status = RESET_STATUS
    type_name = "ide-cd"

    def __init__(self, backend: BlockBackendLike, serial: str = "",
                 id: str | None = None) -> None:
        self.unit = ScsiDisk(backend, cdrom=True, serial=serial, id=id)
        self.backend = backend
        self.id = id
        self.serial = serial or "QM00003"

    def prepare(self, tf: TaskFile, acmd: bytes, bufs: list[memoryview],
                write: bool) -> AtaCommand:
        op = tf.command
        if op == CMD_IDENTIFY_PACKET:
            data = identify.packet_identify(self.serial)
            return AtaCommand(lambda: scatter(bufs, data), pio_in=True)
        if op == CMD_PACKET:
            return self._packet(bytes(acmd), bufs, write)
        if op in NO_DATA_OK:
            return AtaCommand(lambda: 0)
        # IDENTIFY DEVICE and every other ATA command: aborted (how a host learns that
        # this is a packet device)
        raise AtaError(why=f"ATA command {op:#x} on an ATAPI device")

    def _packet(self, cdb: bytes, bufs: list[memoryview], write: bool) -> AtaCommand:
        def run() -> int:
            result = self.unit.execute(cdb, bufs if write else [], [] if write else bufs)
            if result.status != GOOD:
                key = result.sense[2] & 0xF if len(result.sense) > 2 else 0
                raise AtaError(key << 4 | ERROR_ABRT, f"sense key {key:#x}")
            return result.data_in
        return AtaCommand(run, blocking=True)
