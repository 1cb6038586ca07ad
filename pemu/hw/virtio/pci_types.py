"""The virtio-pci device types (``virtio-blk-pci``, ``virtio-net-pci``,
``virtio-rng-pci``, ``virtio-serial-pci``): each is its virtio-mmio twin's device model
(same factory, same properties) in a ``VirtioPCI`` function, plus the PCI properties.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.hw.pci.bus import PCI_BUS
from pemu.hw.pci.plug import PCI_PROPERTIES
from pemu.hw.virtio import (  # noqa: F401 - the types wrapped here
    balloon,
    blk,
    net,
    rng,
    scsi,
    serial_types,
    virtio_9p,
    vsock,
)
from pemu.hw.virtio.pci import VirtioPCI
from pemu.qom.registry import DEVICE, Property, RegistryError, TypeInfo, lookup, register

VIRTIO_PCI_PROPERTIES = (
    *PCI_PROPERTIES,
    Property("disable-legacy", "OnOffAuto", "on", "no legacy (virtio 0.9) interface",
             ("on",)),
    Property("disable-modern", "bool", "off", "no modern (virtio 1.x) interface", ("off",)),
    Property("vectors", "uint32", description="MSI-X vectors (default: queues + 1; 0: "
             "INTx only)"),
)


# QEMU's boot order for firmware that reads one (fw_cfg "bootorder", EDK2).  pemu
# loads -kernel/-bios itself and its firmware (OpenSBI) boots no device, so the
# order changes nothing, as on QEMU's virt board with OpenSBI; libvirt always sets it.
BOOTINDEX = Property("bootindex", "int32", description="firmware boot order (pemu's "
                     "firmware boots no device: no effect)")


def _factory(pci_name: str, inner: TypeInfo,
             default_vectors: int | None) -> Callable[..., VirtioPCI]:
    def create(ctx: object, opts: dict[str, str], name: str) -> VirtioPCI:
        vectors = default_vectors
        if "vectors" in opts:
            try:
                vectors = int(opts["vectors"], 0)
            except ValueError:
                raise RegistryError(f"Property '{pci_name}.vectors' expects a number, "
                                    f"not '{opts['vectors']}'") from None
            if not 0 <= vectors <= 2048:
                raise RegistryError(f"{pci_name}: vectors={vectors} (0..2048)")
        assert inner.factory is not None
        device = inner.factory(ctx, opts, name)
        space = ctx.board.space  # type: ignore[attr-defined]
        return VirtioPCI(space, device, vectors, id=name, type_name=pci_name)
    return create


def _declare(pci_name: str, device_name: str, description: str,
             extra: tuple[Property, ...] = (), default_vectors: int | None = None) -> TypeInfo:
    """``NAME-non-transitional`` is QEMU's name for the modern-only variant, which is
    what pemu's are (disable-legacy=on); management tools (libvirt) place virtio
    devices in PCIe slots only when the emulator lists those names."""
    inner = lookup(DEVICE, device_name)
    return register(TypeInfo(pci_name, DEVICE, description, bus=PCI_BUS,
                             properties=(*inner.properties, *VIRTIO_PCI_PROPERTIES, *extra),
                             aliases=(f"{pci_name}-non-transitional",),
                             factory=_factory(pci_name, inner, default_vectors)))


VIRTIO_BLK_PCI = _declare("virtio-blk-pci", "virtio-blk-device", "Virtio block device (PCI)",
                          (BOOTINDEX,))
VIRTIO_NET_PCI = _declare("virtio-net-pci", "virtio-net-device", "Virtio network device (PCI)",
                          (BOOTINDEX,))
VIRTIO_RNG_PCI = _declare("virtio-rng-pci", "virtio-rng-device",
                          "Virtio random number generator (PCI)")
VIRTIO_SERIAL_PCI = _declare("virtio-serial-pci", "virtio-serial-device",
                             "Virtio serial: multiport console (PCI)")
# QEMU's balloon has no MSI-X (no vectors property): INTx, and no BAR 1
VIRTIO_BALLOON_PCI = _declare("virtio-balloon-pci", "virtio-balloon-device",
                              "Virtio memory balloon (PCI)", default_vectors=0)
VIRTIO_VSOCK_PCI = _declare("virtio-vsock-pci", "virtio-vsock-device",
                            "Virtio vsock bridged to host UNIX sockets, no vhost (PCI)",
                            default_vectors=3)  # vhost-vsock-pci's default
VIRTIO_SCSI_PCI = _declare("virtio-scsi-pci", "virtio-scsi-device",
                           "Virtio SCSI host adapter (PCI)")
VIRTIO_9P_PCI = _declare("virtio-9p-pci", "virtio-9p-device", "Virtio 9p share (PCI)")
