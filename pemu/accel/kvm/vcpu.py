"""A KVM vCPU: register access, the shared kvm_run page, and the KVM_RUN exit loop.

Each vCPU runs ``run(handler)`` on its own thread.  KVM_RUN drops into the guest until
an exit that the kernel cannot finish by itself (port I/O, MMIO outside RAM, shutdown,
an internal error); the loop hands the access to ``handler`` and re-enters.  Another
thread stops a vCPU with ``kick``: it sets ``immediate_exit`` (so an entry that has
not started yet returns at once) and sends a signal to the thread (so a vCPU inside
the guest, or halted in the kernel, comes back with EINTR).
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import signal
import threading
from collections.abc import Callable
from typing import Protocol

from pemu.accel.kvm import abi
from pemu.accel.kvm.errors import GuestCannotRun, KVMError
from pemu.accel.kvm.ioctl import ioctl_raw, kvm_ioctl

KICK_SIGNAL = signal.SIGUSR1


class ExitHandler(Protocol):
    """What a board answers for the exits KVM passes to user space."""

    def pio_read(self, port: int, size: int) -> int: ...

    def pio_write(self, port: int, size: int, value: int) -> None: ...

    def mmio_read(self, addr: int, size: int) -> int: ...

    def mmio_write(self, addr: int, size: int, value: int) -> None: ...

    def guest_halted(self, vcpu: KVMVCPU) -> None:
        """HLT reached user space (only without an in-kernel irqchip)."""

    def guest_reset(self, vcpu: KVMVCPU, why: str) -> None:
        """Triple fault or a KVM system event: the board decides reset vs exit."""

    # Optional: ``debug_exit(vcpu, info: abi.KvmDebugExitArch)`` for KVM_EXIT_DEBUG
    # (single step or breakpoint under KVM_SET_GUEST_DEBUG).  Without it such an exit
    # is fatal, as any exit nobody asked for.


_kick_installed = False


def install_kick_handler() -> bool:
    """A no-op handler for KICK_SIGNAL, so the signal interrupts KVM_RUN instead of
    killing the process.  Only the main thread may install it; returns success."""
    global _kick_installed
    if _kick_installed:
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(KICK_SIGNAL, lambda *_: None)
    _kick_installed = True
    return True


class KVMVCPU:
    def __init__(self, vm, index: int) -> None:  # vm: KVMVM
        self.vm = vm
        self.index = index
        ret, err = ioctl_raw(vm.fd, abi.KVM_CREATE_VCPU, index)
        if ret < 0:
            raise KVMError(f"KVM cannot create vCPU {index}: {os.strerror(err)}")
        self.fd = ret
        size = vm.system.vcpu_mmap_size
        self._run_map = mmap.mmap(self.fd, size, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
        self.run_page = abi.KvmRun.from_buffer(self._run_map)
        self._run_addr = ctypes.addressof(self.run_page)
        self.thread_id: int | None = None
        self.stop_requested = False
        self.exit_count = 0

    # -- register access -----------------------------------------------------------------
    def get_regs(self) -> abi.KvmRegs:
        regs = abi.KvmRegs()
        kvm_ioctl(self.fd, abi.KVM_GET_REGS, regs, "GET_REGS")
        return regs

    def set_regs(self, regs: abi.KvmRegs) -> None:
        kvm_ioctl(self.fd, abi.KVM_SET_REGS, regs, "SET_REGS")

    def get_sregs(self) -> abi.KvmSregs:
        sregs = abi.KvmSregs()
        kvm_ioctl(self.fd, abi.KVM_GET_SREGS, sregs, "GET_SREGS")
        return sregs

    def set_sregs(self, sregs: abi.KvmSregs) -> None:
        kvm_ioctl(self.fd, abi.KVM_SET_SREGS, sregs, "SET_SREGS")

    def get_fpu(self) -> abi.KvmFpu:
        fpu = abi.KvmFpu()
        kvm_ioctl(self.fd, abi.KVM_GET_FPU, fpu, "GET_FPU")
        return fpu

    def set_fpu(self, fpu: abi.KvmFpu) -> None:
        kvm_ioctl(self.fd, abi.KVM_SET_FPU, fpu, "SET_FPU")

    def get_lapic(self) -> abi.KvmLapicState:
        state = abi.KvmLapicState()
        kvm_ioctl(self.fd, abi.KVM_GET_LAPIC, state, "GET_LAPIC")
        return state

    def set_lapic(self, state: abi.KvmLapicState) -> None:
        kvm_ioctl(self.fd, abi.KVM_SET_LAPIC, state, "SET_LAPIC")

    def set_cpuid(self, entries: list[abi.KvmCpuidEntry2]) -> None:
        buf = abi.cpuid2_struct(len(entries))()
        buf.nent = len(entries)
        for i, e in enumerate(entries):
            buf.entries[i] = e
        kvm_ioctl(self.fd, abi.KVM_SET_CPUID2, buf, "SET_CPUID2")

    def set_msrs(self, msrs: dict[int, int]) -> int:
        """Returns how many KVM accepted; the first refused index stops the batch."""
        buf = abi.msrs_struct(len(msrs))()
        buf.nmsrs = len(msrs)
        for i, (index, value) in enumerate(msrs.items()):
            buf.entries[i].index, buf.entries[i].data = index, value
        return kvm_ioctl(self.fd, abi.KVM_SET_MSRS, buf, "SET_MSRS")

    def get_msrs(self, indices: list[int]) -> dict[int, int]:
        buf = abi.msrs_struct(len(indices))()
        buf.nmsrs = len(indices)
        for i, index in enumerate(indices):
            buf.entries[i].index = index
        n = kvm_ioctl(self.fd, abi.KVM_GET_MSRS, buf, "GET_MSRS")
        return {buf.entries[i].index: buf.entries[i].data for i in range(n)}

    def get_mp_state(self) -> int:
        st = abi.KvmMpState()
        kvm_ioctl(self.fd, abi.KVM_GET_MP_STATE, st, "GET_MP_STATE")
        return st.mp_state

    def set_mp_state(self, state: int) -> None:
        kvm_ioctl(self.fd, abi.KVM_SET_MP_STATE, abi.KvmMpState(state), "SET_MP_STATE")

    # -- whole-state structs (savevm and migration: pemu/hw/x86/vcpu_vmstate.py) ----
    def get_state(self, struct: type, request: int, what: str):
        """One KVM_GET_* that fills a new ``struct`` (XSAVE, XCRS, VCPU_EVENTS, DEBUGREGS;
        a ctypes array type for an area whose size KVM decides)."""
        value = struct()
        kvm_ioctl(self.fd, request, value, what)
        return value

    def set_state(self, request: int, value: object, what: str) -> None:
        kvm_ioctl(self.fd, request, value, what)

    def get_tsc_khz(self) -> int:
        """The guest TSC frequency KVM gives this vCPU (0 when it cannot say)."""
        ret, _ = ioctl_raw(self.fd, abi.KVM_GET_TSC_KHZ, 0)
        return max(ret, 0)

    def set_guest_debug(self, control: int, debugreg: list[int] | None = None) -> None:
        """KVM_SET_GUEST_DEBUG: ``control`` = KVM_GUESTDBG_* flags (0 turns debugging
        off), ``debugreg`` = DR0-DR7 for KVM_GUESTDBG_USE_HW_BP."""
        dbg = abi.KvmGuestDebug(control=control)
        for i, value in enumerate((debugreg or [])[:8]):
            dbg.debugreg[i] = value
        kvm_ioctl(self.fd, abi.KVM_SET_GUEST_DEBUG, dbg, "SET_GUEST_DEBUG")

    def set_tsc_khz(self, khz: int) -> bool:
        ret, _ = ioctl_raw(self.fd, abi.KVM_SET_TSC_KHZ, khz)
        return ret >= 0

    def translate(self, linear: int) -> int | None:
        tr = abi.KvmTranslation(linear_address=linear)
        ret, _ = ioctl_raw(self.fd, abi.KVM_TRANSLATE, tr)
        return tr.physical_address if ret >= 0 and tr.valid else None

    # -- running -------------------------------------------------------------------------
    def run_once(self) -> int:
        """One KVM_RUN; returns the exit reason (KVM_EXIT_INTR when a signal came)."""
        ret, err = ioctl_raw(self.fd, abi.KVM_RUN, 0)
        self.exit_count += 1
        if ret < 0:
            if err in (errno.EINTR, errno.EAGAIN):
                self.run_page.immediate_exit = 0
                return abi.KVM_EXIT_INTR
            raise self.failure(f"KVM_RUN failed: {os.strerror(err)} (errno {err})")
        return self.run_page.exit_reason

    def kick(self) -> None:
        """Make run() return soon; safe from any thread."""
        self.stop_requested = True
        self.run_page.immediate_exit = 1
        if self.thread_id is not None and _kick_installed:
            try:
                signal.pthread_kill(self.thread_id, KICK_SIGNAL)
            except ProcessLookupError:
                pass

    def run(self, handler: ExitHandler,
            read_phys: Callable[[int, int], bytes] | None = None) -> None:
        """Run until ``kick`` or a fatal exit (raised as GuestCannotRun)."""
        self.thread_id = threading.get_ident()
        run = self.run_page
        fd = self.fd
        run_addr = self._run_addr
        rmap = self._run_map
        self.read_phys = read_phys
        try:
            while not self.stop_requested:
                ret, err = ioctl_raw(fd, abi.KVM_RUN, 0)
                self.exit_count += 1
                if ret < 0:
                    if err in (errno.EINTR, errno.EAGAIN):
                        run.immediate_exit = 0
                        continue
                    raise self.failure(f"KVM_RUN failed: {os.strerror(err)} (errno {err})")
                reason = run.exit_reason
                if reason == abi.KVM_EXIT_IO:
                    io = run.io
                    size, port, off = io.size, io.port, io.data_offset
                    for _ in range(io.count):
                        if io.direction == abi.KVM_EXIT_IO_OUT:
                            handler.pio_write(port, size,
                                              int.from_bytes(rmap[off:off + size], "little"))
                        else:
                            value = handler.pio_read(port, size)
                            rmap[off:off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(
                                size, "little")
                        off += size
                elif reason == abi.KVM_EXIT_MMIO:
                    m = run.mmio
                    n = m.len
                    data_off = ctypes.addressof(m.data) - run_addr
                    if m.is_write:
                        handler.mmio_write(m.phys_addr, n,
                                           int.from_bytes(rmap[data_off:data_off + n], "little"))
                    else:
                        value = handler.mmio_read(m.phys_addr, n)
                        rmap[data_off:data_off + n] = (value & ((1 << (8 * n)) - 1)).to_bytes(
                            n, "little")
                elif reason == abi.KVM_EXIT_HLT:
                    handler.guest_halted(self)
                elif reason == abi.KVM_EXIT_INTR:
                    continue
                elif reason == abi.KVM_EXIT_SHUTDOWN:
                    handler.guest_reset(self, "triple fault")
                elif reason == abi.KVM_EXIT_SYSTEM_EVENT:
                    kind = run.system_event.type
                    why = {abi.KVM_SYSTEM_EVENT_SHUTDOWN: "shutdown",
                           abi.KVM_SYSTEM_EVENT_RESET: "reset",
                           abi.KVM_SYSTEM_EVENT_CRASH: "crash"}.get(kind, f"event {kind}")
                    handler.guest_reset(self, why)
                elif reason == abi.KVM_EXIT_IRQ_WINDOW_OPEN:
                    run.request_interrupt_window = 0
                elif reason == abi.KVM_EXIT_DEBUG and hasattr(handler, "debug_exit"):
                    handler.debug_exit(self, run.debug)
                else:
                    raise self.failure(self.describe_exit(reason))
            self.complete_pending_exit()
        finally:
            self.thread_id = None

    def complete_pending_exit(self) -> None:
        """Let KVM finish the exit we just served (the value of an IN or an MMIO read
        goes into the guest's registers only at the next KVM_RUN) without running guest
        code: an entry with immediate_exit set.  Afterwards GET_REGS shows the state
        after the instruction, which is what a paused machine must show."""
        run = self.run_page
        run.immediate_exit = 1
        ioctl_raw(self.fd, abi.KVM_RUN, 0)
        run.immediate_exit = 0

    # -- diagnostics -----------------------------------------------------------------------
    def describe_exit(self, reason: int) -> str:
        run = self.run_page
        name = abi.EXIT_REASONS.get(reason, str(reason))
        if reason == abi.KVM_EXIT_INTERNAL_ERROR:
            sub = run.internal.suberror
            subname = {1: "emulation failure", 2: "exception during exception delivery",
                       3: "event delivery failed", 4: "unexpected exit reason"}.get(sub, str(sub))
            data = " ".join(f"{run.internal.data[i]:#x}" for i in range(min(run.internal.ndata,
                                                                                16)))
            return f"KVM internal error ({subname}, suberror {sub}){': ' + data if data else ''}"
        if reason == abi.KVM_EXIT_FAIL_ENTRY:
            return ("KVM could not enter the guest (hardware entry failure reason "
                    f"{run.fail_entry.hardware_entry_failure_reason:#x})")
        if reason == abi.KVM_EXIT_EXCEPTION:
            return "guest exception exit"
        return f"unexpected KVM exit {name}"

    def instruction_bytes(self) -> tuple[int | None, bytes]:
        """(RIP, up to 15 bytes at CS:RIP) of a stopped vCPU, as far as they can be read."""
        run = self.run_page
        try:
            rip = self.get_regs().rip
        except KVMError:
            return None, b""
        has_bytes = abi.KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES
        if (run.exit_reason == abi.KVM_EXIT_INTERNAL_ERROR
                and run.internal.suberror == abi.KVM_INTERNAL_ERROR_EMULATION
                and run.emulation_failure.flags & has_bytes
                and run.emulation_failure.insn_size):
            ef = run.emulation_failure
            return rip, bytes(ef.insn_bytes[: min(ef.insn_size, 15)])
        read_phys = getattr(self, "read_phys", None)
        if read_phys is None:
            return rip, b""
        try:
            linear = self.get_sregs().cs.base + rip
        except KVMError:
            return rip, b""
        out = b""
        for i in range(15):
            phys = self.translate(linear + i)
            if phys is None:
                break
            try:
                out += read_phys(phys, 1)
            except Exception:  # noqa: BLE001 - unbacked memory simply ends the dump
                break
        return rip, out

    def failure(self, message: str) -> GuestCannotRun:
        rip, insn = self.instruction_bytes()
        where = f" at RIP 0x{rip:x}" if rip is not None else ""
        code = f", instruction bytes: {insn.hex(' ')}" if insn else ""
        return GuestCannotRun(f"vCPU {self.index}: {message}{where}{code}", rip, insn)

    def close(self) -> None:
        try:
            del self.run_page
            self._run_map.close()
        except (AttributeError, BufferError):
            pass
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
