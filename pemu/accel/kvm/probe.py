"""Can this host's KVM run a Linux kernel?  Ask it with a tiny 64-bit guest.

Linux needs, early in boot, XSAVE/XRSTOR (FPU state) and CMPXCHG16B (per-CPU atomics).
A KVM that runs ring-0 guest code through its instruction emulator (as the software
"kvm_pvm" does, see docs/KVM.md) stops at these with an emulation-failure internal
error.  This probe runs them in long mode and reports the first one that fails, so
tests and users learn it in milliseconds instead of watching a kernel hang.

The guest code is a fixed byte string (tests/kvm/test_probe.py checks it against the
host assembler); each step writes its number to port 0xe9 so the probe knows how far
the guest got.
"""

from __future__ import annotations

import ctypes
import mmap
from dataclasses import dataclass

from pemu.accel.kvm import abi
from pemu.accel.kvm.errors import KVMError
from pemu.accel.kvm.system import KVMSystem
from pemu.accel.kvm.vm import KVMVM
from pemu.target.x86 import cpu_modes

PROBE_PORT = 0xE9
CODE_ADDR = 0x1000
SAVE_AREA = 0x3000
GDT_ADDR = 0x500
TABLES_ADDR = 0x10000
RAM_SIZE = 0x20000

# (step name, machine code) — run in order; the step's number goes to PROBE_PORT after it.
PROBE_STEPS: list[tuple[str, bytes]] = [
    ("enable CR4.OSXSAVE and XCR0 (mov cr4, xsetbv)", bytes.fromhex(
        "0f20e0" "0d00000400" "0f22e0" "31c9" "b803000000" "31d2" "0f01d1")),
    ("xsave", bytes.fromhex("bf00300000" "b803000000" "31d2" "0fae27")),
    ("xrstor", bytes.fromhex("b803000000" "31d2" "0fae2f")),
    ("lock cmpxchg16b", bytes.fromhex("31c0" "31d2" "31db" "31c9" "f0480fc70f")),
]


def probe_code() -> bytes:
    code = b""
    for i, (_, insns) in enumerate(PROBE_STEPS, start=1):
        code += insns + bytes([0xB0, i, 0xE6, PROBE_PORT])  # mov $i,%al; out %al,$0xe9
    return code + b"\xf4"  # hlt


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    reason: str
    steps_passed: int


def probe_linux_support(path: str = "/dev/kvm") -> ProbeResult:
    """Runs the probe guest; ``ok`` only if every step ran and the guest halted."""
    try:
        system = KVMSystem(path)
    except KVMError as e:
        return ProbeResult(False, str(e), 0)
    vm = None
    vcpu = None
    ram = mmap.mmap(-1, RAM_SIZE)
    passed = 0
    try:
        vm = KVMVM(system)
        vm.add_memory(0, RAM_SIZE, ctypes.addressof(ctypes.c_char.from_buffer(ram)))

        def write(addr: int, data: bytes) -> None:
            ram[addr:addr + len(data)] = data

        code = probe_code()
        write(CODE_ADDR, code)
        write(GDT_ADDR, cpu_modes.flat_gdt())
        pml4 = cpu_modes.identity_page_tables(TABLES_ADDR, write)
        vcpu = vm.create_vcpu(0)
        vcpu.set_cpuid(system.supported_cpuid())
        sregs = vcpu.get_sregs()
        cpu_modes.set_long_mode(sregs, GDT_ADDR, pml4)
        vcpu.set_sregs(sregs)
        regs = vcpu.get_regs()
        regs.rip, regs.rflags, regs.rsp = CODE_ADDR, 2, 0x8000
        vcpu.set_regs(regs)
        vcpu.read_phys = lambda a, n: bytes(ram[a:a + n])
        for _ in range(len(PROBE_STEPS) + 2):
            reason = vcpu.run_once()
            run = vcpu.run_page
            if reason == abi.KVM_EXIT_IO and run.io.port == PROBE_PORT:
                passed = vcpu._run_map[run.io.data_offset]
                continue
            if reason == abi.KVM_EXIT_HLT and passed == len(PROBE_STEPS):
                return ProbeResult(True, "all probe instructions ran", passed)
            step = PROBE_STEPS[passed][0] if passed < len(PROBE_STEPS) else "halt"
            detail = str(vcpu.failure(vcpu.describe_exit(reason)))
            return ProbeResult(False, f"this KVM cannot run '{step}' in a 64-bit guest "
                               f"kernel ({detail})", passed)
        return ProbeResult(False, "probe guest did not halt", passed)
    except KVMError as e:
        return ProbeResult(False, str(e), passed)
    finally:
        if vcpu is not None:
            vcpu.close()
        if vm is not None:
            vm.close()
        system.close()
        try:
            ram.close()
        except BufferError:
            pass
