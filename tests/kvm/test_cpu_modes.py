"""Step one of the KVM work: what this host's KVM runs, in each x86 mode, via the ioctl
layer directly (no board): port I/O, HLT, memory through paging, and the probe that
tells whether a Linux kernel can run here."""

from __future__ import annotations

import ctypes
import mmap
import os

import pytest

from pemu.accel.kvm import abi
from pemu.accel.kvm.probe import (
    CODE_ADDR,
    PROBE_PORT,
    PROBE_STEPS,
    ProbeResult,
    probe_code,
    probe_linux_support,
)
from pemu.accel.kvm.system import KVMSystem
from pemu.accel.kvm.vm import KVMVM
from pemu.target.x86 import cpu_modes
from tests.kvm.baremetal import assemble

RAM = 4 << 20
SOURCES = {
    16: ".code16\n_start: mov $0x3f8,%dx\n mov $'R',%al\n out %al,%dx\n"
        " movw $0x1234, 0x2000\n hlt\n",
    32: ".code32\n_start: mov $0x3f8,%dx\n mov $'P',%al\n out %al,%dx\n"
        " movl $0x12345678, 0x2000\n hlt\n",
    64: ".code64\n_start: mov $0x3f8,%dx\n mov $'L',%al\n out %al,%dx\n"
        " movabs $0x1122334455667788,%rax\n mov %rax, 0x2000\n hlt\n",
}
EXPECT = {16: (b"R", 0x1234, 2), 32: (b"P", 0x12345678, 4), 64: (b"L", 0x1122334455667788, 8)}


@pytest.fixture
def machine():
    system = KVMSystem()
    vm = KVMVM(system)
    ram = mmap.mmap(-1, RAM)
    vm.add_memory(0, RAM, ctypes.addressof(ctypes.c_char.from_buffer(ram)))
    vcpu = vm.create_vcpu(0)
    vcpu.set_cpuid(system.supported_cpuid())
    yield vm, vcpu, ram
    vcpu.close()
    vm.close()
    system.close()


@pytest.mark.parametrize("bits", [16, 32, 64])
def test_mode_runs_port_io_memory_and_hlt(kvm, guest_dir, machine, bits):
    vm, vcpu, ram = machine
    binary = assemble(f"mode{bits}", guest_dir, bits=32 if bits != 64 else 64,
                      load_addr=0x1000, source=SOURCES[bits])
    code = binary.read_bytes()
    ram[0x1000:0x1000 + len(code)] = code

    def write(addr: int, data: bytes) -> None:
        ram[addr:addr + len(data)] = data

    sregs = vcpu.get_sregs()
    if bits == 16:
        cpu_modes.set_real_mode(sregs)
    elif bits == 32:
        write(0x500, cpu_modes.flat_gdt())
        cpu_modes.set_protected_mode(sregs, 0x500)
    else:
        write(0x500, cpu_modes.flat_gdt())
        cpu_modes.set_long_mode(sregs, 0x500, cpu_modes.identity_page_tables(0x100000, write))
    vcpu.set_sregs(sregs)
    regs = vcpu.get_regs()
    regs.rip, regs.rflags = 0x1000, 2
    vcpu.set_regs(regs)

    assert vcpu.run_once() == abi.KVM_EXIT_IO
    io = vcpu.run_page.io
    assert (io.direction, io.port, io.size) == (abi.KVM_EXIT_IO_OUT, 0x3F8, 1)
    char, value, size = EXPECT[bits]
    assert vcpu._run_map[io.data_offset:io.data_offset + 1] == char
    assert vcpu.run_once() == abi.KVM_EXIT_HLT  # no in-kernel irqchip: HLT comes to us
    assert int.from_bytes(ram[0x2000:0x2000 + size], "little") == value
    assert vcpu.get_regs().rip == 0x1000 + len(code)


def test_probe_code_matches_the_assembler(guest_dir):
    src = """.code64
    mov %cr4,%rax; or $0x40000,%eax; mov %rax,%cr4; xor %ecx,%ecx; mov $3,%eax
    xor %edx,%edx; xsetbv; mov $1,%al; out %al,$0xe9
    mov $0x3000,%edi; mov $3,%eax; xor %edx,%edx; xsave (%rdi); mov $2,%al; out %al,$0xe9
    mov $3,%eax; xor %edx,%edx; xrstor (%rdi); mov $3,%al; out %al,$0xe9
    xor %eax,%eax; xor %edx,%edx; xor %ebx,%ebx; xor %ecx,%ecx; lock cmpxchg16b (%rdi)
    mov $4,%al; out %al,$0xe9; hlt
    """
    binary = assemble("probe", guest_dir, bits=64, load_addr=0x1000, source=src)
    assert PROBE_PORT == 0xE9
    assert probe_code() == binary.read_bytes()


def host_kvm() -> str:
    """What this host's /dev/kvm is, found out without pemu: 'absent', 'unopenable', the
    one vendor module behind it (kvm_intel, kvm_amd, kvm_pvm), or 'unknown'."""
    if not os.path.exists("/dev/kvm"):
        return "absent"
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError:
        return "unopenable"
    loaded = [m for m in ("kvm_intel", "kvm_amd", "kvm_pvm") if os.path.isdir(f"/sys/module/{m}")]
    return loaded[0] if len(loaded) == 1 else "unknown"


def test_probe_reports_a_verdict():
    host = host_kvm()
    result = probe_linux_support(cpu_modes.enter_long_mode)
    if host == "absent":
        assert (result.ok, result.steps_passed) == (False, 0)
        assert result.reason.startswith("/dev/kvm does not exist: this host has no KVM")
    elif host == "unopenable":
        assert (result.ok, result.steps_passed) == (False, 0)
        assert result.reason.startswith("/dev/kvm: ")
    elif host in ("kvm_intel", "kvm_amd"):  # VMX/SVM runs the probe natively
        assert result == ProbeResult(True, "all probe instructions ran", len(PROBE_STEPS))
    elif host == "kvm_pvm":
        # The software KVM enables XSAVE (step 1) and then fails at xsave itself; the reason
        # names the step and carries KVM's report: the RIP and bytes of that instruction.
        assert (result.ok, result.steps_passed) == (False, 1)
        xsave_at = CODE_ADDR + probe_code().index(bytes.fromhex("0fae27"))
        assert result.reason.startswith("this KVM cannot run 'xsave' in a 64-bit guest kernel")
        assert "emulation failure" in result.reason
        assert f"at RIP 0x{xsave_at:x}, instruction bytes: 0f ae 27" in result.reason
    else:
        pytest.skip(f"no known verdict for this host's KVM ({host}): {result}")


def test_probe_without_kvm_device(tmp_path):
    result = probe_linux_support(cpu_modes.enter_long_mode, str(tmp_path / "missing"))
    assert not result.ok and "does not exist" in result.reason


