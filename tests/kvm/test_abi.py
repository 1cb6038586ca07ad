"""The ctypes mirror of linux/kvm.h against the real header, compiled with the host's gcc."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

from pemu.accel.kvm import abi

IOCTLS = [n for n in dir(abi) if n.startswith("KVM_") and n.isupper() and (
    n.startswith(("KVM_GET_", "KVM_SET_", "KVM_CREATE_", "KVM_CHECK_", "KVM_RUN",
                  "KVM_IRQ", "KVM_IOEVENTFD", "KVM_ENABLE_CAP", "KVM_TRANSLATE")))
          and not n.startswith(("KVM_IRQCHIP_", "KVM_IRQFD_FLAG", "KVM_IRQ_ROUTING_",
                                "KVM_IOEVENTFD_FLAG"))]
CAPS = [n for n in dir(abi) if n.startswith("KVM_CAP_")]
STRUCTS = {
    "KvmRegs": "struct kvm_regs", "KvmSregs": "struct kvm_sregs", "KvmFpu": "struct kvm_fpu",
    "KvmSegment": "struct kvm_segment", "KvmLapicState": "struct kvm_lapic_state",
    "KvmCpuidEntry2": "struct kvm_cpuid_entry2", "KvmMsrEntry": "struct kvm_msr_entry",
    "KvmUserspaceMemoryRegion": "struct kvm_userspace_memory_region",
    "KvmIrqfd": "struct kvm_irqfd", "KvmIoeventfd": "struct kvm_ioeventfd",
    "KvmPitConfig": "struct kvm_pit_config", "KvmIrqRoutingEntry":
    "struct kvm_irq_routing_entry", "KvmEnableCap": "struct kvm_enable_cap",
    "KvmXsave": "struct kvm_xsave", "KvmXcrs": "struct kvm_xcrs",
    "KvmVcpuEvents": "struct kvm_vcpu_events", "KvmDebugregs": "struct kvm_debugregs",
    "KvmIrqchip": "struct kvm_irqchip", "KvmPitState2": "struct kvm_pit_state2",
    "KvmClockData": "struct kvm_clock_data", "KvmDirtyLog": "struct kvm_dirty_log",
    "KvmClearDirtyLog": "struct kvm_clear_dirty_log",
    "KvmSregs2": "struct kvm_sregs2",
}
OFFSETS = {
    "exit_reason": "exit_reason", "io": "io", "mmio": "mmio", "internal": "internal",
    "system_event": "system_event", "kvm_valid_regs": "kvm_valid_regs",
}


@pytest.fixture(scope="module")
def header_values(tmp_path_factory) -> dict[str, int]:
    if shutil.which("gcc") is None or not Path("/usr/include/linux/kvm.h").exists():
        pytest.skip("gcc or <linux/kvm.h> not installed")
    d = tmp_path_factory.mktemp("kvmh")
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/kvm.h>",
             "int main(void) {"]
    for n in IOCTLS + CAPS:
        lines.append(f'  printf("{n} %lu\\n", (unsigned long)({n}));')
    for py, c in STRUCTS.items():
        lines.append(f'  printf("sizeof:{py} %lu\\n", (unsigned long)sizeof({c}));')
    for py, c in OFFSETS.items():
        lines.append(f'  printf("offset:{py} %lu\\n", '
                     f'(unsigned long)offsetof(struct kvm_run, {c}));')
    lines.append("  return 0; }")
    (d / "k.c").write_text("\n".join(lines))
    subprocess.run(["gcc", "-o", str(d / "k"), str(d / "k.c")], check=True, capture_output=True)
    out = subprocess.run([str(d / "k")], check=True, capture_output=True, text=True).stdout
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


def test_ioctl_numbers_match_header(header_values):
    assert len(IOCTLS) > 30
    for n in IOCTLS:
        assert getattr(abi, n) == header_values[n], n


def test_capability_numbers_match_header(header_values):
    for n in CAPS:
        assert getattr(abi, n) == header_values[n], n


def test_struct_sizes_match_header(header_values):
    for py in STRUCTS:
        assert ctypes.sizeof(getattr(abi, py)) == header_values[f"sizeof:{py}"], py


def test_kvm_run_offsets_match_header(header_values):
    for py in OFFSETS:
        assert getattr(abi.KvmRun, py).offset == header_values[f"offset:{py}"], py
