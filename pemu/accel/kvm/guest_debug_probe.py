"""What KVM_SET_GUEST_DEBUG does on this host, asked with tiny 64-bit guests.

The gdb stub of the x86 microvm (pemu/gdbstub/x86_kvm.py) and its tests need to know
whether this KVM single-steps, stops at a DR0 execute breakpoint, at a DR0 write
watchpoint, and at int3 under KVM_GUESTDBG_USE_SW_BP: a KVM that emulates ring-0 code
(the software kvm_pvm, see docs/KVM.md) cannot execute int3 at all.  Each question
runs on its own vCPU of one probe VM (probe.py); the answer is cached for the process.
"""

from __future__ import annotations

from dataclasses import dataclass

from pemu.accel.kvm import abi
from pemu.accel.kvm.errors import KVMError
from pemu.accel.kvm.probe import LongModeSetup, ProbeVM
from pemu.accel.kvm.system import KVMSystem

RAM_SIZE = 0x200000
SCRATCH_ADDR = 0x100000  # the long-mode tables
CODE_ADDR = 0x1000
CODE = bytes.fromhex("48ffc0" "48ffc0" "cc" "f4")  # inc %rax; inc %rax; int3; hlt
WATCH_CODE_ADDR, WATCHED = 0x1800, 0x3000
WATCH_CODE = bytes.fromhex("48890425" "00300000" "f4")  # mov %rax, 0x3000; hlt
# DR7: L0 enable and the bit that reads as 1; for the watchpoint RW0 = write, LEN0 = 8
DR7_EXEC_DR0 = 0x401
DR7_WRITE8_DR0 = 0x401 | (0b01 << 16) | (0b10 << 18)


@dataclass(frozen=True)
class GuestDebugSupport:
    single_step: bool
    hw_breakpoints: bool
    sw_breakpoints: bool
    hw_watchpoints: bool
    reason: str  # what is missing, for users and for test skips


# question -> (debug flags, DR0-DR7, where the code starts, where the stop must be)
QUESTIONS = {
    "single step": (abi.KVM_GUESTDBG_SINGLESTEP, [], CODE_ADDR, CODE_ADDR + 3),
    "hardware breakpoint": (abi.KVM_GUESTDBG_USE_HW_BP,
                            [CODE_ADDR + 3, 0, 0, 0, 0, 0, 0, DR7_EXEC_DR0], CODE_ADDR,
                            CODE_ADDR + 3),
    "hardware watchpoint": (abi.KVM_GUESTDBG_USE_HW_BP,
                            [WATCHED, 0, 0, 0, 0, 0, 0, DR7_WRITE8_DR0], WATCH_CODE_ADDR,
                            WATCH_CODE_ADDR + 8),
    "int3 software breakpoint": (abi.KVM_GUESTDBG_USE_SW_BP, [], CODE_ADDR, CODE_ADDR + 6),
}

_support: dict[str, GuestDebugSupport] = {}


def probe_guest_debug(long_mode: LongModeSetup, path: str = "/dev/kvm") -> GuestDebugSupport:
    """Single step, a DR0 execute breakpoint, a DR0 write watchpoint and int3 under
    USE_SW_BP, each tried once; cached for the process (per device path)."""
    if path not in _support:
        _support[path] = _run_probe(long_mode, path)
    return _support[path]


def _run_probe(long_mode: LongModeSetup, path: str) -> GuestDebugSupport:
    try:
        system = KVMSystem(path)
    except KVMError as e:
        return GuestDebugSupport(False, False, False, False, str(e))
    probe = None
    results: dict[str, str | None] = {}
    try:
        if not system.check_extension(abi.KVM_CAP_SET_GUEST_DEBUG):
            return GuestDebugSupport(False, False, False, False,
                                     "KVM lacks KVM_CAP_SET_GUEST_DEBUG")
        probe = ProbeVM(system, RAM_SIZE, long_mode, SCRATCH_ADDR)
        probe.write(CODE_ADDR, CODE)
        probe.write(WATCH_CODE_ADDR, WATCH_CODE)
        for what, (flags, dregs, start, want_pc) in QUESTIONS.items():
            vcpu = probe.vcpu(start)
            vcpu.set_guest_debug(abi.KVM_GUESTDBG_ENABLE | flags, dregs)
            reason = vcpu.run_once()
            if reason == abi.KVM_EXIT_DEBUG:
                pc = vcpu.get_regs().rip
                # int3 stops with RIP at the int3 or just after it, depending on KVM
                ok = pc in (want_pc, want_pc - 1) if what.startswith("int3") else pc == want_pc
                results[what] = None if ok else f"stopped at 0x{pc:x}"
            elif reason == abi.KVM_EXIT_HLT:
                results[what] = "the guest ran on to its hlt without a debug exit"
            else:
                results[what] = str(vcpu.failure(vcpu.describe_exit(reason)))
    except KVMError as e:
        return GuestDebugSupport(False, False, False, False, str(e))
    finally:
        if probe is not None:
            probe.close()
        system.close()
    missing = "; ".join(f"{what}: {why}" for what, why in results.items() if why)
    return GuestDebugSupport(results["single step"] is None,
                             results["hardware breakpoint"] is None,
                             results["int3 software breakpoint"] is None,
                             results["hardware watchpoint"] is None,
                             missing or "everything works")
