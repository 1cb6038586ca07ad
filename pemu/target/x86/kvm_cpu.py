"""Bring a KVM vCPU to its boot state: CPUID, MSRs, local APIC wiring, entry registers."""

from __future__ import annotations

import struct
from collections.abc import Callable

from pemu.accel.kvm.system import KVMSystem
from pemu.accel.kvm.vcpu import KVMVCPU
from pemu.target.x86 import cpu_modes
from pemu.target.x86.cpuid import guest_cpuid
from pemu.target.x86.msrs import boot_msrs

APIC_LVT0 = 0x350
APIC_LVT1 = 0x360
APIC_MODE_NMI = 0x4 << 8
APIC_MODE_EXTINT = 0x7 << 8
RFLAGS_RESERVED = 0x2


def configure_vcpu(vcpu: KVMVCPU, system: KVMSystem, ncpus: int) -> None:
    """What every vCPU needs before it runs, BSP or AP."""
    vcpu.set_cpuid(guest_cpuid(system.supported_cpuid(), vcpu.index, ncpus))
    msrs = boot_msrs(set(system.msr_index_list()))
    if msrs:
        vcpu.set_msrs(msrs)
    # Through-the-PIC interrupts reach the CPU on LINT0 (ExtINT), NMIs on LINT1, as the
    # PC firmware leaves them; bare-metal guests rely on it, Linux reprograms both.
    lapic = vcpu.get_lapic()
    struct.pack_into("<I", lapic.regs, APIC_LVT0, APIC_MODE_EXTINT)
    struct.pack_into("<I", lapic.regs, APIC_LVT1, APIC_MODE_NMI)
    vcpu.set_lapic(lapic)


def set_entry_state(vcpu: KVMVCPU, mode: str, rip: int, regs: dict[str, int],
                    write: Callable[[int, bytes], None], gdt_addr: int,
                    page_tables_addr: int, stack: int) -> None:
    """Registers of the boot CPU at the kernel's entry point, in ``mode``."""
    sregs = vcpu.get_sregs()
    write(gdt_addr, cpu_modes.flat_gdt())
    if mode == "long64":
        pml4 = cpu_modes.identity_page_tables(page_tables_addr, write)
        cpu_modes.set_long_mode(sregs, gdt_addr, pml4)
    elif mode == "protected32":
        cpu_modes.set_protected_mode(sregs, gdt_addr)
    elif mode == "real16":
        cpu_modes.set_real_mode(sregs, 0)
    else:
        raise ValueError(f"unknown CPU entry mode {mode}")
    vcpu.set_sregs(sregs)
    r = vcpu.get_regs()
    for name in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp"):
        setattr(r, name, regs.get(name, 0))
    r.rsp = regs.get("rsp", stack)
    r.rip = rip
    r.rflags = RFLAGS_RESERVED
    vcpu.set_regs(r)
