"""The generic ECAM PCIe host bridge (QEMU's ``gpex``, Linux's pci-host-ecam-generic).

ECAM: 1 MiB of config space per bus, 4 KiB per function; offset = bus << 20 |
devfn << 12 | register.  The board maps ``ecam`` and one ``AddressWindow`` per CPU
window (``window(...)``), wires the four INTx lines and gives the address space that
bus master writes (MSI messages) go to.  INTx uses the standard swizzle: a device's
pin P in slot S drives host line (P + S) mod 4, and behind a bridge the bridge's slot
is added at each level on the way up.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from pemu.hw.core import IRQLine
from pemu.hw.pci import config as C
from pemu.hw.pci.bar import BAR_IO
from pemu.hw.pci.bus import PCIBus
from pemu.hw.pci.device import PCIDevice
from pemu.hw.pci.window import AddressWindow, BarMap
from pemu.memory.address_space import AddressSpace, GuestMemoryError

ECAM_BUS_SHIFT = 20
ECAM_DEVFN_SHIFT = 12
INTX_LINES = 4


class PCIeHostBridgeFunction(PCIDevice):
    """Function 00.0 of the root bus: QEMU's "PCIe Host bridge" (1b36:0008)."""

    device_id = 0x0008
    class_code = 0x060000
    type_name = "gpex-root"

    def describe(self) -> str:
        return "Host bridge"


class PCIHost:
    def __init__(self, dma: AddressSpace, intx: list[IRQLine], root_bus_name: str = "pcie.0",
                 ecam_buses: int = 256) -> None:
        if len(intx) != INTX_LINES:
            raise ValueError("the host bridge has 4 INTx lines")
        self.dma = dma
        self.intx = intx
        self.ecam_buses = ecam_buses
        self.lock = threading.RLock()  # topology, config space, the BAR maps
        # INTx levels change on I/O threads that hold a device's lock, while config
        # writes hold self.lock and then take the device's: a lock of their own.
        self._intx_lock = threading.Lock()
        self.io = BarMap()
        self.mem = BarMap()
        self._asserted: list[set[int]] = [set() for _ in range(INTX_LINES)]
        self.root_bus = PCIBus(self, root_bus_name)
        self.root_bus.plug(PCIeHostBridgeFunction())

    # -- the CPU's view: windows and ECAM -------------------------------------------------
    def window(self, space: str, bus_base: int) -> AddressWindow:
        """The MMIO handler of a CPU window onto bus addresses from ``bus_base``;
        ``space`` is "io" or "mem"."""
        return AddressWindow(self.io if space == "io" else self.mem, bus_base)

    @property
    def ecam(self) -> ECAM:
        return ECAM(self)

    # -- topology ---------------------------------------------------------------------------
    def buses(self) -> Iterator[PCIBus]:
        """Every bus, the root first, each bridge's bus after its parent."""
        todo = [self.root_bus]
        while todo:
            bus = todo.pop(0)
            yield bus
            for _, dev in sorted(bus.devices.items()):
                secondary = getattr(dev, "secondary", None)
                if secondary is not None:
                    todo.append(secondary)

    def devices(self) -> Iterator[PCIDevice]:
        for bus in self.buses():
            for _, dev in sorted(bus.devices.items()):
                yield dev

    def find_bus(self, name: str) -> PCIBus | None:
        return next((b for b in self.buses() if b.name == name), None)

    def find_device(self, bus_number: int, devfn: int) -> PCIDevice | None:
        if bus_number == 0:
            return self.root_bus.find(devfn)
        for bus in self.buses():
            # a bridge's bus answers only once the guest has numbered it
            if bus.bridge is not None and bus.number == bus_number:
                return bus.find(devfn) if bus.powered else None
        return None

    # -- config space ------------------------------------------------------------------------
    def config_read(self, bus_number: int, devfn: int, reg: int, size: int) -> int:
        with self.lock:
            dev = self.find_device(bus_number, devfn)
            if dev is None:
                return (1 << (8 * size)) - 1
            return dev.config_read(reg, size)

    def config_write(self, bus_number: int, devfn: int, reg: int, size: int,
                     value: int) -> None:
        with self.lock:
            dev = self.find_device(bus_number, devfn)
            if dev is not None:
                dev.config_write(reg, size, value)

    # -- BARs ----------------------------------------------------------------------------------
    def remap(self) -> None:
        """Rebuild the bus address maps from every BAR the guest has enabled."""
        with self.lock:
            io, mem = [], []
            for dev in self.devices():
                if not self._reachable(dev):
                    continue
                for bar, addr in dev.bar_mappings():
                    (io if bar.kind == BAR_IO else mem).append((addr, bar.size, bar.handler))
            self.io.rebuild(io)
            self.mem.rebuild(mem)

    @staticmethod
    def _reachable(dev: PCIDevice) -> bool:
        """Behind a bridge, a device decodes only when the bridges above forward
        (their own memory/I/O enable; their windows are not checked) and each slot on the
        way has power."""
        bus = dev.bus
        while bus is not None and bus.bridge is not None:
            if not bus.powered or not bus.bridge.command & (C.COMMAND_MEMORY | C.COMMAND_IO):
                return False
            bus = bus.bridge.bus
        return bus is not None

    # -- interrupts and bus mastering -----------------------------------------------------------
    def intx_line(self, dev: PCIDevice) -> int:
        pin = dev.interrupt_pin - 1
        node = dev
        while node.bus is not None and node.bus.bridge is not None:
            pin = (pin + node.slot) % INTX_LINES
            node = node.bus.bridge
        return (pin + node.slot) % INTX_LINES

    def set_intx(self, dev: PCIDevice, level: bool) -> None:
        with self._intx_lock:
            line = self.intx_line(dev)
            asserted = self._asserted[line]
            if level:
                asserted.add(id(dev))
            else:
                asserted.discard(id(dev))
            self.intx[line].set_level(bool(asserted))

    def bus_master_write(self, address: int, data: int) -> None:
        """A device's dword write to the system (an MSI message): to an interrupt
        controller's MMIO page, or RAM.  Nothing there: the write is dropped, as an
        unsupported request would be."""
        try:
            self.dma.store(address, 4, data)
        except GuestMemoryError:
            pass

    # -- reset ----------------------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            for dev in list(self.devices()):
                dev.reset()
            self.remap()


class ECAM:
    """The MMIO handler of the ECAM window."""

    def __init__(self, host: PCIHost) -> None:
        self.host = host

    def mmio_read(self, offset: int, size: int) -> int:
        bus, devfn, reg = (offset >> ECAM_BUS_SHIFT, (offset >> ECAM_DEVFN_SHIFT) & 0xFF,
                           offset & 0xFFF)
        return self.host.config_read(bus, devfn, reg, size)

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        bus, devfn, reg = (offset >> ECAM_BUS_SHIFT, (offset >> ECAM_DEVFN_SHIFT) & 0xFF,
                           offset & 0xFFF)
        self.host.config_write(bus, devfn, reg, size, value)
