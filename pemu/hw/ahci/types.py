"""``-device ich9-ahci`` (alias ``ahci``), ``ide-hd`` and ``ide-cd``, with QEMU's
property names.  A drive goes on ``bus=CTRL.N`` (port N of the AHCI controller whose
id is CTRL), or without ``bus=`` on the first free port of the controller declared
last.  ``ide-cd`` wants ``-drive media=cdrom`` (opened read-only)."""

from __future__ import annotations

from pemu.hw.ahci.ata import AtaDisk
from pemu.hw.ahci.atapi import AtapiCd
from pemu.hw.ahci.hba import AhciController
from pemu.hw.pci.bus import PCI_BUS
from pemu.hw.pci.plug import PCI_PROPERTIES
from pemu.hw.scsi.types import controller_bus
from pemu.qom.registry import DEVICE, Property, RegistryError, TypeInfo, register

IDE_BUS = "IDE"  # the bus type ide-hd and ide-cd plug into, as QEMU's


def _create_controller(ctx: object, opts: dict[str, str], name: str) -> AhciController:
    return AhciController(ctx.board.space, id=name)  # type: ignore[attr-defined]


def _create_drive(cdrom: bool):  # noqa: ANN202 - a factory
    driver = "ide-cd" if cdrom else "ide-hd"

    def create(ctx: object, opts: dict[str, str], name: str) -> AtaDisk | AtapiCd:
        ctrl, port = controller_bus(ctx, driver, opts.get("bus"), "ports")
        if opts.get("unit", "0") != "0":
            raise RegistryError(f"{driver}: unit={opts['unit']}: an AHCI port has one "
                                "device (unit 0)")
        backend = ctx.take_drive(driver, opts.get("drive"))  # type: ignore[attr-defined]
        kind = AtapiCd if cdrom else AtaDisk
        drive = kind(backend, serial=opts.get("serial", ""), id=name)
        try:
            ctrl.attach(drive, port)  # type: ignore[attr-defined]
        except ValueError as e:
            raise RegistryError(f"{driver}: {e}") from None
        return drive
    return create


AHCI = register(TypeInfo(
    "ich9-ahci", DEVICE, "ICH9 AHCI SATA controller", bus=PCI_BUS, aliases=("ahci",),
    factory=_create_controller, properties=PCI_PROPERTIES))

_DRIVE_PROPERTIES = (
    Property("drive", "str", description="ID of the -drive that backs the device"),
    Property("bus", "str", description="the AHCI port, CTRL.N (default: the first free "
             "port of the last AHCI controller)"),
    Property("unit", "uint32", "0", "device on the port (0)"),
    Property("serial", "str", description="serial number (IDENTIFY words 10-19)"),
)

IDE_HD = register(TypeInfo("ide-hd", DEVICE, "virtual IDE disk", bus=IDE_BUS,
                           factory=_create_drive(False), properties=_DRIVE_PROPERTIES))
IDE_CD = register(TypeInfo("ide-cd", DEVICE, "virtual IDE CD-ROM", bus=IDE_BUS,
                           factory=_create_drive(True), properties=_DRIVE_PROPERTIES))
