"""The Arm ``virt`` board (AArch64, TCG) with QEMU's memory map (memmap.py).

CPUs (``-cpu cortex-a57|cortex-a72|cortex-a53|max``, ``-smp N``) run at EL1; the first
starts at the kernel with x0 = the DTB, the others stay off until PSCI CPU_ON (psci.py,
over HVC).  Devices: the GIC (``-M virt,gic-version=2`` (QEMU's default) or ``3``), the
generic timer's lines on PPIs 30/27/26/29, a PL011 UART (SPI 1), a PL031 RTC (SPI 2)
and DRAM at 0x40000000.  The device tree is generated (virt_fdt.py).

The vCPUs run round-robin on the calling thread (accel/tcg/machine.Machine) until the
guest powers off (PSCI SYSTEM_OFF), resets with ``-no-reboot``, or ``request_exit``.
"""

from __future__ import annotations

import threading

from pemu.accel.tcg.log import TCGLog
from pemu.accel.tcg.machine import Machine
from pemu.accel.tcg.system_cpu import DEFAULT_BACKEND, SystemTranslator
from pemu.hw.arm import boot
from pemu.hw.arm.cpu_vmstate import Aarch64CpuState, CounterState
from pemu.hw.arm.memmap import (
    MAX_RAM,
    PPI_TIMER_PHYS,
    PPI_TIMER_VIRT,
    SPI_BASE,
    machine_memmap,
)
from pemu.hw.arm.psci import Psci
from pemu.hw.arm.virt_fdt import ArmVirtLayout, build_arm_virt_fdt
from pemu.hw.arm.virt_parts import make_gic, make_gicv2m, make_rtc, make_uart
from pemu.hw.image_file import ImageFileError, read_image
from pemu.hw.tcg_board import BoardError, TCGBoardRun, tb_size_mib
from pemu.hw.virt_buses import VirtBuses
from pemu.memory.address_space import AddressSpace
from pemu.qemuopts.config import SystemConfig
from pemu.qom.registry import MACHINE, Property, RegistryError, TypeInfo, check_options, register
from pemu.target.aarch64 import cpu_state as a64
from pemu.target.aarch64.cpu_models import CpuModelError, find_model
from pemu.target.aarch64.generic_timer import NS_PER_TICK, Counter
from pemu.target.aarch64.system_cpu import Aarch64CPU
from pemu.target.aarch64.tcg_target import AARCH64

MAX_CPUS = 8
FDT_MAX = 0x10_0000
ARM_VIRT_MACHINE = register(TypeInfo(
    "virt", MACHINE, "QEMU 'virt' board for AArch64", arch="aarch64", is_default=True,
    properties=(
        Property("gic-version", "str", "2", "the GIC: 2 (GICv2, QEMU's default) or 3",
                 choices=("2", "3", "host", "max")),
        Property("dumpdtb", "str", description="write the device tree to a file and exit"),
        Property("virtualization", "bool", "off", "EL2 (not implemented)", choices=("off",)),
        Property("secure", "bool", "off", "EL3 (not implemented)", choices=("off",)),
        Property("highmem", "bool", "on", "high memory regions"),
        Property("acpi", "OnOffAuto", "auto", "ACPI tables (pemu builds none)",
                 choices=("off", "auto")),
    )))


