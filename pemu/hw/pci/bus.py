"""A PCI bus: 32 slots of 8 functions.  The host's root bus is bus 0; a bridge (a
root port) owns the bus below it, numbered by the guest through the bridge's
secondary bus register."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pemu.hw.pci.address import MAX_SLOT, format_devfn
from pemu.hw.pci.config import SECONDARY_BUS

if TYPE_CHECKING:
    from pemu.hw.pci.device import PCIDevice
    from pemu.hw.pci.host import PCIHost


class PCIBusError(ValueError):
    """A plug the bus refuses (the message is for the user)."""


class PCIBus:
    def __init__(self, host: PCIHost | None, name: str, bridge: PCIDevice | None = None,
                 first_slot: int = 0, last_slot: int = MAX_SLOT, express: bool = False,
                 hotplug: bool = False) -> None:
        self._host = host
        self.name = name
        self.express = express  # devices plugged here become PCIe endpoints
        self.hotplug = hotplug  # device_add / device_del may plug here at run time
        self.bridge = bridge  # None: the root bus
        self.first_slot = first_slot
        self.last_slot = last_slot  # a root port's bus has one slot: 0
        self.devices: dict[int, PCIDevice] = {}
        # a hot-plug slot's power: off, its card neither answers config nor decodes
        self.powered = True

    @property
    def host(self) -> PCIHost:
        """The host bridge: a bridge's bus finds it through the bridge's own bus."""
        if self._host is not None:
            return self._host
        assert self.bridge is not None and self.bridge.bus is not None, "bridge not plugged"
        return self.bridge.bus.host

    @property
    def number(self) -> int:
        if self.bridge is None:
            return 0
        return self.bridge.config.get(SECONDARY_BUS, 1)

    def free_devfn(self) -> int:
        """The first slot with no device, function 0 (QEMU's automatic ``addr``)."""
        for slot in range(self.first_slot, self.last_slot + 1):
            if not any((slot << 3) | f in self.devices for f in range(8)):
                return slot << 3
        raise PCIBusError(f"PCI: no slot/function available on bus {self.name}")

    def check_free(self, devfn: int, multifunction: bool) -> None:
        slot = devfn >> 3
        if not self.first_slot <= slot <= self.last_slot:
            raise PCIBusError(f"PCI: slot {slot} is not valid on bus {self.name} (slots "
                              f"{self.first_slot}..{self.last_slot})")
        if devfn in self.devices:
            raise PCIBusError(f"PCI: slot {slot} function {devfn & 7} not available for "
                              f"the new device, in use by "
                              f"{self.devices[devfn].describe()}")
        fn0 = self.devices.get(slot << 3)
        others = [d for f, d in self.devices.items() if f >> 3 == slot]
        if devfn & 7 and fn0 is not None and not fn0.multifunction:
            raise PCIBusError(f"PCI: single function device can't be populated in "
                              f"function {format_devfn(devfn)}")
        if not devfn & 7 and others and not multifunction:
            raise PCIBusError(f"PCI: {format_devfn(devfn)}: function 0 must be "
                              "multifunction=on when other functions of its slot exist")

    def plug(self, device: PCIDevice, devfn: int | None = None,
             multifunction: bool = False) -> int:
        if devfn is None:
            devfn = self.free_devfn()
        self.check_free(devfn, multifunction)
        if self.express:
            device.make_express()
        device.set_multifunction(multifunction)
        device.bus = self
        device.devfn = devfn
        self.devices[devfn] = device
        self.host.remap()
        return devfn

    def unplug(self, device: PCIDevice) -> None:
        device.set_irq(False)
        self.devices.pop(device.devfn, None)
        device.bus = None
        self.host.remap()

    def find(self, devfn: int) -> PCIDevice | None:
        return self.devices.get(devfn)


PCI_BUS = "PCI"  # what PCI devices plug into (the registry's ``bus``), as QEMU names it
