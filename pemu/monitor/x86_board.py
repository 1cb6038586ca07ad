"""The monitor's view of the x86-64 ``microvm`` board under KVM.

Pausing uses the board's ``VCPURunner`` (pemu/accel/kvm/run_control.py): every vCPU
thread is kicked out of KVM_RUN and parks until ``cont``.  Commands that need vCPU
state while the guest runs (``info registers``, ``x``, ``info cpus``) pause the vCPUs
for the moment of the read and let them go again, without STOP/RESUME events: the
ioctls that read a vCPU wait for it to leave KVM_RUN anyway, and on hardware KVM a
vCPU in a tight loop might not leave for a long time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from pemu.accel.kvm import abi
from pemu.accel.kvm.errors import KVMError
from pemu.accel.kvm.page_walk import NotMapped, translate
from pemu.memory.address_space import GuestMemoryError
from pemu.monitor.errors import QMPError
from pemu.monitor.machine import RUNNING, CPUInfo, MonitoredMachine

MSR_KERNEL_GS_BASE = 0xC000_0102
_EFLAGS_LETTERS = [(11, "O"), (10, "D"), (7, "S"), (6, "Z"), (4, "A"), (2, "P"), (0, "C")]


def segment_flags(seg: abi.KvmSegment) -> int:
    """The descriptor's attribute bits where the second GDT dword has them (QEMU's
    ``info registers`` column): type 11:8, S 12, DPL 14:13, P 15, AVL 20, L 21, D/B 22,
    G 23."""
    return ((seg.type << 8) | (seg.s << 12) | (seg.dpl << 13) | (seg.present << 15)
            | (seg.avl << 20) | (seg.l << 21) | (seg.db << 22) | (seg.g << 23))


def format_registers(regs: abi.KvmRegs, sregs: abi.KvmSregs, fpu: abi.KvmFpu,
                     halted: bool) -> str:
    """``info registers`` for one x86-64 vCPU, laid out as QEMU prints it."""
    lines = []
    gprs = [("RAX", regs.rax), ("RBX", regs.rbx), ("RCX", regs.rcx), ("RDX", regs.rdx),
            ("RSI", regs.rsi), ("RDI", regs.rdi), ("RBP", regs.rbp), ("RSP", regs.rsp)]
    gprs += [(f"R{n}".ljust(3), getattr(regs, f"r{n}")) for n in range(8, 16)]
    for i in range(0, 16, 4):
        lines.append(" ".join(f"{name}={value:016x}" for name, value in gprs[i:i + 4]))
    fl = regs.rflags
    letters = "".join(ch if fl >> bit & 1 else "-" for bit, ch in _EFLAGS_LETTERS)
    lines.append(f"RIP={regs.rip:016x} RFL={fl:08x} [{letters}] CPL={sregs.cs.dpl} "
                 f"II=0 A20=1 SMM=0 HLT={int(halted)}")
    for name in ("es", "cs", "ss", "ds", "fs", "gs", "ldt", "tr"):
        seg = getattr(sregs, name)
        label = name.upper().ljust(3)
        lines.append(f"{label}={seg.selector:04x} {seg.base:016x} {seg.limit:08x} "
                     f"{segment_flags(seg):08x}" + (" (unusable)" if seg.unusable else ""))
    lines.append(f"GDT=     {sregs.gdt.base:016x} {sregs.gdt.limit:08x}")
    lines.append(f"IDT=     {sregs.idt.base:016x} {sregs.idt.limit:08x}")
    lines.append(f"CR0={sregs.cr0:08x} CR2={sregs.cr2:016x} CR3={sregs.cr3:016x} "
                 f"CR4={sregs.cr4:08x}")
    lines.append(f"CR8={sregs.cr8:016x} EFER={sregs.efer:016x} "
                 f"APIC_BASE={sregs.apic_base:016x}")
    lines.append(f"FCW={fpu.fcw:04x} FSW={fpu.fsw:04x} [ST={(fpu.fsw >> 11) & 7}] "
                 f"FTW={fpu.ftwx:02x} MXCSR={fpu.mxcsr:08x}")
    for i in range(0, 16, 2):
        pair = []
        for j in (i, i + 1):
            value = int.from_bytes(bytes(fpu.xmm[j]), "little")
            pair.append(f"XMM{j:02d}={value >> 64:016x}{value & (2**64 - 1):016x}")
        lines.append(" ".join(pair))
    return "\n".join(lines) + "\n"


class MicrovmMonitor(MonitoredMachine):
    """``MonitoredMachine`` for ``pemu.hw.x86.microvm.Microvm``.

    Create it after the board's devices exist and before ``board.run``; it installs
    the board's vCPU runner (paused with -S) and its guest-reset hook.
    """

    target = "x86_64"
    accel = "kvm"
    cpu_type = "host-x86_64-cpu"
    machine_type = "microvm"
    machine_description = "microvm (i386)"

    def __init__(self, board, cfg) -> None:
        super().__init__(name=cfg.name, start_stopped=cfg.start_stopped)
        self.board = board
        self.cfg = cfg
        self.migratable = board  # savevm, migrate (pemu/hw/x86/microvm_state.py)
        self.chardevs = getattr(board, "chardevs", None)
        self.network = getattr(board, "network", None)  # pemu/net/network.py
        self.runner = board.make_runner(start_paused=cfg.start_stopped)
        board.guest_reset_handler = self._guest_reset
        self._register_drives()

    def _register_drives(self) -> None:
        """Every virtio-blk backend, under its -drive id, for query-block & co."""
        names = {}
        for n, dev in enumerate(self.cfg.devices):
            if dev.get("driver") == "virtio-blk-device" and dev.get("drive"):
                names[dev.get("id") or f"virtio{n}"] = dev["drive"]
        for slot in self.board.virtio:
            device = getattr(slot.transport, "device", None)
            backend = getattr(device, "backend", None)
            if backend is None or not hasattr(backend, "node"):
                continue
            dev_id = getattr(device, "id", None) or "virtio"
            self.block.add_drive(names.get(dev_id, dev_id), backend,
                                 qdev=f"/machine/peripheral/{dev_id}")

    # -- MonitoredMachine primitives ----------------------------------------------------------
    def _pause(self) -> None:
        if not self.runner.pause():
            raise QMPError("the vCPUs did not stop within 10 seconds")

    def _resume(self) -> None:
        self.runner.resume()

    def _reset(self) -> None:
        """QMP system_reset: the guest restarts from its kernel entry; a paused machine
        stays paused, as in QEMU."""
        self._pause()
        try:
            self.board.reset_in_place()
        except (KVMError, ValueError) as e:
            raise QMPError(f"reset failed: {e}") from None
        finally:
            if self._state == RUNNING:
                self.runner.resume()

    def _guest_reset(self) -> None:
        """Board hook (its reset thread): the guest reset itself (triple fault, i8042).
        Restart it in place and report RESET; a user's stop that came in meanwhile
        keeps the machine paused."""
        with self._state_lock:
            self._reset()
        self.guest_reset()

    def _powerdown(self) -> None:
        """microvm without ACPI has no power button (QEMU's acpi=off microvm neither):
        the request only makes the POWERDOWN event."""

    def _quit(self) -> None:
        self.board.request_exit(0, "quit from the monitor")

    def board_exited(self) -> None:
        """Call once ``board.run`` has returned: reports why, as QEMU's SHUTDOWN does."""
        if self.quit_requested.is_set():
            return
        why = getattr(self.board, "exit_reason", "") or ""
        if why.startswith("guest") and "reset" in why:
            self.events.emit("SHUTDOWN", {"guest": True, "reason": "guest-reset"})
        elif why.startswith("guest"):
            self.events.emit("SHUTDOWN", {"guest": True, "reason": "guest-shutdown"})
        elif why == "interrupted":
            self.events.emit("SHUTDOWN", {"guest": False, "reason": "host-signal"})
        else:
            self.events.emit("SHUTDOWN", {"guest": False, "reason": "host-error"})

    # -- vCPU state -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def quiesced(self) -> Iterator[None]:
        """vCPUs parked for the duration (briefly, and silently, if they were running)."""
        with self._state_lock:
            running = self._state == RUNNING and not self.board.done.is_set()
            if running:
                self._pause()
            try:
                yield
            finally:
                if running:
                    self.runner.resume()

    def vcpu(self, index: int):
        vcpus = self.board.vcpus
        if not 0 <= index < len(vcpus):
            raise QMPError(f"Invalid CPU index {index}")
        return vcpus[index]

    def cpus(self) -> list[CPUInfo]:
        out = []
        with self.quiesced():
            for v in self.board.vcpus:
                try:
                    pc = v.get_regs().rip
                    halted = v.get_mp_state() == abi.KVM_MP_STATE_HALTED
                except KVMError:
                    pc, halted = 0, False
                out.append(CPUInfo(v.index, pc, thread_id=self.runner.thread_id(v.index),
                                   halted=halted, props={"core-id": v.index, "socket-id": 0,
                                                         "thread-id": 0}))
        return out

    def cpu_registers(self, index: int) -> str:
        v = self.vcpu(index)
        with self.quiesced():
            try:
                text = format_registers(v.get_regs(), v.get_sregs(), v.get_fpu(),
                                        v.get_mp_state() == abi.KVM_MP_STATE_HALTED)
            except KVMError as e:
                raise QMPError(str(e)) from None
        return text

    def virt_to_phys(self, index: int, vaddr: int) -> int:
        """Through vCPU ``index``'s page tables (the vCPU must be quiesced)."""
        sregs = self.vcpu(index).get_sregs()
        return translate(vaddr, sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer,
                         self.board.mem.read)

    def read_memory(self, addr: int, size: int, physical: bool = True,
                    cpu_index: int = 0) -> bytes:
        try:
            if physical:
                return self.board.mem.read(addr, size)
            out = bytearray()
            with self.quiesced():
                pos = addr
                while pos < addr + size:
                    n = min((pos | 0xFFF) + 1, addr + size) - pos
                    out += self.board.mem.read(self.virt_to_phys(cpu_index, pos), n)
                    pos += n
            return bytes(out)
        except (GuestMemoryError, NotMapped, KVMError, ValueError) as e:
            raise QMPError(f"Invalid addr 0x{addr:x}/size {size} specified: {e}") from None

    def write_memory(self, addr: int, data: bytes, physical: bool = True,
                     cpu_index: int = 0) -> None:
        """For the gdb stub; raises QMPError like read_memory."""
        try:
            if physical:
                self.board.mem.write(addr, data)
                return
            with self.quiesced():
                done = 0
                while done < len(data):
                    pos = addr + done
                    n = min((pos | 0xFFF) + 1 - pos, len(data) - done)
                    self.board.mem.write(self.virt_to_phys(cpu_index, pos),
                                         data[done:done + n])
                    done += n
        except (GuestMemoryError, NotMapped, KVMError, ValueError) as e:
            raise QMPError(f"Invalid addr 0x{addr:x}/size {len(data)} specified: {e}"
                           ) from None

    # -- introspection -----------------------------------------------------------------------
    def info_mtree(self) -> str:
        lines = []
        for space, title in ((self.board.io, "I/O"), (self.board.mem, "memory")):
            lines.append(f"address-space: {title}")
            for r in sorted(space.regions(), key=lambda r: r.base):
                kind = "ram" if hasattr(r, "view") else "i/o"
                lines.append(f"  {r.base:016x}-{r.base + r.size - 1:016x} (prio 0, {kind}): "
                             f"{r.name}")
            lines.append("")
        lines.append("in-kernel (KVM): ioapic fec00000-fec00fff, lapic fee00000-fee00fff, "
                     "pic, pit")
        return "\n".join(lines) + "\n"

    def info_qtree(self) -> str:
        lines = ["bus: main-system-bus", "  type System"]
        for slot in self.board.virtio:
            dev = getattr(slot.transport, "device", None)
            lines.append(f"  dev: virtio-mmio, id \"\"  ({type(dev).__name__}), irq {slot.irq}")
            lines.append(f"    mmio {slot.base:016x}/{0x200:016x}")
        lines.append("  dev: isa-serial, id \"\"  (16550A), iobase 0x3f8, irq 4")
        lines.append("  dev: i8042, id \"\"  (reset only), iobase 0x60/0x64")
        return "\n".join(lines) + "\n"

    def qom_children(self) -> dict[str, str]:
        return {dev["id"]: dev.get("driver", "device") for dev in self.cfg.devices
                if dev.get("id")}
