"""``PCIDevice``: one PCI function, what every PCI device model subclasses.

A subclass sets its identity (class attributes ``vendor_id`` ... ``class_code``), then in
``__init__`` declares its BARs (``add_bar``), capabilities (``caps.add``, ``add_msi``,
``add_msix``, ``add_pcie_endpoint``) and interrupt pin.  The bus it is plugged into
(``PCIBus.plug``) gives it ``bus`` and ``devfn``; from then on:

* config writes that touch BARs or the command register remap the device's BARs in
  the host's address windows (``bus.host.remap``);
* ``set_irq(level)`` drives INTx, routed through the swizzle to the host's lines;
* ``msi_notify``/``msix.notify`` send messages as bus master writes (``dma_write``);
  with the Bus Master bit off nothing is sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pemu.hw.core import Device, VMState
from pemu.hw.pci import config as C
from pemu.hw.pci.bar import BAR_MEM64, Bar
from pemu.hw.pci.capability import CapabilityAllocator
from pemu.hw.pci.config import ConfigSpace, overlaps
from pemu.hw.pci.function_state import PCI_FUNCTION_FIELDS, PCIFunctionState
from pemu.hw.pci.msi import MSI
from pemu.hw.pci.msix import MSIX
from pemu.hw.pci.pcie import add_pcie_capability
from pemu.memory.address_space import MMIOHandler

if TYPE_CHECKING:
    from pemu.hw.pci.bus import PCIBus

PIN_NAMES = ("", "A", "B", "C", "D")


class PCIDevice(PCIFunctionState, Device):
    vendor_id = 0x1B36  # Red Hat / QEMU's own devices
    device_id = 0
    revision = 0
    class_code = 0xFF0000  # base class, subclass, prog-if
    subsystem_vendor_id = 0x1AF4  # QEMU's default for every function: Red Hat,
    subsystem_id = 0x1100  # "QEMU"
    header_type = C.HEADER_TYPE_NORMAL
    num_bar_slots = 6
    type_name = "pci-device"
    # One section per function; a device model with state of its own declares its own
    # VMState as PCI_FUNCTION_FIELDS + its fields (None: it blocks migration).
    vmstate: VMState | None = VMState("pci-function", 1, PCI_FUNCTION_FIELDS)

    def __init__(self, id: str | None = None, express: bool = False) -> None:
        super().__init__(id)
        self.express = express
        self.config = ConfigSpace(C.PCIE_CONFIG_SIZE if express else C.PCI_CONFIG_SIZE)
        self.caps = CapabilityAllocator(self.config)
        self.bars: list[Bar | None] = [None] * self.num_bar_slots
        self.bus: PCIBus | None = None
        self.devfn = 0
        self.multifunction = False
        self.msi: MSI | None = None
        self.msix: MSIX | None = None
        self.intx_level = False
        self._init_header()

    # -- declaring the device -----------------------------------------------------------
    def _init_header(self) -> None:
        cfg = self.config
        cfg.set(C.VENDOR_ID, 2, self.vendor_id)
        cfg.set(C.DEVICE_ID, 2, self.device_id)
        cfg.set(C.REVISION_ID, 1, self.revision)
        cfg.set(C.CLASS_PROG, 3, self.class_code)
        cfg.set(C.HEADER_TYPE, 1, self.header_type)
        cfg.set_wmask(C.COMMAND, 2, C.COMMAND_WRITABLE)
        cfg.set_w1c(C.STATUS, 2, C.STATUS_W1C)
        cfg.set_wmask(C.CACHE_LINE_SIZE, 1, 0xFF)
        cfg.set_wmask(C.INTERRUPT_LINE, 1, 0xFF)
        if self.header_type == C.HEADER_TYPE_NORMAL:
            cfg.set(C.SUBSYSTEM_VENDOR_ID, 2, self.subsystem_vendor_id)
            cfg.set(C.SUBSYSTEM_ID, 2, self.subsystem_id)

    def set_multifunction(self, on: bool) -> None:
        self.multifunction = on
        head = self.config.get(C.HEADER_TYPE, 1) & ~C.HEADER_TYPE_MULTI_FUNCTION
        self.config.set(C.HEADER_TYPE, 1, head | (C.HEADER_TYPE_MULTI_FUNCTION if on else 0))

    def add_bar(self, index: int, size: int, kind: str, handler: MMIOHandler,
                prefetchable: bool = False) -> Bar:
        if not 0 <= index < self.num_bar_slots or (kind == BAR_MEM64
                                                  and index + 1 >= self.num_bar_slots):
            raise ValueError(f"BAR{index} does not exist")
        bar = Bar(index, size, kind, handler, prefetchable)
        bar.install(self.config)
        self.bars[index] = bar
        return bar

    def set_interrupt_pin(self, pin: int) -> None:
        """1..4 for INTA#..INTD# (0: no INTx)."""
        self.config.set(C.INTERRUPT_PIN, 1, pin)

    def add_msi(self, vectors: int = 1) -> MSI:
        self.msi = MSI(self.config, self.caps, vectors, self.dma_write_u32)
        return self.msi

    def add_msix(self, vectors: int, bar: int, table_offset: int, pba_offset: int) -> MSIX:
        self.msix = MSIX(self.config, self.caps, vectors, bar, table_offset, pba_offset,
                         self.dma_write_u32)
        return self.msix

    def add_pcie_endpoint(self) -> int:
        return add_pcie_capability(self.config, self.caps, "endpoint")

    def make_express(self) -> None:
        """Plugged below a PCIe port: a PCIe endpoint with 4 KiB of config space (on
        the root bus the same device is conventional PCI, as on QEMU's virt)."""
        if self.express:
            return
        self.express = True
        self.config.grow(C.PCIE_CONFIG_SIZE)
        self.add_pcie_endpoint()

    # -- identity --------------------------------------------------------------------------
    @property
    def slot(self) -> int:
        return self.devfn >> 3

    @property
    def function(self) -> int:
        return self.devfn & 7

    @property
    def interrupt_pin(self) -> int:
        return self.config.get(C.INTERRUPT_PIN, 1)

    @property
    def command(self) -> int:
        return self.config.get(C.COMMAND, 2)

    def bar_mappings(self) -> list[tuple[Bar, int]]:
        """(bar, bus address) for each BAR whose space decoding is on and whose address
        is programmed (not 0; an all-ones sizing probe lands outside every window)."""
        cmd = self.command
        out = []
        for bar in self.bars:
            if bar is None:
                continue
            if not cmd & (C.COMMAND_IO if bar.is_io else C.COMMAND_MEMORY):
                continue
            addr = bar.address(self.config)
            limit = 1 << (16 if bar.is_io else 64 if bar.kind == BAR_MEM64 else 32)
            if addr == 0 or addr + bar.size > limit:
                continue
            out.append((bar, addr))
        return out

    # -- the guest's config accesses ---------------------------------------------------------
    def config_read(self, offset: int, size: int) -> int:
        return self.config.read(offset, size)

    def config_write(self, offset: int, size: int, value: int) -> None:
        old_intx_disabled = self.command & C.COMMAND_INTX_DISABLE
        self.config.write(offset, size, value)
        if self.msi is not None:
            self.msi.config_written(offset, size)
        if self.msix is not None:
            self.msix.config_written(offset, size)
        bar_area = (C.BAR0, 4 * self.num_bar_slots)
        if overlaps(offset, size, C.COMMAND, 2) or overlaps(offset, size, *bar_area):
            if self.bus is not None:
                self.bus.host.remap()
        if (self.command & C.COMMAND_INTX_DISABLE) != old_intx_disabled:
            self._route_intx()

    # -- reset -------------------------------------------------------------------------------
    def reset(self) -> None:
        """The power-on state of the generic registers: decoding off, BARs cleared."""
        cfg = self.config
        cfg.set(C.COMMAND, 2, 0)
        cfg.set(C.STATUS, 2, cfg.get(C.STATUS, 2) & C.STATUS_CAP_LIST)
        for bar in self.bars:
            if bar is not None:
                bar.install(cfg)
        cfg.set(C.INTERRUPT_LINE, 1, 0)
        if self.msi is not None:
            self.msi.reset()
        if self.msix is not None:
            self.msix.reset()
        self.set_irq(False)

    # -- interrupts and bus mastering ----------------------------------------------------------
    def set_irq(self, level: bool) -> None:
        """INTx: the device's level, visible in Status even when Interrupt Disable
        keeps it off the wire (PCI 3.0 6.2.3)."""
        self.intx_level = bool(level)
        status = self.config.get(C.STATUS, 2) & ~C.STATUS_INTERRUPT
        self.config.set(C.STATUS, 2, status | (C.STATUS_INTERRUPT if level else 0))
        self._route_intx()

    def _route_intx(self) -> None:
        if self.bus is None or not self.interrupt_pin:
            return
        on = self.intx_level and not self.command & C.COMMAND_INTX_DISABLE
        self.bus.host.set_intx(self, on)

    def dma_write_u32(self, address: int, data: int) -> None:
        """A bus master write of one dword (an MSI message); dropped without Bus Master."""
        if self.bus is None or not self.command & C.COMMAND_MASTER:
            return
        self.bus.host.bus_master_write(address, data)

    def msi_notify(self, vector: int) -> bool:
        """Signal ``vector`` by MSI-X or MSI if the guest enabled either; False: it uses
        neither, and the caller falls back to INTx."""
        if self.msix is not None and self.msix.enabled:
            self.msix.notify(vector)
            return True
        if self.msi is not None and self.msi.enabled:
            self.msi.notify(vector)
            return True
        return False

    # -- hot-plug / monitor ------------------------------------------------------------------
    def describe(self) -> str:
        """What ``info pci`` calls the device."""
        return type(self).__name__
