"""A minimal PCI enumerator and virtio-pci driver, written from the specs, for tests.

It reaches devices only the way a guest does: config space through the ECAM window,
BARs through the host's CPU windows after sizing and programming them.
"""

from __future__ import annotations

import struct

from virtio_driver import RAM_BASE, RAM_SIZE, GuestQueue, GuestRAM

from pemu.hw.core import IRQLine
from pemu.hw.pci import config as C
from pemu.hw.pci.host import PCIHost
from pemu.hw.riscv.memmap import VIRT_MEMMAP
from pemu.hw.virtio import pci as vp
from pemu.hw.virtio.device import (
    STATUS_ACKNOWLEDGE,
    STATUS_DRIVER,
    STATUS_DRIVER_OK,
    STATUS_FEATURES_OK,
)
from pemu.memory.address_space import AddressSpace

ECAM = VIRT_MEMMAP["pcie_ecam"].base
PIO = VIRT_MEMMAP["pcie_pio"].base
MMIO = VIRT_MEMMAP["pcie_mmio"].base
MMIO_HIGH = VIRT_MEMMAP["pcie_mmio_high"].base

__all__ = ["RAM_BASE", "RAM_SIZE"]


class PCIMachine:
    """RAM, the ECAM host and its windows at virt's addresses, four INTx lines."""

    def __init__(self) -> None:
        self.space = AddressSpace()
        self.space.add_ram("ram", RAM_BASE, RAM_SIZE)
        self.intx = [IRQLine(name=f"int{'abcd'[n]}") for n in range(4)]
        self.host = PCIHost(self.space, self.intx)
        mm = VIRT_MEMMAP
        self.space.add_mmio("ecam", ECAM, mm["pcie_ecam"].size, self.host.ecam)
        self.space.add_mmio("pio", PIO, mm["pcie_pio"].size, self.host.window("io", 0))
        for name in ("pcie_mmio", "pcie_mmio_high"):
            e = mm[name]
            self.space.add_mmio(name, e.base, e.size, self.host.window("mem", e.base))
        self.ram = GuestRAM(self.space)
        self._next = {"io": 0x1000, "mem32": MMIO, "mem64": MMIO_HIGH}

    def cfg(self, devfn: int, bus: int = 0) -> Config:
        return Config(self.space, bus, devfn)

    def assign_bars(self, cfg: Config, command: int = C.COMMAND_IO | C.COMMAND_MEMORY
                    | C.COMMAND_MASTER) -> dict[int, int]:
        """Size every BAR, give it a naturally aligned address, enable decoding."""
        cfg.w(C.COMMAND, 2, 0)
        addrs = {}
        i = 0
        while i < 6:
            off = C.BAR0 + 4 * i
            cfg.w(off, 4, 0xFFFFFFFF)
            probe = cfg.r(off, 4)
            if probe == 0:
                i += 1
                continue
            is_io = probe & 1
            is64 = not is_io and (probe >> 1) & 3 == 2
            if is64:
                cfg.w(off + 4, 4, 0xFFFFFFFF)
                probe |= cfg.r(off + 4, 4) << 32
                bits = 64
            else:
                bits = 32
            mask = ~0x3 if is_io else ~0xF
            size = (~(probe & mask) + 1) & ((1 << bits) - 1)
            if is_io:
                size &= 0xFFFF
            kind = "io" if is_io else "mem64" if is64 else "mem32"
            addr = (self._next[kind] + size - 1) & ~(size - 1)
            self._next[kind] = addr + size
            cfg.w(off, 4, addr & 0xFFFFFFFF)
            if is64:
                cfg.w(off + 4, 4, addr >> 32)
            addrs[i] = (PIO + addr) if is_io else addr
            i += 2 if is64 else 1
        cfg.w(C.COMMAND, 2, command)
        return addrs


class Config:
    def __init__(self, space: AddressSpace, bus: int, devfn: int) -> None:
        self.space = space
        self.base = ECAM + (bus << 20) + (devfn << 12)

    def r(self, off: int, size: int) -> int:
        return self.space.load(self.base + off, size)

    def w(self, off: int, size: int, value: int) -> None:
        self.space.store(self.base + off, size, value)

    def capabilities(self) -> list[tuple[int, int]]:
        """(id, offset) along the chain from 0x34."""
        out = []
        off = self.r(C.CAPABILITY_LIST, 1)
        while off:
            out.append((self.r(off, 1), off))
            off = self.r(off + 1, 1)
        return out


