"""The x86 state leftovers of issue 24: KVM_GET/SET_SREGS2 (the PAE PDPTRs travel with
the vCPU where the host's KVM has KVM_CAP_SREGS2) and the PIT's load-time stamps,
which the kvm-chips state rebases onto the loading host's clock."""

from __future__ import annotations

import ctypes
import mmap
import time

import pytest

from pemu.accel.kvm import abi
from pemu.accel.kvm.system import KVMSystem, kvm_status
from pemu.accel.kvm.vm import KVMVM
from pemu.hw.x86.kvm_chips import KVMChipsState, rebase_pit
from pemu.hw.x86.vcpu_vmstate import X86VCPUState
from pemu.migration import load_device, save_device
from pemu.target.x86.kvm_cpu import configure_vcpu

CR0_PE, CR0_PG, CR4_PAE = 1, 1 << 31, 1 << 5
PDPT = 0x1000  # where CR3 points: four PDPTEs, all zero (not present) in guest memory


class _FakeVM:
    """The VM ioctls kvm-chips uses, with a PIT whose stamps the test sets."""

    def __init__(self, stamp: int) -> None:
        self.pit = abi.KvmPitState2()
        for channel in self.pit.channels:
            channel.count, channel.mode, channel.count_load_time = 0x1234, 2, stamp
        self.loaded: abi.KvmPitState2 | None = None

    def get_pit(self) -> abi.KvmPitState2:
        return abi.KvmPitState2.from_buffer_copy(bytes(self.pit))

    def set_pit(self, state: abi.KvmPitState2) -> None:
        self.loaded = state

    def get_irqchip(self, chip: int) -> abi.KvmIrqchip:
        return abi.KvmIrqchip(chip_id=chip)

    def set_irqchip(self, state: abi.KvmIrqchip) -> None:
        pass

    def get_clock(self) -> int:
        return 123

    def set_clock(self, value: int) -> None:
        pass


def test_pit_stamps_are_rebased_on_the_loading_hosts_clock(monkeypatch):
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    source = _FakeVM(stamp=now - 7_000)  # each channel loaded 7 us before the save
    data = save_device(KVMChipsState(source))
    later = now + 5_000_000_000  # loaded 5 s later (or on a host whose clock is 5 s on)
    real = time.clock_gettime_ns
    monkeypatch.setattr(time, "clock_gettime_ns",
                        lambda clock: real(clock) + later - now)
    target = _FakeVM(stamp=0)
    load_device(KVMChipsState(target), data)
    assert target.loaded is not None
    loaded_at = time.clock_gettime_ns(time.CLOCK_MONOTONIC)  # the loading host's clock
    for channel in target.loaded.channels:
        age = loaded_at - channel.count_load_time
        assert 7_000 <= age < 7_000 + 1_000_000_000, age  # as old as at the save
        assert channel.count == 0x1234 and channel.mode == 2


def test_rebase_moves_every_channel():
    pit = abi.KvmPitState2()
    for i, channel in enumerate(pit.channels):
        channel.count_load_time = 1000 * i
    rebase_pit(pit, -500)
    assert [c.count_load_time for c in pit.channels] == [-500, 500, 1500]


@pytest.fixture
def pae_vcpu():
    why = kvm_status()
    if why is not None:
        pytest.skip(f"KVM not usable here: {why}")
    system = KVMSystem()
    vm = KVMVM(system)
    if not vm.check_extension(abi.KVM_CAP_SREGS2):
        pytest.skip("this host's KVM has no KVM_CAP_SREGS2 (Linux 5.14)")
    ram = mmap.mmap(-1, 1 << 20)
    vm.add_memory(0, 1 << 20, ctypes.addressof(ctypes.c_char.from_buffer(ram)))
    vm.create_irqchip()
    vcpu = vm.create_vcpu(0)
    configure_vcpu(vcpu, system, 1)
    sregs = vcpu.get_sregs()
    sregs.cr0 |= CR0_PE | CR0_PG
    sregs.cr4 |= CR4_PAE
    sregs.efer = 0
    sregs.cr3 = PDPT
    vcpu.set_sregs(sregs)  # 32-bit PAE paging: KVM loads the PDPTRs from RAM (zeros)
    if not vcpu.get_sregs().cr0 & CR0_PG:
        vm.close()
        system.close()
        pytest.skip("this host's KVM does not run 32-bit paging (KVM_SET_SREGS dropped "
                    "CR0.PG: a PVM-style KVM runs 64-bit guests only)")
    yield system, vcpu, ram
    vm.close()
    system.close()


def test_sregs2_carries_the_pae_pdptrs(pae_vcpu):
    system, vcpu, ram = pae_vcpu
    state = X86VCPUState(vcpu, set(system.msr_index_list()))
    saved = abi.KvmSregs2.from_buffer_copy(state.sregs2)
    assert saved.flags & abi.KVM_SREGS2_FLAGS_PDPTRS_VALID
    assert list(saved.pdptrs) == [0, 0, 0, 0]
    stream = save_device(state)
    # the guest rewrites its PDPT after loading CR3: the CPU still runs on the entries
    # it loaded, so a restore must take the stream's PDPTRs, not what RAM holds now
    # (plain KVM_SET_SREGS would reload 0x5001 from RAM)
    ram[PDPT + 16:PDPT + 24] = (0x5000 | 1).to_bytes(8, "little")
    load_device(X86VCPUState(vcpu, set(system.msr_index_list())), stream)
    back = vcpu.get_state(abi.KvmSregs2, abi.KVM_GET_SREGS2, "GET_SREGS2")
    assert list(back.pdptrs) == [0, 0, 0, 0]
    assert back.cr3 == PDPT and back.cr4 & CR4_PAE
