"""``-device nvme`` and ``-device nvme-ns``, with QEMU's property names.

``nvme,serial=S[,drive=D]``: the controller; with ``drive=`` it gets namespace 1 on that
drive.  ``nvme-ns,drive=D[,nsid=N][,bus=CTRL]``: one more namespace on the controller
whose ``id`` is CTRL (QEMU names the controller's NVMe bus after its id); without
``bus=``, the controller declared last.
"""

from __future__ import annotations

from pemu.hw.nvme.controller import NvmeController
from pemu.hw.nvme.namespace import Namespace
from pemu.hw.pci.bus import PCI_BUS
from pemu.hw.pci.plug import PCI_PROPERTIES
from pemu.qom.registry import DEVICE, Property, RegistryError, TypeInfo, int_property, register

NVME_BUS = "nvme-bus"


def _namespace(ctx: object, driver: str, opts: dict[str, str], nsid: int) -> Namespace:
    block_size = int_property(driver, opts, "logical_block_size", 512)
    backend = ctx.take_drive(driver, opts.get("drive"))  # type: ignore[attr-defined]
    try:
        return Namespace(backend, nsid, block_size)
    except ValueError as e:
        raise RegistryError(f"{driver}: {e}") from None


def _create_controller(ctx: object, opts: dict[str, str], name: str) -> NvmeController:
    if not opts.get("serial"):
        raise RegistryError("nvme: 'serial' property is not set")
    space = ctx.board.space  # type: ignore[attr-defined]
    try:
        ctrl = NvmeController(space, opts["serial"],
                              max_ioqpairs=int_property("nvme", opts, "max_ioqpairs", 64),
                              msix_qsize=int_property("nvme", opts, "msix_qsize", 65),
                              mdts=int_property("nvme", opts, "mdts", 7), id=name)
    except ValueError as e:
        raise RegistryError(f"nvme: {e}") from None
    if opts.get("drive"):
        ctrl.attach(_namespace(ctx, "nvme", opts, 1))
    return ctrl


def _create_namespace(ctx: object, opts: dict[str, str], name: str) -> Namespace:
    # the controllers made so far (DeviceContext.devices), by id
    controllers = {n: d for n, d in getattr(ctx, "devices", {}).items()
                   if isinstance(d, NvmeController)}
    bus = opts.get("bus")
    if bus is not None and bus not in controllers:
        raise RegistryError(f"nvme-ns: Bus '{bus}' not found")
    if not controllers:
        raise RegistryError("nvme-ns: no nvme controller to plug it into")
    ctrl = controllers[bus] if bus is not None else list(controllers.values())[-1]
    nsid = int_property("nvme-ns", opts, "nsid", 0) or ctrl.free_nsid()
    ns = _namespace(ctx, "nvme-ns", opts, nsid)
    with ctrl.lock:
        try:
            ctrl.attach(ns)
        except ValueError as e:
            raise RegistryError(f"nvme-ns: {e}") from None
    return ns


_BLOCK_PROPERTIES = (
    Property("drive", "str", description="ID of the -drive that backs the namespace"),
    Property("logical_block_size", "size", "512", "logical block size in bytes"),
)

NVME = register(TypeInfo(
    "nvme", DEVICE, "Non-Volatile Memory Express", bus=PCI_BUS, factory=_create_controller,
    properties=(
        *PCI_PROPERTIES, *_BLOCK_PROPERTIES,
        Property("serial", "str", description="controller serial number (required)"),
        Property("max_ioqpairs", "uint32", "64", "I/O queue pairs the host may create"),
        Property("msix_qsize", "uint32", "65", "MSI-X vectors"),
        Property("mdts", "uint8", "7", "maximum data transfer size (2^mdts pages)"),
    )))

NVME_NS = register(TypeInfo(
    "nvme-ns", DEVICE, "Virtual NVMe namespace", bus=NVME_BUS, factory=_create_namespace,
    properties=(
        *_BLOCK_PROPERTIES,
        Property("bus", "str", description="the id of the nvme controller (default: the "
                 "last one)"),
        Property("nsid", "uint32", "0", "namespace id (0: the first free one)"),
    )))
