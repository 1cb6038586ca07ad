"""Which -device entries hold a drive that query-block lists, besides virtio-blk (whose
drive the transports expose): the NVMe, ATA and SCSI units, named as QEMU names them.

QEMU's ``qdev`` of such a drive is the device's id when it has one, else its QOM path
under /machine/peripheral-anon, numbered over every -device without an id in command
line order.  CDs are removable (QMP adds their tray); NVMe keeps no I/O status.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

# driver -> (removable, io-status): checked against QEMU 7.2's query-block
# (a -drive if=none that no device holds is removable and has no I/O status there)
UNATTACHED = (True, False)
VIRTIO_DISK = (False, True)  # virtio-blk (its drives are found through the transports)
STORAGE_UNITS: dict[str, tuple[bool, bool]] = {
    "nvme": (False, False), "nvme-ns": (False, False),
    "ide-hd": (False, True), "ide-cd": (True, True),
    "scsi-hd": (False, True), "scsi-cd": (True, True),
}


@dataclass(frozen=True)
class StorageUnit:
    drive_id: str
    backend: object
    qdev: str
    removable: bool
    io_status: bool


def storage_units(devices: Sequence[Mapping[str, str]],
                  opened: Mapping[str, object]) -> Iterator[StorageUnit]:
    """The units of ``devices`` (the -device options, in order) whose drive a device
    opened (``opened``: drive id -> BlockBackend)."""
    anonymous = 0
    for dev in devices:
        qdev = dev.get("id")
        if not qdev:
            qdev = f"/machine/peripheral-anon/device[{anonymous}]"
            anonymous += 1
        kind = STORAGE_UNITS.get(dev.get("driver", ""))
        drive = dev.get("drive")
        if kind is None or not drive or opened.get(drive) is None:
            continue
        yield StorageUnit(drive, opened[drive], qdev, *kind)


def unit_qdev(driver: str, dev_id: str) -> str:
    """QMP's ``qdev`` of a drive held by the device ``dev_id``: QEMU names the device
    that owns the BlockBackend, which for virtio-blk is the id-less virtio device
    inside the transport (libvirt looks disks up by this)."""
    return (f"/machine/peripheral/{dev_id}/virtio-backend" if driver.startswith("virtio-")
            else dev_id)
