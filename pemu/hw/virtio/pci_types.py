"""The virtio-pci device types (``virtio-blk-pci``, ``virtio-net-pci``,
``virtio-rng-pci``): each is its virtio-mmio twin's device model (same factory, same
properties) in a ``VirtioPCI`` function, plus the PCI properties.

virtio-serial-pci is not declared: QEMU's is the multiport virtio-serial bus, which
pemu does not have (its console is one port, hvc0, on virtio-mmio only).
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.hw.pci.bus import PCI_BUS
from pemu.hw.pci.plug import PCI_PROPERTIES
from pemu.hw.virtio import blk, net, rng, virtio_9p  # noqa: F401 - the device types wrapped here
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


def _factory(pci_name: str, inner: TypeInfo) -> Callable[..., VirtioPCI]:
    def create(ctx: object, opts: dict[str, str], name: str) -> VirtioPCI:
        vectors = None
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


def _declare(pci_name: str, device_name: str, description: str) -> TypeInfo:
    inner = lookup(DEVICE, device_name)
    return register(TypeInfo(pci_name, DEVICE, description, bus=PCI_BUS,
                             properties=(*inner.properties, *VIRTIO_PCI_PROPERTIES),
                             factory=_factory(pci_name, inner)))


VIRTIO_BLK_PCI = _declare("virtio-blk-pci", "virtio-blk-device", "Virtio block device (PCI)")
VIRTIO_NET_PCI = _declare("virtio-net-pci", "virtio-net-device", "Virtio network device (PCI)")
VIRTIO_RNG_PCI = _declare("virtio-rng-pci", "virtio-rng-device",
                          "Virtio random number generator (PCI)")
VIRTIO_9P_PCI = _declare("virtio-9p-pci", "virtio-9p-device", "Virtio 9p share (PCI)")
