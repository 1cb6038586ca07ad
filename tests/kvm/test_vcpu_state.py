"""The KVM state declarations in process: an x86 vCPU (X86VCPUState) and the in-kernel
chips (KVMChipsState) saved from one VM and loaded into another, and the states a
destination must refuse before it changes anything."""

from __future__ import annotations

import ctypes

import pytest

from pemu.accel.kvm import abi
from pemu.accel.kvm.dirty_log import bitmap_pages
from pemu.accel.kvm.system import KVMSystem
from pemu.accel.kvm.vm import KVMVM
from pemu.hw.x86.kvm_chips import KVMChipsState
from pemu.hw.x86.vcpu_vmstate import X86VCPUState
from pemu.migration import MigrationError
from pemu.migration.vmstate import load_device, save_device
from pemu.target.x86 import cpu_modes
from pemu.target.x86.kvm_cpu import configure_vcpu

MSR_LSTAR = 0xC000_0082
XMM3_OFFSET = 160 + 3 * 16  # in the legacy (FXSAVE) part of the XSAVE area
XSTATE_BV_OFFSET = 512  # the XSAVE header's first byte
XSTATE_SSE = 1 << 1


@pytest.fixture
def system(kvm):
    s = KVMSystem()
    yield s
    s.close()


def _machine(system, ncpus: int = 1):
    vm = KVMVM(system)
    vm.create_irqchip()
    vm.create_pit()
    vcpus = [vm.create_vcpu(i) for i in range(ncpus)]
    for v in vcpus:
        configure_vcpu(v, system, ncpus)
    return vm, vcpus


def _close(vm, vcpus) -> None:
    for v in vcpus:
        v.close()
    vm.close()


def _set_xmm3(vcpu, value: bytes) -> None:
    """XMM3 as the guest would have it.  Where KVM has XSAVE the state travels in the
    XSAVE area, and KVM_SET_FPU would not do: it leaves XSTATE_BV alone, so
    KVM_GET_XSAVE goes on reporting SSE in its initial state."""
    if not vcpu.vm.check_extension(abi.KVM_CAP_XSAVE):
        fpu = vcpu.get_fpu()
        ctypes.memmove(fpu.xmm[3], value, 16)
        vcpu.set_fpu(fpu)
        return
    area = vcpu.get_state(abi.KvmXsave, abi.KVM_GET_XSAVE, "GET_XSAVE")
    raw = bytearray(area)
    raw[XMM3_OFFSET:XMM3_OFFSET + 16] = value
    raw[XSTATE_BV_OFFSET] |= XSTATE_SSE
    vcpu.set_state(abi.KVM_SET_XSAVE, abi.KvmXsave.from_buffer_copy(raw), "SET_XSAVE")


def test_vcpu_state_moves_registers_msrs_and_lapic(system):
    src_vm, (src,) = _machine(system)
    dst_vm, (dst,) = _machine(system)
    try:
        sregs = src.get_sregs()
        cpu_modes.set_protected_mode(sregs, 0x1000)
        src.set_sregs(sregs)
        regs = src.get_regs()
        regs.rax, regs.rip, regs.rflags = 0x1234_5678, 0x10_0040, 0x202
        src.set_regs(regs)
        src.set_msrs({MSR_LSTAR: 0xFFFF_FFFF_8100_0000})
        lapic = src.get_lapic()
        lapic.regs[0x80] = 0x30  # task priority
        src.set_lapic(lapic)
        _set_xmm3(src, bytes(range(16)))
        supported = set(system.msr_index_list())
        load_device(X86VCPUState(dst, supported), save_device(X86VCPUState(src, supported)))
        got = dst.get_regs()
        assert (got.rax, got.rip, got.rflags) == (0x1234_5678, 0x10_0040, 0x202)
        assert dst.get_sregs().cr0 & 1  # protected mode
        assert dst.get_msrs([MSR_LSTAR])[MSR_LSTAR] == 0xFFFF_FFFF_8100_0000
        assert dst.get_lapic().regs[0x80] == 0x30
        assert bytes(dst.get_fpu().xmm[3]) == bytes(range(16))
    finally:
        _close(src_vm, [src])
        _close(dst_vm, [dst])


def test_state_of_another_vcpu_or_msr_is_refused_unchanged(system):
    vm, vcpus = _machine(system, 2)
    try:
        supported = set(system.msr_index_list())
        state_of_1 = save_device(X86VCPUState(vcpus[1], supported))
        rip_before = vcpus[0].get_regs().rip
        with pytest.raises(MigrationError, match="cpu_index"):
            load_device(X86VCPUState(vcpus[0], supported), state_of_1)
        assert vcpus[0].get_regs().rip == rip_before
        if MSR_LSTAR in supported:
            vcpus[1].set_msrs({MSR_LSTAR: 0xFFFF_FFFF_8100_0000})
            state = save_device(X86VCPUState(vcpus[1], supported))
            with pytest.raises(MigrationError, match="MSR 0xc0000082"):
                load_device(X86VCPUState(vcpus[1], supported - {MSR_LSTAR}), state)
    finally:
        _close(vm, vcpus)


def test_chips_state_moves_pit_and_kvmclock(system):
    src_vm, src_cpus = _machine(system)
    dst_vm, dst_cpus = _machine(system)
    try:
        pit = src_vm.get_pit()
        pit.channels[0].mode = 2
        pit.channels[0].count = 11932
        src_vm.set_pit(pit)
        src_vm.set_clock(7_000_000_000)
        load_device(KVMChipsState(dst_vm), save_device(KVMChipsState(src_vm)))
        got = dst_vm.get_pit().channels[0]
        assert (got.mode, got.count) == (2, 11932)
        assert 7_000_000_000 <= dst_vm.get_clock() < 8_000_000_000  # continues, no jump
    finally:
        _close(src_vm, src_cpus)
        _close(dst_vm, dst_cpus)


def test_dirty_bitmap_to_pages():
    words = (ctypes.c_uint64 * 3)(0b1001, 0, 1 << 63)
    assert bitmap_pages(words) == [0, 3, 191]