class PCIQueue(GuestQueue):
    def kick(self) -> None:
        drv = self.drv
        drv.space.store(drv.notify + self.notify_off * drv.notify_mult, 2, self.index)
        drv.settle()


class VirtioPCIDriver:
    """Finds the virtio structures through the vendor capabilities (spec 4.1.4)."""

    def __init__(self, machine: PCIMachine, devfn: int) -> None:
        self.machine = machine
        self.space = machine.space
        self.ram = machine.ram
        self.cfg = machine.cfg(devfn)
        self.bars = machine.assign_bars(self.cfg)
        self.structs = {}
        for cap_id, off in self.cfg.capabilities():
            if cap_id != 0x09:
                continue
            cfg_type, bar = self.cfg.r(off + 3, 1), self.cfg.r(off + 4, 1)
            self.structs[cfg_type] = self.bars[bar] + self.cfg.r(off + 8, 4)
            if cfg_type == vp.CAP_NOTIFY_CFG:
                self.notify_mult = self.cfg.r(off + 16, 4)
        self.common = self.structs[vp.CAP_COMMON_CFG]
        self.notify = self.structs[vp.CAP_NOTIFY_CFG]
        self.isr = self.structs[vp.CAP_ISR_CFG]
        self.device_cfg = self.structs[vp.CAP_DEVICE_CFG]

    def settle(self) -> None:
        pass

    def r(self, off: int, size: int) -> int:
        return self.space.load(self.common + off, size)

    def w(self, off: int, size: int, value: int) -> None:
        self.space.store(self.common + off, size, value)

    def device_features(self) -> int:
        self.w(vp.DEVICE_FEATURE_SELECT, 4, 0)
        lo = self.r(vp.DEVICE_FEATURE, 4)
        self.w(vp.DEVICE_FEATURE_SELECT, 4, 1)
        return lo | self.r(vp.DEVICE_FEATURE, 4) << 32

    def bring_up(self, nqueues: int, vectors: list[int] | None = None) -> list[PCIQueue]:
        self.w(vp.DEVICE_STATUS, 1, 0)
        self.w(vp.DEVICE_STATUS, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER)
        features = self.device_features()
        for sel in (0, 1):
            self.w(vp.DRIVER_FEATURE_SELECT, 4, sel)
            self.w(vp.DRIVER_FEATURE, 4, (features >> (32 * sel)) & 0xFFFFFFFF)
        self.w(vp.DEVICE_STATUS, 1, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK)
        assert self.r(vp.DEVICE_STATUS, 1) & STATUS_FEATURES_OK
        queues = []
        for i in range(nqueues):
            self.w(vp.QUEUE_SELECT, 2, i)
            num = self.r(vp.QUEUE_SIZE, 2)
            q = PCIQueue(self, i, num)
            q.notify_off = self.r(vp.QUEUE_NOTIFY_OFF, 2)
            for reg, addr in ((vp.QUEUE_DESC, q.desc), (vp.QUEUE_DRIVER, q.avail),
                              (vp.QUEUE_DEVICE, q.used)):
                self.w(reg, 4, addr & 0xFFFFFFFF)
                self.w(reg + 4, 4, addr >> 32)
            if vectors is not None:
                self.w(vp.QUEUE_MSIX_VECTOR, 2, vectors[i])
            self.w(vp.QUEUE_ENABLE, 2, 1)
            queues.append(q)
        self.w(vp.DEVICE_STATUS, 1, self.r(vp.DEVICE_STATUS, 1) | STATUS_DRIVER_OK)
        return queues

    def read_isr(self) -> int:
        return self.space.load(self.isr, 1)


def msix_entry(space: AddressSpace, table: int, vector: int, address: int, data: int,
               masked: bool) -> None:
    base = table + 16 * vector
    space.store(base, 4, address & 0xFFFFFFFF)
    space.store(base + 4, 4, address >> 32)
    space.store(base + 8, 4, data)
    space.store(base + 12, 4, int(masked))


def u32_at(space: AddressSpace, addr: int) -> int:
    return struct.unpack("<I", space.read(addr, 4))[0]
