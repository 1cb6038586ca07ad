"""``-device scsi-hd`` and ``-device scsi-cd``, with QEMU's property names:
``drive=D[,bus=CTRL.0][,channel=0][,scsi-id=N][,lun=L][,serial=S]``.  ``bus=`` names the
controller (``virtio-scsi-pci,id=scsi0`` has the bus ``scsi0.0``); without it, the SCSI
controller declared last.  The unit goes onto that controller's ``scsi_bus``."""

from __future__ import annotations

from pemu.hw.scsi.bus import SCSI_BUS, ScsiBus
from pemu.hw.scsi.disk import ScsiDisk
from pemu.qom.registry import DEVICE, Property, RegistryError, TypeInfo, int_property, register


def controller_bus(ctx: object, driver: str, bus: str | None,
                   attr: str) -> tuple[object, int | None]:
    """The controller that ``bus=NAME.N`` names among the devices made so far (the
    last one with ``attr`` when ``bus`` is not given), and N.  A virtio-pci function
    stands for the virtio device inside it."""
    made = {n: getattr(d, "virtio", d) for n, d in getattr(ctx, "devices", {}).items()}
    controllers = {n: d for n, d in made.items() if hasattr(d, attr)}
    if bus is None:
        if not controllers:
            raise RegistryError(f"{driver}: no controller to plug it into")
        return list(controllers.values())[-1], None
    name, _, index = bus.rpartition(".")
    if not name or name not in controllers or not index.isdigit():
        raise RegistryError(f"{driver}: Bus '{bus}' not found")
    return controllers[name], int(index)


def _create(cdrom: bool):  # noqa: ANN202 - a factory
    driver = "scsi-cd" if cdrom else "scsi-hd"

    def create(ctx: object, opts: dict[str, str], name: str) -> ScsiDisk:
        ctrl, index = controller_bus(ctx, driver, opts.get("bus"), "scsi_bus")
        if index not in (None, 0):
            raise RegistryError(f"{driver}: Bus '{opts['bus']}' not found")
        bus: ScsiBus = ctrl.scsi_bus  # type: ignore[attr-defined]
        backend = ctx.take_drive(driver, opts.get("drive"))  # type: ignore[attr-defined]
        try:
            unit = ScsiDisk(backend, cdrom=cdrom, serial=opts.get("serial", ""),
                            block_size=int_property(driver, opts, "logical_block_size", 0)
                            or None, id=name)
            target = int_property(driver, opts, "scsi-id", -1)
            bus.attach(unit, int_property(driver, opts, "channel", 0),
                       None if target < 0 else target, int_property(driver, opts, "lun", 0))
        except ValueError as e:
            raise RegistryError(f"{driver}: {e}") from None
        return unit
    return create


_PROPERTIES = (
    Property("drive", "str", description="ID of the -drive that backs the unit"),
    Property("bus", "str", description="the controller's SCSI bus, CTRL.0 (default: the "
             "last SCSI controller)"),
    Property("channel", "uint32", "0", "SCSI channel (0)"),
    Property("scsi-id", "uint32", description="SCSI target (default: the first free one)"),
    Property("lun", "uint32", "0", "logical unit number"),
    Property("serial", "str", description="unit serial number (VPD page 0x80)"),
    Property("logical_block_size", "size", description="logical block size in bytes "
             "(512; 2048 for scsi-cd)"),
)

SCSI_HD = register(TypeInfo("scsi-hd", DEVICE, "virtual SCSI disk", bus=SCSI_BUS,
                            factory=_create(False), properties=_PROPERTIES))
SCSI_CD = register(TypeInfo("scsi-cd", DEVICE, "virtual SCSI CD-ROM", bus=SCSI_BUS,
                            factory=_create(True), properties=_PROPERTIES))
