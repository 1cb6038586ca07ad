"""The x86-64 ``microvm`` board under KVM: RAM, 16550A, i8042, virtio-mmio, direct boot.

Layout (QEMU microvm compatible where the guest can tell):
  RAM            0 .. min(ram, 3 GiB), the rest from 4 GiB
  16550A         I/O ports 0x3f8-0x3ff, ISA IRQ 4
  i8042          I/O ports 0x60/0x64 (reset only)
  virtio-mmio    8 slots of 0x200 at 0xfeb00000, slot n on IRQ 5 + n; the first device
                 takes the highest slot; announced as virtio_mmio.device= on the command
                 line (microvm's acpi=off behaviour)
  IOAPIC/LAPIC   in-kernel (KVM_CREATE_IRQCHIP) at 0xfec00000/0xfee00000, PIT in-kernel
  MP table       0x9fc00 (e820-reserved)

No firmware runs: the kernel is loaded directly (bzImage, PVH vmlinux or multiboot), and
the boot CPU starts at its entry point in the mode its protocol wants.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass

from pemu import threads
from pemu.accel.kvm import abi
from pemu.accel.kvm.errors import GuestCannotRun, KVMError
from pemu.accel.kvm.irq import IrqfdSink, IrqLineSink
from pemu.accel.kvm.run_control import VCPURunner
from pemu.accel.kvm.system import KVMSystem
from pemu.accel.kvm.vcpu import KVMVCPU, install_kick_handler
from pemu.accel.kvm.vm import KVMVM
from pemu.hw.char.serial16550 import Serial16550
from pemu.hw.core import IRQLine
from pemu.hw.virtio.mmio import VirtioMMIO
from pemu.hw.x86 import boot_layout
from pemu.hw.x86.boot_layout import BootEntry
from pemu.hw.x86.e820 import memory_map
from pemu.hw.x86.guest_errors import GuestErrorLog
from pemu.hw.x86.i8042 import COMMAND_PORT, DATA_PORT, I8042
from pemu.hw.x86.kernel_loader import load_kernel
from pemu.hw.x86.microvm_state import MigratableMicrovm
from pemu.hw.x86.mptable import MPTABLE_ADDR, build_mptable, isa_irq_to_pin
from pemu.main_loop import get_main_loop
from pemu.memory.address_space import AddressSpace, GuestMemoryError, MMIORegion
from pemu.memory.backends import open_ram_backing
from pemu.qemuopts.config import SystemConfig
from pemu.qemuopts.keyval import OptionError, parse_bool
from pemu.qom.registry import (
    MACHINE,
    Property,
    RegistryError,
    TypeInfo,
    check_options,
    register,
)
from pemu.target.x86.kvm_cpu import configure_vcpu, set_entry_state
from pemu.target.x86.msrs import boot_msrs

LOW_RAM_MAX = 3 << 30
HIGH_RAM_BASE = 1 << 32
SERIAL_PORT, SERIAL_IRQ = 0x3F8, 4
VIRTIO_MMIO_BASE, VIRTIO_MMIO_SIZE, VIRTIO_SLOTS, VIRTIO_FIRST_IRQ = 0xFEB00000, 0x200, 8, 5
POST_PORT = 0x80  # port 0x80 "POST code"/io_delay writes are harmless by design
_ON_AUTO = ("on", "auto")
MICROVM_MACHINE = register(TypeInfo(
    "microvm", MACHINE, "microvm (i386)", arch="x86_64", is_default=True,
    properties=(
        Property("acpi", "OnOffAuto", "off", "ACPI tables (pemu builds none: devices are "
                 "announced on the kernel command line)"),
        Property("x-option-roms", "bool", "on", "option ROMs (pemu loads the kernel itself)"),
        Property("pit", "OnOffAuto", "auto", "i8254 PIT (KVM's in-kernel one)",
                 choices=_ON_AUTO),
        Property("pic", "OnOffAuto", "auto", "i8259 PIC (KVM's in-kernel irqchip)",
                 choices=_ON_AUTO),
        Property("rtc", "OnOffAuto", "auto", "MC146818 RTC (KVM's in-kernel one)",
                 choices=_ON_AUTO),
        Property("isa-serial", "bool", "on", "ISA serial port at 0x3f8",
                 choices=("on",)),
        Property("graphics", "bool", "off", "graphics (pemu has none)", choices=("off",)),
    )))
VIRTIO_NOTIFY_OFFSET = 0x50


class BoardError(Exception):
    """Configuration that cannot make a machine; the message is for the user."""


@dataclass
class VirtioSlot:
    base: int
    irq: int
    transport: object


def host_memory_limit() -> int:
    """RAM plus swap of the host: more than this cannot be given to a guest."""
    total = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "SwapTotal"):
                    total += int(rest.split()[0]) << 10
    except (OSError, ValueError):
        return 1 << 62
    return total or 1 << 62


class Microvm(MigratableMicrovm):
    def __init__(self, cfg: SystemConfig, log: GuestErrorLog, chardevs=None,
                 kvm_path: str = "/dev/kvm") -> None:
        self.cfg = cfg
        self.log = log
        self.ncpus = cfg.smp
        self.exit_status: int | None = None
        self.error: str | None = None
        self.done = threading.Event()
        self.exit_reason = ""
        # Hooks for the monitor and the gdb stub (set before run()):
        #   guest_reset_handler()       the guest reset itself: restart it in place
        #                               (the monitor does it under its state lock and
        #                               reports RESET); default: _guest_reset_worker
        #   debug_handler(vcpu, info)   KVM_EXIT_DEBUG under KVM_SET_GUEST_DEBUG
        self.guest_reset_handler = None
        self.debug_handler = None
        self.runner: VCPURunner | None = None
        self._load_args: tuple[bytes, bytes | None, str] | None = None
        self._boot_state: list[tuple] = []
        self._reset_lock = threading.Lock()
        self._check_machine(cfg.machine)
        self._check_ram(cfg.ram_size)
        self.system = KVMSystem(kvm_path)
        self.system.require({abi.KVM_CAP_IRQCHIP: "an in-kernel irqchip",
                             abi.KVM_CAP_USER_MEMORY: "user memory slots",
                             abi.KVM_CAP_IRQFD: "irqfd", abi.KVM_CAP_IOEVENTFD: "ioeventfd",
                             abi.KVM_CAP_PIT2: "an in-kernel PIT",
                             abi.KVM_CAP_EXT_CPUID: "KVM_GET_SUPPORTED_CPUID"})
        self.vm = KVMVM(self.system)
        if self.ncpus > self.vm.max_vcpus():
            raise BoardError(f"-smp {self.ncpus}: this KVM allows at most "
                             f"{self.vm.max_vcpus()} vCPUs")
        self.mem = AddressSpace("memory")
        self.io = AddressSpace("io")
        self._map_ram(cfg.ram_size)
        self.vm.create_irqchip()
        self.vm.create_pit()
        self.vm.set_gsi_routing(self._gsi_routes())
        self.chardevs = chardevs
        self._add_serial()
        self.i8042 = I8042(self.request_reset)
        self.io.add_mmio("i8042-data", DATA_PORT, 1, self.i8042.data)
        self.io.add_mmio("i8042-cmd", COMMAND_PORT, 1, self.i8042.command)
        self.io.add_mmio("post", POST_PORT, 1, _Sink())
        self.virtio: list[VirtioSlot] = []
        self.vcpus: list[KVMVCPU] = [self.vm.create_vcpu(i) for i in range(self.ncpus)]
        for vcpu in self.vcpus:
            configure_vcpu(vcpu, self.system, self.ncpus)
        self.entry: BootEntry | None = None
        self.init_migration()

    # -- configuration checks ------------------------------------------------------------
    def _check_machine(self, machine: dict[str, str]) -> None:
        try:
            check_options(MICROVM_MACHINE, machine)
        except RegistryError as e:
            raise BoardError(f"-M microvm: {e}") from None
        # ACPI tables are not generated: with acpi=on a guest would fall back to the MP
        # table anyway, so devices are always announced on the command line.
        self.acpi = parse_bool(machine.get("acpi", "off"), "-M microvm,acpi")
        if self.acpi:
            print("pemu: microvm: ACPI tables are not generated; using the MP table and "
                  "virtio_mmio.device= as with acpi=off", file=sys.stderr)

    def _check_ram(self, size: int) -> None:
        if size < 2 << 20:
            raise BoardError(f"-m {size >> 20}M: microvm needs at least 2 MiB of RAM")
        if size & 0xFFFFF:
            raise BoardError("-m: RAM size must be a multiple of 1 MiB")
        limit = host_memory_limit()
        if size > limit:
            raise BoardError(f"-m {size >> 20}M: more memory than this host has "
                             f"({limit >> 20} MiB of RAM and swap)")

    def _map_ram(self, size: int) -> None:
        low = min(size, LOW_RAM_MAX)
        ranges = [(0, low)] + ([(HIGH_RAM_BASE, size - low)] if size > low else [])
        self.ram_slots = []  # (RAMBlock, KVM slot): what migration sends and logs
        for i, (base, length) in enumerate(ranges):
            try:
                block = self.mem.add_ram(f"ram{i}", base, length)
                if i == 0:  # a memfd/file backend (live update): the low block only
                    self._back_ram(block)
            except (OSError, ValueError) as e:
                raise BoardError(f"-m {size >> 20}M: cannot allocate guest RAM: {e}") from None
            self.ram_slots.append((block, self.vm.add_memory(base, length, block.host_addr)))
        self.ram_ranges = ranges
        self.low_ram_end = low

    def _back_ram(self, block) -> None:
        """-machine memory-backend= a memfd or shared file: the RAM a cpr-transfer hands
        to a new pemu.  KVM's slot keeps the block's address; mapping the backing over
        it later (an incoming migration attaches it when the state arrives) is seen by
        KVM through its MMU notifier."""
        block.backing = open_ram_backing(self.cfg, block.name)
        if block.backing is not None and not self.cfg.incoming:
            block.attach_backing()

    @staticmethod
    def _gsi_routes() -> list[tuple[int, int, int]]:
        routes = []
        for gsi in range(16):
            if gsi != 2:
                routes.append((gsi, abi.KVM_IRQCHIP_PIC_MASTER if gsi < 8 else
                               abi.KVM_IRQCHIP_PIC_SLAVE, gsi % 8))
        for gsi in range(24):
            if gsi != 2:
                routes.append((gsi, abi.KVM_IRQCHIP_IOAPIC, isa_irq_to_pin(gsi)))
        return routes

    # -- devices ---------------------------------------------------------------------------
    def _add_serial(self) -> None:
        chardev = None
        if self.chardevs is not None:
            spec = self.cfg.first_serial()
            chardev = self.chardevs.from_legacy(spec, "serial0")
        self.serial = Serial16550(chardev, IRQLine(IrqLineSink(self.vm, SERIAL_IRQ), "serial0"))
        self.io.add_mmio("serial0", SERIAL_PORT, 8, self.serial)

    def add_virtio(self, device, name: str) -> VirtioSlot:
        """Put a virtio device in the highest free slot, with irqfd and ioeventfds."""
        slot_index = VIRTIO_SLOTS - 1 - len(self.virtio)
        if slot_index < 0:
            raise BoardError(f"{name}: microvm has only {VIRTIO_SLOTS} virtio-mmio slots")
        base = VIRTIO_MMIO_BASE + slot_index * VIRTIO_MMIO_SIZE
        irq = VIRTIO_FIRST_IRQ + slot_index
        transport = VirtioMMIO(self.mem, device, IRQLine(IrqfdSink(self.vm, irq), name), id=name)
        self.mem.add_mmio(name, base, VIRTIO_MMIO_SIZE, transport)
        for q in range(len(transport.queues)):
            fd = self.vm.ioeventfd(base + VIRTIO_NOTIFY_OFFSET, 4, datamatch=q)
            self._watch_eventfd(fd, lambda q=q, t=transport: t.notify_queue(q))
        slot = VirtioSlot(base, irq, transport)
        self.virtio.append(slot)
        return slot

    @staticmethod
    def _watch_eventfd(fd: int, callback) -> None:
        def ready() -> None:
            try:
                os.eventfd_read(fd)
            except BlockingIOError:
                return
            callback()

        get_main_loop().add_reader(fd, ready)

    def virtio_cmdline(self) -> str:
        return " ".join(f"virtio_mmio.device={VIRTIO_MMIO_SIZE}@0x{s.base:x}:{s.irq}"
                        for s in self.virtio)

    # -- boot ------------------------------------------------------------------------------
    def load(self, kernel: bytes, initrd: bytes | None, cmdline: str) -> BootEntry:
        extra = self.virtio_cmdline()
        full = f"{cmdline} {extra}".strip() if extra else cmdline
        e820 = memory_map(self.ram_ranges)
        write = self.mem.write
        entry = load_kernel(kernel, initrd, full, write, self.low_ram_end, e820)
        write(MPTABLE_ADDR, build_mptable(self.ncpus))
        set_entry_state(self.vcpus[0], entry.mode, entry.rip, entry.regs, write,
                        boot_layout.GDT_ADDR, boot_layout.PAGE_TABLES_ADDR,
                        boot_layout.STACK_TOP)
        self.entry = entry
        self._load_args = (kernel, initrd, cmdline)
        self._boot_state = [self._save_vcpu(v) for v in self.vcpus]
        return entry

    # -- reset -----------------------------------------------------------------------------
    @staticmethod
    def _save_vcpu(vcpu: KVMVCPU) -> tuple:
        return (vcpu.get_regs(), vcpu.get_sregs(), vcpu.get_fpu(), vcpu.get_lapic(),
                vcpu.get_mp_state())

    def reset_in_place(self) -> None:
        """Back to the state right after boot: kernel and MP table reloaded into RAM,
        every vCPU's registers, FPU, local APIC and run state as at power-on (APs wait
        for INIT/SIPI again), boot MSRs, virtio transports reset.  RAM outside the
        loaded images keeps its contents, as on a real warm reset.  The caller has the
        vCPUs paused (``runner.pause()``)."""
        if self._load_args is None:
            raise BoardError("no kernel loaded")
        with self._reset_lock:
            self.load(*self._load_args)
            msrs = boot_msrs(set(self.system.msr_index_list()))
            for vcpu, state in zip(self.vcpus, self._boot_state, strict=True):
                regs, sregs, fpu, lapic, mp_state = state
                vcpu.set_guest_debug(0)
                if msrs:
                    vcpu.set_msrs(msrs)
                vcpu.set_sregs(sregs)
                vcpu.set_regs(regs)
                vcpu.set_fpu(fpu)
                vcpu.set_lapic(lapic)
                vcpu.set_mp_state(mp_state)
            for slot in self.virtio:
                slot.transport.reset()

    def _guest_reset_worker(self, why: str) -> None:
        """A guest-initiated reset, off the vCPU thread (pausing waits for that thread)."""
        try:
            if self.guest_reset_handler is not None:
                self.guest_reset_handler()
                return
            assert self.runner is not None
            if not self.runner.pause():
                self.request_exit(1, f"guest {why}: the vCPUs did not stop for the reset")
                return
            self.reset_in_place()
            self.runner.resume()
        except Exception as e:  # noqa: BLE001 - any failure ends the VM with its reason
            self.request_exit(1, f"guest {why}: reset failed: {e}")

    # -- exits (vCPU threads) ----------------------------------------------------------------
    def pio_read(self, port: int, size: int) -> int:
        region = self.io.find(port, size)
        if region is None:
            self.log(f"read of unassigned I/O port 0x{port:x} (size {size})")
            return (1 << (8 * size)) - 1
        return region.handler.mmio_read(port - region.base, size)  # type: ignore[union-attr]

    def pio_write(self, port: int, size: int, value: int) -> None:
        region = self.io.find(port, size)
        if region is None:
            self.log(f"write of 0x{value:x} to unassigned I/O port 0x{port:x} (size {size})")
            return
        region.handler.mmio_write(port - region.base, size, value)  # type: ignore[union-attr]

    def mmio_read(self, addr: int, size: int) -> int:
        region = self.mem.find(addr, size)
        if not isinstance(region, MMIORegion):
            self.log(f"read of unassigned physical memory 0x{addr:x} (size {size})")
            return (1 << (8 * size)) - 1
        return region.handler.mmio_read(addr - region.base, size)

    def mmio_write(self, addr: int, size: int, value: int) -> None:
        region = self.mem.find(addr, size)
        if not isinstance(region, MMIORegion):
            self.log(f"write of 0x{value:x} to unassigned physical memory 0x{addr:x} "
                     f"(size {size})")
            return
        region.handler.mmio_write(addr - region.base, size, value)

    def guest_halted(self, vcpu: KVMVCPU) -> None:
        pass  # with the in-kernel irqchip KVM keeps halted vCPUs; nothing to do here

    def guest_reset(self, vcpu: KVMVCPU, why: str) -> None:
        self._reset_or_exit(why)

    def request_reset(self) -> None:
        self._reset_or_exit("reset through the i8042")

    def _reset_or_exit(self, why: str) -> None:
        """-no-reboot (and a guest that cannot shut down any other way) ends pemu with
        status 0; otherwise the machine restarts in place, as QEMU's does."""
        if self.cfg.no_reboot or self.runner is None:
            self.request_exit(0, f"guest {why}")
            return
        self.runner.request_pause()
        threads.start_daemon(self._guest_reset_worker, why, name="pemu-reset")

    def debug_exit(self, vcpu: KVMVCPU, info: abi.KvmDebugExitArch) -> None:
        if self.debug_handler is None:
            raise vcpu.failure("debug exit without a debugger attached")
        self.debug_handler(vcpu, info)

    # -- running ---------------------------------------------------------------------------
    def request_exit(self, status: int, why: str = "") -> None:
        if self.exit_status is None:
            self.exit_status = status
            self.exit_reason = why
        self.done.set()
        if self.runner is not None:
            self.runner.shutdown()
        for vcpu in self.vcpus:
            vcpu.kick()

    def _vcpu_thread(self, vcpu: KVMVCPU) -> None:
        try:
            vcpu.run(self, self._read_phys)
        except GuestCannotRun as e:
            self.error = str(e)
            self.request_exit(1, str(e))
        except (KVMError, GuestMemoryError, OSError) as e:
            self.error = f"vCPU {vcpu.index}: {e}"
            self.request_exit(1, self.error)

    def _read_phys(self, addr: int, size: int) -> bytes:
        return self.mem.read(addr, size)

    def make_runner(self, start_paused: bool = False) -> VCPURunner:
        """The vCPU threads' controller; run() starts it.  Created early so that the
        monitor and the gdb stub can hold it before the guest runs (-S)."""
        if self.runner is None:
            self.runner = VCPURunner(self.vcpus, self._vcpu_thread, start_paused)
        return self.runner

    def run(self, timeout: float | None = None) -> int:
        if self.entry is None:
            raise BoardError("no kernel loaded")
        install_kick_handler()
        runner = self.make_runner()
        runner.start()
        try:
            if not self.done.wait(timeout):
                self.request_exit(124, "timeout")
        except KeyboardInterrupt:
            self.request_exit(130, "interrupted")
        runner.shutdown()
        runner.join(timeout=2)
        return self.exit_status if self.exit_status is not None else 0

    def close(self) -> None:
        for vcpu in self.vcpus:
            vcpu.close()
        self.vm.close()
        self.system.close()


class _Sink:
    def mmio_read(self, offset: int, size: int) -> int:
        return 0xFF

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        pass


__all__ = ["Microvm", "BoardError", "OptionError"]
