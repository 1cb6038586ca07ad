"""The virtio-pci transport, modern only (virtio 1.x, spec 4.1; QEMU's
``disable-legacy=on``): the same device models as virtio-mmio behind PCI.

Layout, as QEMU's: BAR1 (32-bit memory, 4 KiB) holds the MSI-X table (0x000) and PBA
(0x800); BAR4 (64-bit prefetchable memory, 16 KiB) holds the four structures that the
vendor capabilities point at: common config (0x0000), ISR (0x1000), device config
(0x2000) and notifications (0x3000, one dword per queue).  IDs: vendor 0x1af4, device
0x1040 + virtio id, revision 1.

Interrupts: with MSI-X enabled, a used buffer fires its queue's vector and a config
change the config vector (0xffff: none); otherwise the ISR bits are set and INTA#
follows ISR bit 0 or 1 until the driver reads the ISR.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from pemu.hw.core import VMState, VMStateField, VMStateInvalid
from pemu.hw.pci.bar import BAR_MEM32, BAR_MEM64
from pemu.hw.pci.capability import CAP_ID_VENDOR
from pemu.hw.pci.device import PCIDevice
from pemu.hw.virtio.device import VirtioDevice
from pemu.hw.virtio.transport import TRANSPORT_HEAD, TRANSPORT_QUEUES, VirtioTransportBase
from pemu.hw.virtio.virtqueue import VirtQueue
from pemu.memory.address_space import AddressSpace

VIRTIO_PCI_VENDOR = 0x1AF4
VIRTIO_PCI_MODERN_BASE = 0x1040
SUBSYSTEM_ID = 0x1100
NO_VECTOR = 0xFFFF

# vendor capability cfg_type (spec 4.1.4)
CAP_COMMON_CFG = 1
CAP_NOTIFY_CFG = 2
CAP_ISR_CFG = 3
CAP_DEVICE_CFG = 4

MSIX_BAR = 1
MSIX_BAR_SIZE = 0x1000
MSIX_PBA_OFFSET = 0x800
MODERN_BAR = 4
MODERN_BAR_SIZE = 0x4000
COMMON_OFFSET, ISR_OFFSET, DEVICE_OFFSET, NOTIFY_OFFSET = 0x0000, 0x1000, 0x2000, 0x3000
REGION_SIZE = 0x1000
NOTIFY_MULTIPLIER = 4

ISR_QUEUE = 1
ISR_CONFIG = 2

# common configuration structure (spec 4.1.4.3): offset -> (name, size)
DEVICE_FEATURE_SELECT = 0
DEVICE_FEATURE = 4
DRIVER_FEATURE_SELECT = 8
DRIVER_FEATURE = 12
CONFIG_MSIX_VECTOR = 16
NUM_QUEUES = 18
DEVICE_STATUS = 20
CONFIG_GENERATION = 21
QUEUE_SELECT = 22
QUEUE_SIZE = 24
QUEUE_MSIX_VECTOR = 26
QUEUE_ENABLE = 28
QUEUE_NOTIFY_OFF = 30
QUEUE_DESC = 32
QUEUE_DRIVER = 40
QUEUE_DEVICE = 48
QUEUE_NOTIFY_DATA = 56
QUEUE_RESET = 58
COMMON_SIZE = 60
_QUEUE_ADDRS = {QUEUE_DESC: "desc_addr", QUEUE_DRIVER: "avail_addr",
                QUEUE_DEVICE: "used_addr"}

# PCI class of each virtio device type, as QEMU 7.2 gives them (query-pci of each
# X-pci-non-transitional; vsock's is vhost-vsock-pci's): network, storage, serial
# (communication other), rng and balloon (unclassified "other"), SCSI storage, 9p
# (0x0002: class 0, subclass 2, a value of QEMU's own), vsock (communication other)
_CLASS_CODES = {1: 0x020000, 2: 0x010000, 3: 0x078000, 4: 0x00FF00, 5: 0x00FF00,
                8: 0x010000, 9: 0x000200, 19: 0x078000}


class VirtioPCITransport(VirtioTransportBase):
    """The virtio registers of one virtio-pci function (``function`` raises its
    interrupts)."""

    transport_name = "virtio-pci"
    # The shared transport state (transport.py) around this transport's interrupt
    # registers: the ISR and the MSI-X vector of config changes and of each queue.  The
    # function's own state (config space, MSI-X table, INTx) is the function's section.
    vmstate = VMState("virtio-pci", 1, (
        *TRANSPORT_HEAD,
        VMStateField("isr", "u8", max=ISR_QUEUE | ISR_CONFIG),
        VMStateField("config_vector", "u16"),
        VMStateField("queue_vectors", "u16[]"),
        *TRANSPORT_QUEUES))

    def __init__(self, address_space: AddressSpace, device: VirtioDevice,
                 function: VirtioPCI, id: str | None = None) -> None:
        self.function = function
        self.isr = 0
        self.config_vector = NO_VECTOR
        self.queue_vectors = [NO_VECTOR] * device.num_queues
        super().__init__(address_space, device, id)
        self.reset()

    # -- migration -------------------------------------------------------------------------
    def vmstate_check(self, state: Mapping[str, object]) -> None:
        super().vmstate_check(state)
        named = [("config_vector", cast(int, state["config_vector"]))]
        named += [("queue_vectors", v) for v in cast(list, state["queue_vectors"])]
        for name, vector in named:
            if vector != NO_VECTOR and self._vector(vector) == NO_VECTOR:
                raise VMStateInvalid(name, f"vector {vector}: the function has no such "
                                     "MSI-X vector")

    # (INTx follows the ISR through the function's own intx_level: nothing to re-derive)

    # -- interrupts ------------------------------------------------------------------------
    def transport_reset(self) -> None:
        self.isr = 0
        self.config_vector = NO_VECTOR
        self.queue_vectors = [NO_VECTOR] * len(self.queues)
        self.function.set_irq(False)

    def _interrupt(self, isr_bit: int, vector: int) -> None:
        self.isr |= isr_bit
        if self.function.msix_in_use():
            if vector != NO_VECTOR:
                self.function.msix.notify(vector)  # type: ignore[union-attr]
        else:
            self.function.set_irq(True)

    def notify_used(self, vq: VirtQueue) -> None:
        self._interrupt(ISR_QUEUE, self.queue_vectors[vq.index])

    def notify_config(self) -> None:
        self._interrupt(ISR_CONFIG, self.config_vector)

    def read_isr(self) -> int:
        """Reading the ISR acknowledges it: the bits clear and INTx drops."""
        with self.lock:
            value, self.isr = self.isr, 0
            self.function.set_irq(False)
            return value

    # -- common configuration ----------------------------------------------------------------
    def _common_bytes(self) -> bytes:
        vq = self.selected_queue()
        out = bytearray(COMMON_SIZE)

        def put(offset: int, size: int, value: int) -> None:
            out[offset:offset + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(
                size, "little")

        put(DEVICE_FEATURE_SELECT, 4, self.device_features_sel)
        put(DEVICE_FEATURE, 4, self.device_features_word())
        put(DRIVER_FEATURE_SELECT, 4, self.driver_features_sel)
        put(DRIVER_FEATURE, 4, self.driver_features_word())
        put(CONFIG_MSIX_VECTOR, 2, self.config_vector)
        put(NUM_QUEUES, 2, len(self.queues))
        put(DEVICE_STATUS, 1, self.status)
        put(CONFIG_GENERATION, 1, self.config_generation)
        put(QUEUE_SELECT, 2, self.queue_sel)
        if vq is not None:
            put(QUEUE_SIZE, 2, vq.num)
            put(QUEUE_MSIX_VECTOR, 2, self.queue_vectors[vq.index])
            put(QUEUE_ENABLE, 2, int(vq.ready))
            put(QUEUE_NOTIFY_OFF, 2, vq.index)
            for offset, attr in _QUEUE_ADDRS.items():
                put(offset, 8, getattr(vq, attr))
            put(QUEUE_NOTIFY_DATA, 2, vq.index)
        return bytes(out)

    def common_read(self, offset: int, size: int) -> int:
        with self.lock:
            if offset + size > COMMON_SIZE:
                return 0
            return int.from_bytes(self._common_bytes()[offset:offset + size], "little")

    def _vector(self, value: int) -> int:
        """A vector the function has, or NO_VECTOR (the driver reads it back to see)."""
        msix = self.function.msix
        return value if msix is not None and value < msix.vectors else NO_VECTOR

    def common_write(self, offset: int, size: int, value: int) -> None:
        with self.lock:
            vq = self.selected_queue()
            if offset == DEVICE_FEATURE_SELECT:
                self.device_features_sel = value
            elif offset == DRIVER_FEATURE_SELECT:
                self.driver_features_sel = value
            elif offset == DRIVER_FEATURE:
                self.write_driver_features_word(value)
            elif offset == CONFIG_MSIX_VECTOR:
                self.config_vector = self._vector(value)
            elif offset == DEVICE_STATUS:
                self.write_status(value & 0xFF)
            elif offset == QUEUE_SELECT:
                self.queue_sel = value & 0xFFFF
            elif vq is None:
                return
            elif offset == QUEUE_SIZE:
                # a power of two no larger than the maximum (split rings)
                if not vq.ready and 0 < value <= vq.max_size and not value & (value - 1):
                    vq.num = value
            elif offset == QUEUE_MSIX_VECTOR:
                self.queue_vectors[vq.index] = self._vector(value)
            elif offset == QUEUE_ENABLE:
                if value & 1:  # writing 0 is not allowed (spec 4.1.4.3.2); reset instead
                    self.set_queue_ready(vq, True)
            else:
                self._write_queue_address(vq, offset, size, value)

    @staticmethod
    def _write_queue_address(vq: VirtQueue, offset: int, size: int, value: int) -> None:
        for base, attr in _QUEUE_ADDRS.items():
            if base <= offset < base + 8 and not vq.ready:
                shift = 8 * (offset - base)
                mask = ((1 << (8 * size)) - 1) << shift
                old = getattr(vq, attr)
                setattr(vq, attr, (old & ~mask) | ((value << shift) & mask))


class _Region:
    """One structure of BAR4 (its offsets are relative to the structure)."""

    def __init__(self, read, write) -> None:  # noqa: ANN001 - bound methods
        self.read = read
        self.write = write


class ModernBar:
    """BAR4: dispatches to the four structures by offset."""

    def __init__(self, transport: VirtioPCITransport) -> None:
        t = transport
        self.regions = {
            COMMON_OFFSET: _Region(t.common_read, t.common_write),
            ISR_OFFSET: _Region(lambda off, size: t.read_isr() if off == 0 else 0,
                                lambda off, size, value: None),
            DEVICE_OFFSET: _Region(self._device_read, self._device_write),
            NOTIFY_OFFSET: _Region(lambda off, size: 0, self._notify),
        }
        self.transport = t

    def _device_read(self, offset: int, size: int) -> int:
        with self.transport.lock:
            return self.transport.read_device_config(offset, size)

    def _device_write(self, offset: int, size: int, value: int) -> None:
        with self.transport.lock:
            self.transport.write_device_config(offset, size, value)

    def _notify(self, offset: int, size: int, value: int) -> None:
        self.transport.notify_queue(offset // NOTIFY_MULTIPLIER)

    def mmio_read(self, offset: int, size: int) -> int:
        region = self.regions.get(offset & ~(REGION_SIZE - 1))
        return region.read(offset & (REGION_SIZE - 1), size) if region else 0

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        region = self.regions.get(offset & ~(REGION_SIZE - 1))
        if region is not None:
            region.write(offset & (REGION_SIZE - 1), size, value)


class VirtioPCI(PCIDevice):
    """A virtio device as a PCI function: ``VirtioPCI(space, VirtioBlk(...))``, then
    ``bus.plug(function)``."""

    vendor_id = VIRTIO_PCI_VENDOR
    revision = 1
    subsystem_vendor_id = VIRTIO_PCI_VENDOR
    subsystem_id = SUBSYSTEM_ID
    type_name = "virtio-pci"

    def __init__(self, address_space: AddressSpace, device: VirtioDevice,
                 vectors: int | None = None, id: str | None = None,
                 type_name: str | None = None, express: bool = False) -> None:
        self.device_id = VIRTIO_PCI_MODERN_BASE + device.device_id
        self.class_code = _CLASS_CODES.get(device.device_id, 0xFF0000)
        super().__init__(id, express=express)
        if type_name:
            self.type_name = type_name
        self.virtio = device
        self.transport = VirtioPCITransport(address_space, device, self, id)
        self.lock = self.transport.lock  # config writes and I/O threads share it
        if express:
            self.add_pcie_endpoint()
        self.set_interrupt_pin(1)
        vectors = device.num_queues + 1 if vectors is None else vectors
        if vectors:
            msix = self.add_msix(vectors, MSIX_BAR, 0, MSIX_PBA_OFFSET)
            self.add_bar(MSIX_BAR, MSIX_BAR_SIZE, BAR_MEM32, msix)
        self.add_bar(MODERN_BAR, MODERN_BAR_SIZE, BAR_MEM64, ModernBar(self.transport),
                     prefetchable=True)
        self._add_virtio_cap(CAP_COMMON_CFG, COMMON_OFFSET, REGION_SIZE)
        self._add_virtio_cap(CAP_ISR_CFG, ISR_OFFSET, REGION_SIZE)
        self._add_virtio_cap(CAP_DEVICE_CFG, DEVICE_OFFSET, REGION_SIZE)
        notify = self._add_virtio_cap(CAP_NOTIFY_CFG, NOTIFY_OFFSET, REGION_SIZE, 20)
        self.config.set(notify + 16, 4, NOTIFY_MULTIPLIER)

    def _add_virtio_cap(self, cfg_type: int, offset: int, length: int, size: int = 16) -> int:
        """A vendor capability pointing at one structure of BAR4 (spec 4.1.4)."""
        off = self.caps.add(CAP_ID_VENDOR, size)
        cfg = self.config
        cfg.set(off + 2, 1, size)
        cfg.set(off + 3, 1, cfg_type)
        cfg.set(off + 4, 1, MODERN_BAR)
        cfg.set(off + 8, 4, offset)
        cfg.set(off + 12, 4, length)
        return off

    def msix_in_use(self) -> bool:
        return self.msix is not None and self.msix.enabled

    def config_write(self, offset: int, size: int, value: int) -> None:
        with self.transport.lock:
            super().config_write(offset, size, value)
            if self.msix_in_use() and self.intx_level:
                self.set_irq(False)  # MSI-X on: INTx is no longer used

    def reset(self) -> None:
        with self.transport.lock:
            super().reset()
            self.transport.reset()

    def describe(self) -> str:
        return self.type_name