class ArmVirtBoard(VirtBuses, TCGBoardRun):
    """One ``-M virt`` machine: address space, CPUs, devices, images."""

    prog = "pemu-system-aarch64"
    name = "virt"

    def __init__(self, cfg: SystemConfig, chardevs=None, log: TCGLog | None = None) -> None:
        try:
            check_options(ARM_VIRT_MACHINE, cfg.machine)
        except RegistryError as e:
            raise BoardError(f"-M virt: {e}") from None
        if not 1 <= cfg.smp <= MAX_CPUS:
            raise BoardError(f"-smp {cfg.smp}: this board supports 1 to {MAX_CPUS} CPUs")
        if cfg.ram_size < 32 << 20:
            raise BoardError(f"-m {cfg.ram_size >> 20}M: at least 32 MiB of RAM is needed")
        if cfg.ram_size > MAX_RAM:
            raise BoardError(f"-m {cfg.ram_size >> 20}M: at most {MAX_RAM >> 30} GiB of RAM")
        try:
            self.model = find_model(cfg.cpu)
        except CpuModelError as e:
            raise BoardError(str(e)) from None
        self.gic_version = 2 if cfg.machine.get("gic-version", "2") == "2" else 3
        self.cfg = cfg
        self.chardevs = chardevs
        self.highmem = cfg.machine.get("highmem", "on") in ("on", "yes", "true")
        self.memmap = machine_memmap(cfg.ram_size, self.highmem)
        dram = self.memmap["dram"]
        self.space = AddressSpace("memory")
        try:
            self.dram = self.space.add_ram("ram", dram.base, dram.size)
        except (OSError, ValueError) as e:
            raise BoardError(f"-m: cannot allocate guest RAM: {e}") from None
        self.translator = SystemTranslator(
            self.space, self.dram, AARCH64, log,
            backend=cfg.accel.get("backend", DEFAULT_BACKEND),
            tb_size_mib=tb_size_mib(cfg.accel), vcpus=cfg.smp)
        self.counter = Counter()
        self.wakeup = threading.Event()
        self.cpus = [Aarch64CPU(i, self.translator, self.space, self.counter, self.wakeup,
                                self.model) for i in range(cfg.smp)]
        self.harts = self.cpus  # what the shared monitor/stats code calls them
        self.cpu_states = [Aarch64CpuState(cpu) for cpu in self.cpus]
        self.counter_state = CounterState(self.counter)
        self.psci = Psci(self.cpus, lambda: self.guest_shutdown(0), self.request_reset)
        for cpu in self.cpus:
            cpu.conduit = self.psci.handle
        self.gic = make_gic(self)
        self.uart = make_uart(self)
        self.rtc = make_rtc(self)
        self.v2m = make_gicv2m(self) if self.gic_version == 2 else None
        self.add_virtio_slots()
        self.add_pcie_host()
        self.machine = Machine(self.cpus, self.wakeup, lambda: None)
        self.init_run_state()
        self._images = self._read_images()

    # -- wiring helpers (virt_parts.py) ------------------------------------------------------
    def spi_line(self, spi: int):  # -> IRQLine
        return self.gic.spi_line(SPI_BASE + spi)

    def wired_irq(self, source: int):  # -> IRQLine; VirtBuses' name for an SPI
        return self.spi_line(source)

    def wire_timers(self) -> None:
        for cpu in self.cpus:
            cpu.timer_lines["virt"].connect(self.gic.ppi_line(cpu.index, PPI_TIMER_VIRT).set_level)
            cpu.timer_lines["phys"].connect(self.gic.ppi_line(cpu.index, PPI_TIMER_PHYS).set_level)

    # -- images ------------------------------------------------------------------------------
    def _read_images(self) -> dict[str, bytes]:
        images = {}
        limit = self.cfg.ram_size
        for what, path in (("kernel", self.cfg.kernel), ("initrd", self.cfg.initrd)):
            if path:
                try:
                    images[what] = read_image(path, limit)
                except ImageFileError as e:
                    raise BoardError(f"could not load {what} '{path}': {e}") from None
        if "kernel" not in images and not self.cfg.machine.get("dumpdtb"):
            raise BoardError("no -kernel given (the virt board has no firmware)")
        return images

    def device_tree(self, initrd: tuple[int, int] | None = None) -> bytes:
        return build_arm_virt_fdt(ArmVirtLayout(
            self.memmap, [c.mpidr & 0xFF_FFFF for c in self.cpus], f"arm,{self.model.name}"
            if self.model.name != "max" else "arm,cortex-a57", self.gic_version,
            self.cfg.append or "", initrd, virtio_slots=len(self.virtio_slots), pcie=True))

    def dump_dtb(self, path: str) -> None:
        with open(path, "wb") as f:
            f.write(self.device_tree())

    def load(self) -> int:
        """Write the kernel, initrd and DTB into RAM; the boot CPU's entry point."""
        dram = self.memmap["dram"]
        view = self.dram.view

        def write(addr: int, data: bytes) -> None:
            off = addr - dram.base
            view[off:off + len(data)] = data
            self.dram.note_write(off, len(data))

        kernel = boot.load_kernel(self._images["kernel"], write, dram.base, dram.size)
        initrd = None
        if "initrd" in self._images:
            data = self._images["initrd"]
            start = boot.initrd_address(kernel, dram.base, dram.size, len(data))
            write(start, data)
            initrd = (start, start + len(data))
        dtb = self.device_tree(initrd)
        if len(dtb) > FDT_MAX:
            raise BoardError("the device tree is larger than 1 MiB")
        self.dtb_addr = dram.base if kernel.low >= dram.base + FDT_MAX else \
            (kernel.high + 0xFFFF) & ~0xFFFF
        write(self.dtb_addr, dtb)
        return kernel.entry

    def reset(self) -> None:
        self.translator.flush()
        self.pci.reset()  # BARs unmapped, MSI/MSI-X off: firmware and kernel start over
        entry = self.load()
        for cpu in self.cpus:
            cpu.reset(entry)
            cpu.powered_off = cpu.index != 0
        self.cpus[0].state.set_x(0, self.dtb_addr)
        for dev in (self.gic, self.uart, self.rtc):
            if hasattr(dev, "reset"):
                dev.reset()

    # -- machine state (pemu/migration/machine_state.MigratableMachine) -------------------
    def migration_description(self) -> str:
        blocks = ",".join(f"{b.name}:0x{b.size:x}" for b in self.ram_blocks())
        return (f"aarch64 {self.name} cpus={len(self.cpus)} gic={self.gic_version} "
                f"ram={blocks}")

    def vm_clock_ns(self) -> int:
        """The guest's clock (the system counter) in ns: a snapshot's VM CLOCK."""
        return self.counter.ticks() * NS_PER_TICK

    def ram_blocks(self) -> list:
        return [r for r in self.space.regions() if hasattr(r, "view")]

    def migratable_devices(self) -> list:
        # the counter first (the CPUs' timers compare against it), the GIC before the
        # devices that drive its lines, the CPUs last (their post-load asks for exits)
        return [self.counter_state, self.gic, self.uart, self.rtc, *self.bus_devices(),
                *self.cpu_states]

    def migration_blockers(self) -> list[str]:
        return self.bus_migration_blockers()

    def migration_pre_save(self) -> None:
        self.drain_bus_devices()

    def migration_post_load(self) -> None:
        self.translator.flush()  # translated code and page snapshots were of the old RAM
        for cpu in self.cpus:
            cpu.tlb_flush_all()
            cpu.request_exit()
        self.wakeup.set()
        self.reset_vsock_streams()

    def first_cpu_pc(self) -> int:
        return self.cpus[0].slots[a64.PC]

    def close(self) -> None:
        """Nothing to release: chardevs are closed by their owner."""


__all__ = ["ARM_VIRT_MACHINE", "ArmVirtBoard"]
