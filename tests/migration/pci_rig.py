"""A PCI host with RAM for the migration scenarios, and a guest-side virtio-pci driver
that reaches the device only as a guest does: config space through the host, BARs
through the host's memory window at the addresses the "guest" programmed."""

from __future__ import annotations

from pemu.hw.core import IRQLine
from pemu.hw.pci import config as C
from pemu.hw.pci.host import PCIHost
from pemu.hw.virtio import pci as vp
from pemu.hw.virtio.device import (
    STATUS_ACKNOWLEDGE,
    STATUS_DRIVER,
    STATUS_DRIVER_OK,
    STATUS_FEATURES_OK,
)
from pemu.memory.address_space import AddressSpace
from tests.hw.virtio_driver import RAM_BASE, RAM_SIZE, GuestQueue, GuestRAM

MEM_WINDOW_BASE = 0x4000_0000  # where the rig maps the host's memory window


class PCIRig:
    """RAM (MSI messages land in it), the host, four INTx lines, the memory window."""

    def __init__(self) -> None:
        self.space = AddressSpace()
        self.space.add_ram("ram", RAM_BASE, RAM_SIZE)
        self.intx = [IRQLine(name=f"int{'abcd'[n]}") for n in range(4)]
        self.host = PCIHost(self.space, self.intx)
        self.space.add_mmio("pci-mem", MEM_WINDOW_BASE, 0x4000_0000,
                            self.host.window("mem", MEM_WINDOW_BASE))
        self.ram = GuestRAM(self.space)

    def cfg_r(self, devfn: int, off: int, size: int, bus: int = 0) -> int:
        return self.host.config_read(bus, devfn, off, size)

    def cfg_w(self, devfn: int, off: int, size: int, value: int, bus: int = 0) -> None:
        self.host.config_write(bus, devfn, off, size, value)

    def copy_ram_from(self, other: PCIRig) -> None:
        """What a migration carries besides device state: guest RAM."""
        self.space.write(RAM_BASE, other.space.read(RAM_BASE, RAM_SIZE))
        self.ram.next = other.ram.next


class PCIQueue(GuestQueue):
    def kick(self) -> None:
        drv = self.drv
        drv.space.store(drv.bar4 + vp.NOTIFY_OFFSET + vp.NOTIFY_MULTIPLIER * self.index, 2,
                        self.index)


class VirtioPCIGuest:
    """The guest driver of one virtio-pci function with fixed BAR addresses."""

    BAR1 = MEM_WINDOW_BASE + 0x10_0000  # MSI-X table and PBA
    BAR4 = MEM_WINDOW_BASE + 0x20_0000  # the virtio structures

    def __init__(self, rig: PCIRig, devfn: int) -> None:
        self.rig, self.devfn = rig, devfn
        self.space, self.ram = rig.space, rig.ram
        self.bar1, self.bar4 = self.BAR1, self.BAR4

    def program_bars(self) -> None:
        rig, fn = self.rig, self.devfn
        rig.cfg_w(fn, C.BAR0 + 4 * vp.MSIX_BAR, 4, self.BAR1)
        rig.cfg_w(fn, C.BAR0 + 4 * vp.MODERN_BAR, 4, self.BAR4)
        rig.cfg_w(fn, C.BAR0 + 4 * vp.MODERN_BAR + 4, 4, 0)
        rig.cfg_w(fn, C.COMMAND, 2, C.COMMAND_MEMORY | C.COMMAND_MASTER)

    def r(self, off: int, size: int) -> int:
        return self.space.load(self.bar4 + vp.COMMON_OFFSET + off, size)

    def w(self, off: int, size: int, value: int) -> None:
        self.space.store(self.bar4 + vp.COMMON_OFFSET + off, size, value)

    def read_isr(self) -> int:
        return self.space.load(self.bar4 + vp.ISR_OFFSET, 1)

    def msix_entry(self, vector: int, address: int, data: int, masked: bool) -> None:
        base = self.bar1 + 16 * vector
        for off, value in ((0, address & 0xFFFFFFFF), (4, address >> 32), (8, data),
                           (12, int(masked))):
            self.space.store(base + off, 4, value)

    def bring_up(self, nqueues: int, vectors: list[int], num: int = 8) -> list[PCIQueue]:
        self.w(vp.DEVICE_STATUS, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER)
        for sel in (0, 1):
            self.w(vp.DEVICE_FEATURE_SELECT, 4, sel)
            word = self.r(vp.DEVICE_FEATURE, 4)
            self.w(vp.DRIVER_FEATURE_SELECT, 4, sel)
            self.w(vp.DRIVER_FEATURE, 4, word)
        self.w(vp.DEVICE_STATUS, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK)
        queues = []
        for i in range(nqueues):
            self.w(vp.QUEUE_SELECT, 2, i)
            self.w(vp.QUEUE_SIZE, 2, num)
            q = PCIQueue(self, i, num)  # type: ignore[arg-type]
            for reg, addr in ((vp.QUEUE_DESC, q.desc), (vp.QUEUE_DRIVER, q.avail),
                              (vp.QUEUE_DEVICE, q.used)):
                self.w(reg, 8, addr)
            self.w(vp.QUEUE_MSIX_VECTOR, 2, vectors[i])
            self.w(vp.QUEUE_ENABLE, 2, 1)
            queues.append(q)
        self.w(vp.DEVICE_STATUS, 1, self.r(vp.DEVICE_STATUS, 1) | STATUS_DRIVER_OK)
        return queues
