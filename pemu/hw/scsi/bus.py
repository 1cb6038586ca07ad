"""A SCSI bus: the logical units of one controller by (channel, target, lun), and the
commands answered for a target rather than a unit (REPORT LUNS, a LUN that is not
there)."""

from __future__ import annotations

import struct

from pemu.hw.scsi import sense as K
from pemu.hw.scsi.buffers import clip, scatter
from pemu.hw.scsi.disk import ScsiDisk, ScsiResult

SCSI_BUS = "SCSI"  # the bus type name scsi-hd and scsi-cd plug into, as QEMU's
NO_LUN_INQUIRY = bytes([0x7F, 0, 5, 0x12, 31]) + bytes(31)  # qualifier 3: no unit here


def encode_lun(lun: int) -> bytes:
    """A LUN as REPORT LUNS lists it (SAM: peripheral or flat space addressing)."""
    if lun < 256:
        return bytes([0, lun]) + bytes(6)
    return bytes([0x40 | (lun >> 8), lun & 0xFF]) + bytes(6)


class ScsiBus:
    def __init__(self, name: str, max_target: int, max_lun: int) -> None:
        self.name = name
        self.max_target = max_target
        self.max_lun = max_lun
        self.units: dict[tuple[int, int, int], ScsiDisk] = {}

    def attach(self, unit: ScsiDisk, channel: int = 0, target: int | None = None,
               lun: int = 0) -> tuple[int, int, int]:
        if target is None:  # the first target with this LUN free
            target = next((t for t in range(self.max_target + 1)
                           if (channel, t, lun) not in self.units), None)
            if target is None:
                raise ValueError(f"no free SCSI target on {self.name}")
        if channel != 0 or not 0 <= target <= self.max_target or not 0 <= lun <= self.max_lun:
            raise ValueError(f"bad SCSI address channel={channel} scsi-id={target} "
                             f"lun={lun} on {self.name}")
        if (channel, target, lun) in self.units:
            raise ValueError(f"SCSI address {channel}:{target}:{lun} is in use")
        self.units[(channel, target, lun)] = unit
        return channel, target, lun

    def has_target(self, channel: int, target: int) -> bool:
        return any(c == channel and t == target for c, t, _ in self.units)

    def unit(self, channel: int, target: int, lun: int) -> ScsiDisk | None:
        return self.units.get((channel, target, lun))

    def execute(self, channel: int, target: int, lun: int, cdb: bytes,
                data_out: list[memoryview], data_in: list[memoryview]) -> ScsiResult:
        """Run ``cdb`` for the addressed unit (the target must exist)."""
        op = cdb[0] if cdb else -1
        if op == 0xA0:  # REPORT LUNS: answered by the target, whatever the LUN
            luns = sorted(u for c, t, u in self.units if (c, t) == (channel, target))
            body = b"".join(encode_lun(u) for u in luns)
            reply = struct.pack(">II", len(body), 0) + body
            alloc = int.from_bytes(cdb[6:10], "big")
            return ScsiResult(K.GOOD, scatter(clip(data_in, alloc), reply))
        unit = self.unit(channel, target, lun)
        if unit is not None:
            return unit.execute(cdb, data_out, data_in)
        if op == 0x12:
            return ScsiResult(K.GOOD, scatter(clip(data_in, cdb[4]), NO_LUN_INQUIRY))
        if op == 0x03:
            data = K.lun_not_supported().sense()
            return ScsiResult(K.GOOD, scatter(clip(data_in, cdb[4]), data))
        return ScsiResult(K.CHECK_CONDITION, 0, K.lun_not_supported().sense())
