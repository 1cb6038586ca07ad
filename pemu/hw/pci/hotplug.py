"""Hot-plug on a PCI host: QMP ``device_add`` puts a device into the empty slot of a
hot-plug capable bus (a pcie-root-port's), ``device_del`` asks the guest to let it
go.  The root bus is not hot-pluggable (QEMU's answer too)."""

from __future__ import annotations

from collections.abc import Callable

from pemu.hw.pci.bus import PCIBusError
from pemu.hw.pci.device import PCIDevice
from pemu.hw.pci.host import PCIHost
from pemu.hw.pci.root_port import PCIeRootPort


def hot_plug_port(host: PCIHost, bus_name: str | None) -> PCIeRootPort:
    """The root port whose empty slot ``bus=`` names; PCIBusError says why not."""
    name = bus_name or host.root_bus.name
    bus = host.find_bus(name)
    if bus is None:
        raise PCIBusError(f"Bus '{name}' not found")
    port = bus.bridge
    if not bus.hotplug or not isinstance(port, PCIeRootPort):
        raise PCIBusError(f"Bus '{name}' does not support hotplugging")
    if port.occupant is not None:
        raise PCIBusError(f"Bus '{name}': its slot is occupied by "
                          f"'{port.occupant.id or port.occupant.describe()}'")
    return port


def hot_plug(host: PCIHost, port: PCIeRootPort, device: PCIDevice) -> None:
    with host.lock:
        port.hot_plug(device)


def request_unplug(host: PCIHost, dev_id: str,
                   removed: Callable[[PCIDevice], None]) -> None:
    """Press the attention button of the slot holding ``dev_id``; ``removed`` runs
    once the guest has powered the slot off and the device is gone."""
    with host.lock:
        for dev in host.devices():
            if dev.id != dev_id:
                continue
            port = dev.bus.bridge if dev.bus is not None else None
            if not isinstance(port, PCIeRootPort):
                raise PCIBusError(f"Bus '{dev.bus.name if dev.bus else '?'}' does not "
                                  "support hotplugging")
            port.on_removed = removed
            port.request_unplug()
            return
    raise PCIBusError(f"Device '{dev_id}' not found")
