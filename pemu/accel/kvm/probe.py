"""Can this host's KVM run a Linux kernel?  Ask it with a tiny 64-bit guest.

Linux needs, early in boot, XSAVE/XRSTOR (FPU state) and CMPXCHG16B (per-CPU atomics).
A KVM that runs ring-0 guest code through its instruction emulator (as the software
"kvm_pvm" does, see docs/KVM.md) stops at these with an emulation-failure internal
error.  This probe runs them in long mode and reports the first one that fails, so
tests and users learn it in milliseconds instead of watching a kernel hang.

The guest code is a fixed byte string (tests/kvm/test_probe.py checks it against the
host assembler); each step writes its number to port 0xe9 so the probe knows how far
the guest got.

``ProbeVM`` is what every probe of this package runs its tiny guests in (see also
guest_debug_probe.py).  Putting an x86 vCPU into 64-bit mode (GDT, page tables,
control registers) is target knowledge: the caller passes it in as ``LongModeSetup``
(pemu.target.x86.cpu_modes.enter_long_mode), so accel/ does not import target/.
"""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Callable
from dataclasses import dataclass

from pemu.accel.kvm import abi
from pemu.accel.kvm.errors import KVMError
from pemu.accel.kvm.system import KVMSystem
from pemu.accel.kvm.vcpu import KVMVCPU
from pemu.accel.kvm.vm import KVMVM

# sregs to fill, a writer of guest RAM, and the free page-aligned guest address from
# which the setup may write its tables
LongModeSetup = Callable[[abi.KvmSregs, Callable[[int, bytes], None], int], None]

PROBE_PORT = 0xE9
CODE_ADDR = 0x1000
SAVE_AREA = 0x3000
SCRATCH_ADDR = 0x10000  # the long-mode tables
RAM_SIZE = 0x20000
STACK_TOP = 0x8000
RFLAGS_RESERVED = 0x2

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


class ProbeVM:
    """A throwaway VM with ``ram_size`` bytes of RAM at 0 and 64-bit vCPUs, for probe
    guests.  Raises KVMError where KVM refuses; ``close`` releases everything."""

    def __init__(self, system: KVMSystem, ram_size: int, long_mode: LongModeSetup,
                 scratch: int) -> None:
        self.system = system
        self.ram = mmap.mmap(-1, ram_size)
        self.vcpus: list[KVMVCPU] = []
        self.vm = KVMVM(system)
        self.vm.add_memory(0, ram_size, ctypes.addressof(ctypes.c_char.from_buffer(self.ram)))
        self._long_mode = long_mode
        self._scratch = scratch

    def write(self, addr: int, data: bytes) -> None:
        self.ram[addr:addr + len(data)] = data

    def read(self, addr: int, size: int) -> bytes:
        return bytes(self.ram[addr:addr + size])

    def vcpu(self, rip: int) -> KVMVCPU:
        """A new vCPU in 64-bit mode at ``rip``, with the host's CPUID."""
        vcpu = self.vm.create_vcpu(len(self.vcpus))
        self.vcpus.append(vcpu)
        vcpu.set_cpuid(self.system.supported_cpuid())
        sregs = vcpu.get_sregs()
        self._long_mode(sregs, self.write, self._scratch)
        vcpu.set_sregs(sregs)
        regs = vcpu.get_regs()
        regs.rip, regs.rflags, regs.rsp = rip, RFLAGS_RESERVED, STACK_TOP
        vcpu.set_regs(regs)
        vcpu.read_phys = self.read  # instruction bytes in KVM error reports
        return vcpu

    def close(self) -> None:
        for vcpu in self.vcpus:
            vcpu.close()
        self.vm.close()
        try:
            self.ram.close()
        except BufferError:
            pass  # a ctypes view still exists: the mapping goes with the process


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    reason: str
    steps_passed: int


def probe_linux_support(long_mode: LongModeSetup, path: str = "/dev/kvm") -> ProbeResult:
    """Runs the probe guest; ``ok`` only if every step ran and the guest halted."""
    try:
        system = KVMSystem(path)
    except KVMError as e:
        return ProbeResult(False, str(e), 0)
    probe = None
    passed = 0
    try:
        probe = ProbeVM(system, RAM_SIZE, long_mode, SCRATCH_ADDR)
        probe.write(CODE_ADDR, probe_code())
        vcpu = probe.vcpu(CODE_ADDR)
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
        if probe is not None:
            probe.close()
        system.close()
