"""Debugging the x86-64 ``microvm`` under KVM (``-s``, ``-S``, ``-gdb tcp::PORT``).

One GDB thread per vCPU, all-stop.  The machine stops through the monitor adapter
(``MicrovmMonitor``, run state ``debug``, STOP/RESUME on QMP), whose runner parks every
vCPU thread outside KVM_RUN; registers then come from KVM_GET_REGS/SREGS/FPU and the
KERNEL_GS_BASE MSR, memory through the guest's page tables (pemu/accel/kvm/page_walk.py).

Breakpoints and single step use KVM_SET_GUEST_DEBUG:
* ``stepi``: KVM_GUESTDBG_SINGLESTEP on the stepped vCPU while the others stay parked;
  KVM reports KVM_EXIT_DEBUG (#DB) after one instruction.
* ``Z0``/``Z1``: the debug registers DR0-DR3 as execute breakpoints
  (KVM_GUESTDBG_USE_HW_BP), and ``Z2``/``Z4`` as write/access watchpoints, four in all.
  Software breakpoints (int3 with KVM_GUESTDBG_USE_SW_BP) are not used: a KVM that
  emulates ring-0 code, like this host's kvm_pvm, cannot execute int3 at all (see
  ``probe_guest_debug``), while debug registers work on every KVM.
An execute breakpoint faults *before* its instruction, so continuing from one would hit
it again at once; the stub first single-steps every vCPU that sits on one, with the
breakpoints off, and only then lets the machine run.

The register layout and target description are target knowledge
(pemu/target/x86/gdb_registers.py), as is the meaning of DR7
(pemu/target/x86/debug_registers.py); what KVM_SET_GUEST_DEBUG can do on this host is
asked by pemu/accel/kvm/guest_debug_probe.py.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from dataclasses import dataclass

from pemu import threads
from pemu.accel.kvm import abi
from pemu.accel.kvm.errors import KVMError
from pemu.accel.kvm.guest_debug_probe import GuestDebugSupport
from pemu.accel.kvm.guest_debug_probe import probe_guest_debug as probe_kvm_guest_debug
from pemu.gdbstub.server import serve
from pemu.gdbstub.target import (
    BP_HARDWARE,
    BP_SOFTWARE,
    SIGINT,
    SIGTRAP,
    WP_ACCESS,
    WP_WRITE,
    DebugTarget,
    StopEvent,
    TargetError,
)
from pemu.monitor.errors import QMPError
from pemu.monitor.machine import DEBUG
from pemu.target.x86 import debug_registers as dr
from pemu.target.x86.cpu_modes import enter_long_mode
from pemu.target.x86.gdb_registers import (
    LAYOUT,
    RIP_REGNUM,
    SEGMENTS,
    SYSTEM_REGS,
    abridged_tag_word,
    full_tag_word,
    target_xml,
)
from pemu.target.x86.msrs import MSR_KERNEL_GS_BASE

# GDB's breakpoint and watchpoint kinds -> what a debug register slot does
DR_USE = {BP_SOFTWARE: dr.EXECUTE, BP_HARDWARE: dr.EXECUTE, WP_WRITE: dr.WRITE,
          WP_ACCESS: dr.ACCESS}
STOP_WAIT = 10.0


def probe_guest_debug() -> GuestDebugSupport:
    """This host's KVM_SET_GUEST_DEBUG, asked with x86 long-mode probe guests."""
    return probe_kvm_guest_debug(enter_long_mode)


