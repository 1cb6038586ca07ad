"""CPUID for a KVM guest: what KVM supports (-cpu host), adjusted per vCPU.

KVM_GET_SUPPORTED_CPUID lists what the host and KVM can offer; the guest must also see
its own APIC ID, the vCPU count, and the hypervisor bit, as QEMU's -cpu host does.
"""

from __future__ import annotations

from pemu.accel.kvm.abi import KvmCpuidEntry2
from pemu.qom.registry import CPU, TypeInfo, register

SUPPORTED_MODELS = ("host", "max")
register(TypeInfo("host", CPU, "KVM processor with all supported host features",
                  arch="x86_64", is_default=True))
register(TypeInfo("max", CPU, "the same as host under KVM", arch="x86_64"))
LEAF1_ECX_HYPERVISOR = 1 << 31
LEAF1_EDX_HTT = 1 << 28


class CPUModelError(ValueError):
    pass


def check_model(model: str | None) -> str:
    model = model or "host"
    if model not in SUPPORTED_MODELS:
        raise CPUModelError(f"CPU model '{model}' is not available with KVM; use -cpu host")
    return model


def guest_cpuid(supported: list[KvmCpuidEntry2], apic_id: int, ncpus: int
                ) -> list[KvmCpuidEntry2]:
    out = []
    for src in supported:
        e = KvmCpuidEntry2.from_buffer_copy(src)
        if e.function == 1:
            e.ebx = (e.ebx & 0x0000FFFF) | (min(ncpus, 255) << 16) | ((apic_id & 0xFF) << 24)
            e.ecx |= LEAF1_ECX_HYPERVISOR
            if ncpus > 1:
                e.edx |= LEAF1_EDX_HTT
        elif e.function in (0xB, 0x1F):
            e.edx = apic_id  # x2APIC ID of this logical processor
        out.append(e)
    return out
