"""``-device``'s PCI properties (``bus=``, ``addr=``, ``multifunction=``), shared by
every PCI device type, and plugging a device by them."""

from __future__ import annotations

from pemu.hw.pci.address import parse_devfn
from pemu.hw.pci.bus import PCIBusError
from pemu.hw.pci.device import PCIDevice
from pemu.hw.pci.host import PCIHost
from pemu.qom.registry import Property

PCI_PROPERTIES = (
    Property("bus", "str", description="the PCI bus to plug into (default: the root bus, "
             "pcie.0; or a pcie-root-port's id)"),
    Property("addr", "str", description="slot and function, SLOT[.FN] in hex (default: "
             "the first free slot)"),
    Property("multifunction", "bool", "off", "set the multi-function bit of function 0",
             ("on", "off")),
)


def plug_device(host: PCIHost, device: PCIDevice, opts: dict[str, str]) -> int:
    """Plug ``device`` where ``opts`` say; returns its devfn.  PCIBusError (a
    ValueError) says why not."""
    bus_name = opts.get("bus") or host.root_bus.name
    bus = host.find_bus(bus_name)
    if bus is None:
        raise PCIBusError(f"Bus '{bus_name}' not found")
    devfn = parse_devfn(opts["addr"]) if opts.get("addr") else None
    return bus.plug(device, devfn, opts.get("multifunction", "off") == "on")