# -- register file of one vCPU --------------------------------------------------------------
class VCPURegisters:
    """All of one vCPU's registers in GDB's layout, read and written through KVM."""

    def __init__(self, vcpu) -> None:
        self.vcpu = vcpu
        self.regs = vcpu.get_regs()
        self.sregs = vcpu.get_sregs()
        self.fpu = vcpu.get_fpu()
        self.kgs = vcpu.get_msrs([MSR_KERNEL_GS_BASE]).get(MSR_KERNEL_GS_BASE, 0)
        self._dirty: set[str] = set()

    def get(self, num: int) -> int:
        name = LAYOUT[num].name
        r, s, f = self.regs, self.sregs, self.fpu
        if num <= RIP_REGNUM:
            return getattr(r, name)
        if name == "eflags":
            return r.rflags & 0xFFFF_FFFF
        if name in SEGMENTS:
            return getattr(s, name).selector
        if name.startswith("st"):
            return int.from_bytes(bytes(f.fpr[int(name[2:])][:10]), "little")
        if name.startswith("xmm"):
            return int.from_bytes(bytes(f.xmm[int(name[3:])]), "little")
        return {
            "fctrl": lambda: f.fcw, "fstat": lambda: f.fsw,
            "ftag": lambda: full_tag_word(f.ftwx, f.fsw, f.fpr),
            "fiseg": lambda: 0, "fioff": lambda: f.last_ip & 0xFFFF_FFFF,
            "foseg": lambda: 0, "fooff": lambda: f.last_dp & 0xFFFF_FFFF,
            "fop": lambda: f.last_opcode, "mxcsr": lambda: f.mxcsr,
            "fs_base": lambda: s.fs.base, "gs_base": lambda: s.gs.base,
            "k_gs_base": lambda: self.kgs,
        }.get(name, lambda: getattr(s, name))()

    def set(self, num: int, value: int) -> None:
        name = LAYOUT[num].name
        r, s, f = self.regs, self.sregs, self.fpu
        if num <= RIP_REGNUM:
            setattr(r, name, value)
            self._dirty.add("regs")
        elif name == "eflags":
            r.rflags = (r.rflags & ~0xFFFF_FFFF) | value
            self._dirty.add("regs")
        elif name in SEGMENTS:
            # Only the selector: the hidden descriptor part stays as it is (QEMU's gdb
            # stub reloads it from the GDT; a debugger rarely wants either).
            getattr(s, name).selector = value & 0xFFFF
            self._dirty.add("sregs")
        elif name in ("fs_base", "gs_base"):
            getattr(s, name[:2]).base = value
            self._dirty.add("sregs")
        elif name == "k_gs_base":
            self.kgs = value
            self._dirty.add("msr")
        elif name in SYSTEM_REGS:
            setattr(s, name, value)
            self._dirty.add("sregs")
        else:
            self._set_fpu(name, value, f)
            self._dirty.add("fpu")

    @staticmethod
    def _set_fpu(name: str, value: int, f: abi.KvmFpu) -> None:
        if name.startswith("st"):
            ctypes.memmove(f.fpr[int(name[2:])], value.to_bytes(10, "little"), 10)
        elif name.startswith("xmm"):
            ctypes.memmove(f.xmm[int(name[3:])], value.to_bytes(16, "little"), 16)
        elif name == "fctrl":
            f.fcw = value & 0xFFFF
        elif name == "fstat":
            f.fsw = value & 0xFFFF
        elif name == "ftag":
            f.ftwx = abridged_tag_word(value)
        elif name == "fioff":
            f.last_ip = value
        elif name == "fooff":
            f.last_dp = value
        elif name == "fop":
            f.last_opcode = value & 0x7FF
        elif name == "mxcsr":
            f.mxcsr = value
        # fiseg/foseg do not exist in the 64-bit FXSAVE image: writes are dropped

    def flush(self) -> None:
        v = self.vcpu
        if "regs" in self._dirty:
            v.set_regs(self.regs)
        if "sregs" in self._dirty:
            v.set_sregs(self.sregs)
        if "fpu" in self._dirty:
            v.set_fpu(self.fpu)
        if "msr" in self._dirty:
            v.set_msrs({MSR_KERNEL_GS_BASE: self.kgs})
        self._dirty.clear()

    # -- bytes in GDB's order -------------------------------------------------------------
    def read_bytes(self, num: int) -> bytes:
        return (self.get(num) & ((1 << LAYOUT[num].bits) - 1)).to_bytes(
            LAYOUT[num].bits // 8, "little")

    def write_bytes(self, num: int, data: bytes) -> None:
        size = LAYOUT[num].bits // 8
        if len(data) != size:
            raise TargetError(f"register {LAYOUT[num].name} takes {size} bytes", 22)
        self.set(num, int.from_bytes(data, "little"))


# -- the target ---------------------------------------------------------------------------------
@dataclass
class _Point:
    kind: int
    addr: int
    length: int


class X86KVMTarget(DebugTarget):
    arch = "x86_64"
    pc_regnum = RIP_REGNUM
    pc_size = 8

    def __init__(self, monitor_machine) -> None:
        super().__init__()
        self.vm = monitor_machine  # MicrovmMonitor
        self.board = monitor_machine.board
        self.runner = monitor_machine.runner
        self.vcpus = self.board.vcpus
        self._xml = target_xml()
        self.points: list[_Point] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()  # a debug exit or Ctrl-C arrived
        self._hit: tuple[int, int] | None = None  # (vCPU index, DR6) of the first exit
        self._interrupted = False
        self._worker: threading.Thread | None = None
        self.last_thread = 1
        self.board.debug_handler = self._debug_exit

    # -- description -------------------------------------------------------------------------
    def target_xml(self) -> dict[str, str]:
        return self._xml

    def threads(self) -> list[int]:
        return [v.index + 1 for v in self.vcpus]

    def _vcpu(self, thread: int):
        if not 1 <= thread <= len(self.vcpus):
            raise TargetError(f"no thread {thread}", 3)
        return self.vcpus[thread - 1]

    def thread_description(self, thread: int) -> str:
        vcpu = self._vcpu(thread)
        try:
            with self.vm.quiesced():
                halted = vcpu.get_mp_state() == abi.KVM_MP_STATE_HALTED
        except (KVMError, QMPError):
            halted = False
        return f"CPU#{vcpu.index} [{'halted' if halted else 'running'}]"

    # -- registers ------------------------------------------------------------------------------
    def _registers(self, thread: int) -> VCPURegisters:
        try:
            return VCPURegisters(self._vcpu(thread))
        except KVMError as e:
            raise TargetError(str(e), 5) from None

    def read_registers(self, thread: int) -> bytes:
        with self.vm.quiesced():
            regs = self._registers(thread)
            return b"".join(regs.read_bytes(i) for i in range(len(LAYOUT)))

    def write_registers(self, thread: int, data: bytes) -> None:
        with self.vm.quiesced():
            regs = self._registers(thread)
            pos = 0
            for i, r in enumerate(LAYOUT):
                size = r.bits // 8
                if pos + size > len(data):
                    break  # GDB may send a prefix of the registers
                regs.write_bytes(i, data[pos:pos + size])
                pos += size
            self._flush(regs)

    def read_register(self, thread: int, regno: int) -> bytes:
        if not 0 <= regno < len(LAYOUT):
            raise TargetError(f"no register {regno}", 22)
        with self.vm.quiesced():
            return self._registers(thread).read_bytes(regno)

    def write_register(self, thread: int, regno: int, value: bytes) -> None:
        if not 0 <= regno < len(LAYOUT):
            raise TargetError(f"no register {regno}", 22)
        with self.vm.quiesced():
            regs = self._registers(thread)
            regs.write_bytes(regno, value)
            self._flush(regs)

    @staticmethod
    def _flush(regs: VCPURegisters) -> None:
        try:
            regs.flush()
        except KVMError as e:
            raise TargetError(f"KVM refused the new register values: {e}", 22) from None

    # -- memory ------------------------------------------------------------------------------------
    def read_memory(self, thread: int, addr: int, length: int) -> bytes:
        try:
            return self.vm.read_memory(addr, length, physical=False, cpu_index=thread - 1)
        except QMPError as e:
            raise TargetError(str(e), 14) from None

    def write_memory(self, thread: int, addr: int, data: bytes) -> None:
        try:
            self.vm.write_memory(addr, data, physical=False, cpu_index=thread - 1)
        except QMPError as e:
            raise TargetError(str(e), 14) from None

    # -- breakpoints and watchpoints: DR0-DR3 ------------------------------------------------------
    def insert_point(self, kind: int, addr: int, length: int) -> bool:
        if kind not in DR_USE:
            return False  # read-only watchpoints do not exist on x86
        if kind in (WP_WRITE, WP_ACCESS):
            if not probe_guest_debug().hw_watchpoints:
                return False  # GDB then watches in software, by single-stepping
            if not dr.can_watch(addr, length):
                raise TargetError(f"watchpoint of {length} bytes at 0x{addr:x}: x86 "
                                  "debug registers watch 1, 2, 4 or 8 aligned bytes", 22)
        else:
            length = 1
        with self._lock:
            if any(p.kind == kind and p.addr == addr for p in self.points):
                return True
            if len(self.points) >= dr.SLOTS:
                raise TargetError("all 4 x86 debug registers are in use", 28)
            self.points.append(_Point(kind, addr, length))
        return True

    def remove_point(self, kind: int, addr: int, length: int) -> bool:
        if kind not in DR_USE:
            return False
        with self._lock:
            self.points = [p for p in self.points if not (p.kind == kind and p.addr == addr)]
        return True

    def remove_all_points(self) -> None:
        with self._lock:
            self.points = []

    def _debugregs(self) -> list[int]:
        return dr.debug_registers([(DR_USE[p.kind], p.addr, p.length) for p in self.points])

    def _arm(self, step_index: int | None) -> None:
        """Load the guest-debug state into every vCPU (all parked)."""
        with self._lock:
            regs = self._debugregs()
            have_points = bool(self.points)
        for vcpu in self.vcpus:
            if vcpu.index == step_index:
                vcpu.set_guest_debug(abi.KVM_GUESTDBG_ENABLE | abi.KVM_GUESTDBG_SINGLESTEP)
            elif have_points:
                vcpu.set_guest_debug(abi.KVM_GUESTDBG_ENABLE | abi.KVM_GUESTDBG_USE_HW_BP,
                                     regs)
            else:
                vcpu.set_guest_debug(0)

    # -- stops ----------------------------------------------------------------------------------
    def _debug_exit(self, vcpu, info: abi.KvmDebugExitArch) -> None:
        """On the vCPU's thread: KVM_EXIT_DEBUG.  Stop everything (without waiting: this
        thread must return to park) and wake the worker."""
        with self._lock:
            if self._hit is None:
                self._hit = (vcpu.index, info.dr6)
        self.runner.request_pause()
        self._stopped.set()

    def _wait_stop(self) -> bool:
        """Until a debug exit, Ctrl-C or the end of the machine; False for the latter."""
        while not self._stopped.wait(0.2):
            if self.board.done.is_set():
                return False
        return not self.board.done.is_set()

    def _prepare(self) -> None:
        with self._lock:
            self._hit = None
            self._interrupted = False
            self._stopped.clear()

    def _step_one(self, index: int) -> bool:
        """Single-step vCPU ``index`` with the others parked; True once it has."""
        self._prepare()
        self._arm(index)
        self.runner.resume(only=index)
        ok = self._wait_stop()
        self.runner.pause()
        if ok and self._hit is None:
            return False  # Ctrl-C before the step completed
        return ok

    def resume(self, step_thread: int | None) -> None:
        if self._worker is not None and self._worker.is_alive():
            self._worker.join(STOP_WAIT)
        self._worker = threads.start_daemon(self._run, step_thread, name="pemu-gdb-run")

    def _run(self, step_thread: int | None) -> None:
        try:
            if step_thread is not None:
                index = self._vcpu(step_thread).index
                if not self._step_one(index):
                    self._report_end_or_interrupt(step_thread)
                    return
                self._arm(None)
                self._report(step_thread, SIGTRAP)
                return
            # continue: first step every vCPU off an execute breakpoint it sits on
            with self._lock:
                exec_points = {p.addr for p in self.points if p.kind in (BP_SOFTWARE,
                                                                          BP_HARDWARE)}
            for vcpu in self.vcpus:
                if exec_points and vcpu.get_regs().rip in exec_points:
                    if not self._step_one(vcpu.index):
                        self._report_end_or_interrupt(vcpu.index + 1)
                        return
            self._prepare()
            self._arm(None)
            self.vm.cont()
            ok = self._wait_stop()
            if not ok:
                self._report_end_or_interrupt(self.last_thread)
                return
            self.vm.stop(DEBUG)
            hit = self._hit
            if hit is None:
                self._report(self.last_thread, SIGINT)
                return
            self._report_hit(*hit)
        except (KVMError, QMPError, TargetError) as e:
            print(f"pemu: gdbstub: cannot resume the guest: {e}", file=sys.stderr)
            self.vm.stop(DEBUG)
            self._report(self.last_thread, SIGINT)

    def _report_hit(self, index: int, dr6: int) -> None:
        thread = index + 1
        with self._lock:
            points = list(self.points)
        for slot, p in enumerate(points):
            if dr6 >> slot & 1 and p.kind in (WP_WRITE, WP_ACCESS):
                self.last_thread = thread
                self.report(StopEvent(SIGTRAP, thread, watch_kind=p.kind, watch_addr=p.addr))
                return
        self._report(thread, SIGTRAP)

    def _report_end_or_interrupt(self, thread: int) -> None:
        if self.board.done.is_set():
            self.report(StopEvent(exited=self.board.exit_status or 0))
            return
        self.vm.stop(DEBUG)
        self._report(thread, SIGINT)

    def _report(self, thread: int, signal: int) -> None:
        self.last_thread = thread
        self.report(StopEvent(signal, thread))

    def interrupt(self) -> None:
        with self._lock:
            self._interrupted = True
        self.runner.request_pause()
        self._stopped.set()
        if self._worker is None or not self._worker.is_alive():
            self.vm.stop(DEBUG)
            self._report(self.last_thread, SIGINT)

    # -- attach, detach, kill --------------------------------------------------------------------
    def attached(self) -> None:
        """GDB connected: the machine stops for it, as in QEMU."""
        self.vm.stop(DEBUG)

    def detach(self) -> None:
        self.remove_all_points()
        self.interrupt_worker()
        try:
            with self.vm.quiesced():
                for vcpu in self.vcpus:
                    vcpu.set_guest_debug(0)
        except KVMError:
            pass
        self.vm.cont()

    def interrupt_worker(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            self._stopped.set()
            self._worker.join(STOP_WAIT)

    def kill(self) -> None:
        self.vm.quit()


def start_x86_gdbstub(monitor_machine, spec: str, wait: bool = False):
    """``-gdb SPEC`` / ``-s`` for the microvm; ``wait`` blocks until GDB attaches."""
    target = X86KVMTarget(monitor_machine)
    return target, serve(target, spec, wait)


__all__ = ["X86KVMTarget", "probe_guest_debug", "start_x86_gdbstub"]
