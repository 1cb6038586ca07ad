"""A KVM virtual machine: memory slots, in-kernel irqchip and PIT, irqfd, ioeventfd."""

from __future__ import annotations

import errno
import os
import threading

from pemu.accel.kvm import abi
from pemu.accel.kvm.errors import KVMError
from pemu.accel.kvm.ioctl import ioctl_raw, kvm_ioctl
from pemu.accel.kvm.system import KVMSystem
from pemu.accel.kvm.vcpu import KVMVCPU

# Intel VMX needs three pages below 4 GiB for the real-mode TSS and one for the
# identity map used while the guest runs unpaged; QEMU and Firecracker put them
# just below the BIOS area at the top of the 32-bit space, which boards keep free.
TSS_ADDR = 0xFFFB_D000
IDENTITY_MAP_ADDR = 0xFFFB_C000


class KVMVM:
    """One VM.  Create vCPUs with ``create_vcpu`` after memory and the irqchip are set."""

    def __init__(self, system: KVMSystem) -> None:
        self.system = system
        while True:
            ret, err = ioctl_raw(system.fd, abi.KVM_CREATE_VM, 0)
            if ret >= 0:
                break
            if err != errno.EINTR:
                raise KVMError(f"{system.path}: cannot create a VM: {os.strerror(err)}")
        self.fd = ret
        self._next_slot = 0
        self.slots: list[abi.KvmUserspaceMemoryRegion] = []
        self.has_irqchip = False
        self._eventfds: list[int] = []
        self.lock = threading.Lock()
        if self.check_extension(abi.KVM_CAP_SET_TSS_ADDR):
            kvm_ioctl(self.fd, abi.KVM_SET_TSS_ADDR, TSS_ADDR, "SET_TSS_ADDR")
        if self.check_extension(abi.KVM_CAP_SET_IDENTITY_MAP_ADDR):
            addr = abi.u64(IDENTITY_MAP_ADDR)
            kvm_ioctl(self.fd, abi.KVM_SET_IDENTITY_MAP_ADDR, addr, "SET_IDENTITY_MAP_ADDR")

    def check_extension(self, cap: int) -> int:
        return self.system.check_extension(cap, self.fd)

    def max_vcpus(self) -> int:
        return self.check_extension(abi.KVM_CAP_MAX_VCPUS) or self.check_extension(
            abi.KVM_CAP_NR_VCPUS) or 4

    # -- memory ----------------------------------------------------------------------------
    def add_memory(self, guest_phys: int, size: int, host_addr: int,
                   read_only: bool = False) -> int:
        """Map host memory at guest_phys; returns the slot number."""
        if size <= 0 or size & 0xFFF or guest_phys & 0xFFF or host_addr & 0xFFF:
            raise KVMError(f"memory slot at 0x{guest_phys:x}+0x{size:x}: must be page aligned")
        region = abi.KvmUserspaceMemoryRegion(
            slot=self._next_slot, flags=abi.KVM_MEM_READONLY if read_only else 0,
            guest_phys_addr=guest_phys, memory_size=size, userspace_addr=host_addr)
        ret, err = ioctl_raw(self.fd, abi.KVM_SET_USER_MEMORY_REGION, region)
        if ret < 0:
            raise KVMError(f"KVM cannot map guest RAM at 0x{guest_phys:x} ({size >> 20} MiB): "
                           f"{os.strerror(err)}")
        self.slots.append(region)
        self._next_slot += 1
        return region.slot

    # -- interrupt controllers ------------------------------------------------------------
    def create_irqchip(self) -> None:
        """The in-kernel PIC pair, IOAPIC and per-vCPU local APICs."""
        kvm_ioctl(self.fd, abi.KVM_CREATE_IRQCHIP, 0, "CREATE_IRQCHIP")
        self.has_irqchip = True

    def create_pit(self) -> None:
        kvm_ioctl(self.fd, abi.KVM_CREATE_PIT2, abi.KvmPitConfig(flags=abi.KVM_PIT_SPEAKER_DUMMY),
                  "CREATE_PIT2")

    def irq_line(self, irq: int, level: bool) -> None:
        """Drive a GSI of the in-kernel PIC/IOAPIC (KVM_IRQ_LINE)."""
        kvm_ioctl(self.fd, abi.KVM_IRQ_LINE, abi.KvmIrqLevel(irq=irq, level=int(level)),
                  "IRQ_LINE")

    def set_gsi_routing(self, routes: list[tuple[int, int, int]]) -> None:
        """Replace the GSI table with (gsi, irqchip, pin) entries."""
        table = abi.irq_routing_struct(len(routes))()
        table.nr = len(routes)
        for i, (gsi, chip, pin) in enumerate(routes):
            e = table.entries[i]
            e.gsi, e.type = gsi, abi.KVM_IRQ_ROUTING_IRQCHIP
            e.u.irqchip.irqchip, e.u.irqchip.pin = chip, pin
        kvm_ioctl(self.fd, abi.KVM_SET_GSI_ROUTING, table, "SET_GSI_ROUTING")

    def irqfd(self, gsi: int, resample: bool = False) -> tuple[int, int | None]:
        """An eventfd whose every write injects GSI ``gsi`` (edge); with ``resample``, a
        level-triggered line that KVM lowers on EOI and signals on the second fd."""
        fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        req = abi.KvmIrqfd(fd=fd, gsi=gsi)
        rfd = None
        if resample:
            rfd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            req.flags = abi.KVM_IRQFD_FLAG_RESAMPLE
            req.resamplefd = rfd
        ret, err = ioctl_raw(self.fd, abi.KVM_IRQFD, req)
        if ret < 0:
            os.close(fd)
            if rfd is not None:
                os.close(rfd)
            raise KVMError(f"KVM IRQFD for GSI {gsi} failed: {os.strerror(err)}")
        self._eventfds += [fd] + ([rfd] if rfd is not None else [])
        return fd, rfd

    def ioeventfd(self, addr: int, length: int, datamatch: int | None = None,
                  pio: bool = False) -> int:
        """An eventfd that KVM signals, without leaving the kernel, when the guest writes
        ``length`` bytes (``datamatch`` if given) to ``addr`` (MMIO, or a port with pio)."""
        fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        flags = abi.KVM_IOEVENTFD_FLAG_PIO if pio else 0
        if datamatch is not None:
            flags |= abi.KVM_IOEVENTFD_FLAG_DATAMATCH
        req = abi.KvmIoeventfd(datamatch=datamatch or 0, addr=addr, len=length, fd=fd,
                               flags=flags)
        ret, err = ioctl_raw(self.fd, abi.KVM_IOEVENTFD, req)
        if ret < 0:
            os.close(fd)
            raise KVMError(f"KVM IOEVENTFD at 0x{addr:x} failed: {os.strerror(err)}")
        self._eventfds.append(fd)
        return fd

    # -- in-kernel device state (savevm and migration: pemu/hw/x86/kvm_chips.py) --------
    def get_irqchip(self, chip: int) -> abi.KvmIrqchip:
        state = abi.KvmIrqchip(chip_id=chip)
        kvm_ioctl(self.fd, abi.KVM_GET_IRQCHIP, state, "GET_IRQCHIP")
        return state

    def set_irqchip(self, state: abi.KvmIrqchip) -> None:
        kvm_ioctl(self.fd, abi.KVM_SET_IRQCHIP, state, "SET_IRQCHIP")

    def get_pit(self) -> abi.KvmPitState2:
        state = abi.KvmPitState2()
        kvm_ioctl(self.fd, abi.KVM_GET_PIT2, state, "GET_PIT2")
        return state

    def set_pit(self, state: abi.KvmPitState2) -> None:
        kvm_ioctl(self.fd, abi.KVM_SET_PIT2, state, "SET_PIT2")

    def get_clock(self) -> int:
        """kvmclock's value (ns): the guest's notion of elapsed time."""
        data = abi.KvmClockData()
        kvm_ioctl(self.fd, abi.KVM_GET_CLOCK, data, "GET_CLOCK")
        return data.clock

    def set_clock(self, ns: int) -> None:
        kvm_ioctl(self.fd, abi.KVM_SET_CLOCK, abi.KvmClockData(clock=ns), "SET_CLOCK")

    def set_slot_flags(self, slot: int, flags: int) -> None:
        """Re-register a memory slot with other flags (dirty logging on or off)."""
        region = self.slots[slot]
        region.flags = flags | (region.flags & abi.KVM_MEM_READONLY)
        kvm_ioctl(self.fd, abi.KVM_SET_USER_MEMORY_REGION, region, "SET_USER_MEMORY_REGION")

    # -- lifetime ----------------------------------------------------------------------------
    def create_vcpu(self, index: int) -> KVMVCPU:
        return KVMVCPU(self, index)

    def close(self) -> None:
        for fd in self._eventfds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._eventfds.clear()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
