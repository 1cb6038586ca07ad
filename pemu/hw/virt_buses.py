"""The virtio-mmio slots and the PCIe host of a ``virt`` board, for every architecture
(RISC-V's and Arm's virt carry the same ones at different addresses), and what
``-device``, ``device_add``/``device_del`` and migration need of them.

A board mixes ``VirtBuses`` in and provides ``space`` (its AddressSpace), ``memmap``
(a MemoryMap with the entries ``virtio``, ``pcie_ecam``, ``pcie_pio``, ``pcie_mmio``
and optionally ``pcie_mmio_high``) and ``wired_irq(n)``, the IRQLine of its
interrupt controller's wired input ``n`` (a PLIC/APLIC source on RISC-V, an SPI on
the GIC): the entries' ``irq`` numbers are in that numbering.  It calls
``add_virtio_slots()`` and ``add_pcie_host()`` while it builds its devices.

The first ``-device virtio-*-device`` goes to the highest slot, as on QEMU (its
virtio-mmio buses are found in reverse creation order).
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.hw.core import BlockerMessage, IRQLine
from pemu.hw.memmap import MemoryMap
from pemu.hw.pci.bus import PCI_BUS
from pemu.hw.pci.device import PCIDevice
from pemu.hw.pci.host import ECAM_BUS_SHIFT, INTX_LINES, PCIHost
from pemu.hw.pci.hotplug import hot_plug, hot_plug_port, request_unplug
from pemu.hw.pci.plug import plug_device
from pemu.hw.tcg_board import BoardError
from pemu.hw.virtio.mmio import VirtioMMIO
from pemu.memory.address_space import AddressSpace
from pemu.qom.registry import checked_device

PCI_WINDOWS = ("pcie_mmio", "pcie_mmio_high")  # memory windows: bus address = CPU's


class VirtBuses:
    space: AddressSpace
    memmap: MemoryMap
    pci: PCIHost
    virtio_slots: list[VirtioMMIO]

    def wired_irq(self, source: int) -> IRQLine:
        raise NotImplementedError

    # -- building ------------------------------------------------------------------------
    def add_virtio_slots(self) -> None:
        """Every slot of the ``virtio`` entry, empty (magic and version answer, device
        id 0) until ``add_virtio`` fills it."""
        virtio = self.memmap["virtio"]
        self.virtio_slots = []
        self._virtio_used = 0
        for n in range(virtio.count):
            slot = virtio.slot(n)
            transport = VirtioMMIO(self.space, None, self.wired_irq(slot.irq),
                                   id=f"virtio-mmio{n}")
            self.space.add_mmio(f"virtio-mmio{n}", slot.base, slot.size, transport)
            self.virtio_slots.append(transport)

    def add_pcie_host(self) -> None:
        """The generic ECAM host bridge: INTA..INTD on the wired inputs from
        ``pcie_ecam``'s irq, I/O ports from bus address 0 at ``pcie_pio``, memory
        windows at bus addresses equal to the CPU's (QEMU's ranges)."""
        mm = self.memmap
        ecam = mm["pcie_ecam"]
        assert ecam.irq is not None
        intx = [self.wired_irq(ecam.irq + n) for n in range(INTX_LINES)]
        self.pci = PCIHost(self.space, intx, ecam_buses=ecam.size // (1 << ECAM_BUS_SHIFT))
        self.space.add_mmio("pcie-ecam", ecam.base, ecam.size, self.pci.ecam)
        pio = mm["pcie_pio"]
        self.space.add_mmio("pcie-pio", pio.base, pio.size, self.pci.window("io", 0))
        for name in PCI_WINDOWS:
            if name in mm:
                win = mm[name]
                self.space.add_mmio(name.replace("_", "-"), win.base, win.size,
                                    self.pci.window("mem", win.base))

    # -- -device, device_add, device_del --------------------------------------------------
    def add_virtio(self, device, name: str) -> None:  # noqa: ANN001 - any virtio device
        """Plug a virtio device into the highest free slot."""
        virtio = self.memmap["virtio"]
        n = virtio.count - 1 - self._virtio_used
        if n < 0:
            raise BoardError(f"{name}: virt has only {virtio.count} virtio-mmio slots")
        self._virtio_used += 1
        slot = virtio.slot(n)
        # replace the empty transport of that slot by one carrying the device
        region = self.space.find(slot.base, 4)
        transport = VirtioMMIO(self.space, device, self.wired_irq(slot.irq), id=name)
        region.handler = transport  # type: ignore[union-attr]
        self.virtio_slots[n] = transport

    def add_pci(self, device: PCIDevice, name: str, opts: dict[str, str]) -> None:
        """Plug a PCI device where its ``bus=``/``addr=`` options say."""
        try:
            plug_device(self.pci, device, opts)
        except ValueError as e:  # PCIBusError, or a malformed addr=
            raise BoardError(f"-device {opts.get('driver', name)}: {e}") from None

    def hot_add(self, opts: dict[str, str], ctx: object) -> PCIDevice:
        """QMP device_add of a PCI device into a pcie-root-port's empty slot."""
        try:
            info = checked_device(opts, [PCI_BUS])
            port = hot_plug_port(self.pci, opts.get("bus"))
            assert info.factory is not None
            device = info.factory(ctx, opts, opts.get("id") or info.name)
            hot_plug(self.pci, port, device)
        except ValueError as e:  # RegistryError, PCIBusError, OptionError
            raise BoardError(str(e)) from None
        return device

    def hot_remove(self, dev_id: str, removed: Callable[[object], None]) -> None:
        """QMP device_del: the guest is asked; ``removed(device)`` once it let go."""
        try:
            request_unplug(self.pci, dev_id, removed)
        except ValueError as e:
            raise BoardError(str(e)) from None

    # -- machine state --------------------------------------------------------------------
    def bus_devices(self) -> list:
        """The slots' transports and devices, then the PCI functions in bus order (the
        same command line gives the same order); a virtio-pci function is followed by
        its transport and its device."""
        devices: list = []
        for transport in self.virtio_slots:
            devices.append(transport)
            if transport.device is not None:
                devices.append(transport.device)
        for function in self.pci.devices():
            devices.append(function)
            transport = getattr(function, "transport", None)
            if transport is not None:
                devices += [transport, transport.device]
        return devices

    def virtio_devices(self) -> list[tuple[str, object]]:
        """(the name the user gave it, the device) of every virtio device, behind
        virtio-mmio (the device's id) or virtio-pci (the PCI function's id)."""
        out = [(t.device.id or t.device.type_name, t.device) for t in self.virtio_slots
               if t.device is not None]
        out += [(f.id or f.type_name, f.transport.device) for f in self.pci.devices()
                if getattr(f, "transport", None) is not None]
        return out

    def bus_migration_blockers(self) -> list[str]:
        blockers: list[str] = []
        # a PCI function whose state is not declared (ich9-ahci's ports and command
        # slots): refusing beats a target whose device never comes back
        blockers += [dev.id or dev.type_name for dev in self.pci.devices()
                     if dev.vmstate is None]
        # a virtio device whose state is not declared, or that says it cannot move now
        # (a mounted 9p share, in its own words as QEMU's)
        for name, dev in self.virtio_devices():
            if getattr(dev, "blocks_migration", False):
                blockers.append(BlockerMessage(dev.migration_blocker))  # type: ignore[attr-defined]
            elif not dev.migratable:  # type: ignore[attr-defined]
                blockers.append(name)
        return blockers

    def drain_bus_devices(self) -> None:
        """In-flight block requests complete into guest RAM first (QEMU drains too)."""
        holders = [device for _, device in self.virtio_devices()]
        for device in [*holders, *self.pci.devices()]:  # virtio-blk, nvme
            drain = getattr(device, "drain", None)
            if drain is not None:
                drain()

    def reset_vsock_streams(self) -> None:
        """After a load: vsock streams were the source's host sockets; tell the guest
        they are gone (VIRTIO_VSOCK_EVENT_TRANSPORT_RESET, as QEMU's post-load does)."""
        for _, device in self.virtio_devices():
            reset = getattr(device, "transport_reset", None)
            if reset is not None:
                reset()

    def announce_nics(self) -> None:
        """After an incoming migration: NICs ask their drivers for a gratuitous ARP, so
        switches learn where the guest is now (QEMU's self-announce)."""
        for _, device in self.virtio_devices():
            announce = getattr(device, "announce", None)
            if announce is not None:
                announce()


__all__ = ["VirtBuses"]
