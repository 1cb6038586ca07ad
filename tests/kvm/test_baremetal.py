"""Bare-metal guests of ours under -accel kvm, through the real command line."""

from __future__ import annotations

from pathlib import Path

from pemu.accel.kvm.probe import probe_linux_support
from pemu.target.x86.cpu_modes import enter_long_mode
from tests.kvm.conftest import run_pemu

BASE = ["-M", "microvm", "-accel", "kvm", "-cpu", "host", "-m", "32", "-no-reboot"]


def _serial(tmp_path: Path) -> tuple[list[str], Path]:
    out = tmp_path / "serial.txt"
    return ["-serial", f"file:{out}"], out


def test_serial_output_and_reboot_exit_status(kvm, guest, tmp_path):
    serial, out = _serial(tmp_path)
    r = run_pemu(BASE + serial + ["-kernel", str(guest("hello")), "-append", "answer=42"])
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "PEMU-BAREMETAL hello from a KVM guest, cmdline: answer=42\n"


def test_virtio_blk_round_trip_with_irqfd_and_hlt(kvm, guest, tmp_path):
    disk = tmp_path / "disk.img"
    marker = b"pemu-kvm-disk-marker: sector zero"
    disk.write_bytes(marker + bytes(4096 - len(marker)))
    serial, out = _serial(tmp_path)
    r = run_pemu(BASE + serial + [
        "-kernel", str(guest("virtio_blk")),
        "-drive", f"file={disk},if=none,id=d0,format=raw",
        "-device", "virtio-blk-device,drive=d0"])
    assert r.returncode == 0, r.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "PEMU-BAREMETAL read: " + marker.decode()
    # one interrupt per request, each waking the CPU from HLT; status VIRTIO_BLK_S_OK
    assert lines[1] == "PEMU-BAREMETAL irqs=0x00000002 status=0x00000000"
    data = disk.read_bytes()
    assert data[512:512 + len(marker)] == marker  # the write went to sector 1
    assert data[512 + len(marker):1024] == bytes(512 - len(marker))


def test_two_vcpus_start_through_init_sipi(kvm, guest, tmp_path):
    serial, out = _serial(tmp_path)
    r = run_pemu(BASE + serial + ["-smp", "2", "-kernel", str(guest("smp"))])
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "PEMU-BAREMETAL AP apic-id=0x00000001 BSP apic-id=0x00000000\n"


def test_unbacked_port_and_mmio_are_logged_not_fatal(kvm, guest, tmp_path):
    serial, out = _serial(tmp_path)
    log = tmp_path / "log.txt"
    r = run_pemu(BASE + serial + ["-kernel", str(guest("badio")), "-d", "guest_errors",
                                  "-D", str(log)])
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "PEMU-BAREMETAL port=0xffffffff mmio=0xffffffff\n"
    text = log.read_text()
    assert "write of 0x12345678 to unassigned I/O port 0x510 (size 4)" in text
    assert "read of unassigned I/O port 0x510 (size 4)" in text
    assert "write of 0xabcd to unassigned physical memory 0xd0000000 (size 4)" in text
    assert "read of unassigned physical memory 0xd0000000 (size 4)" in text
    assert "Traceback" not in r.stderr


def test_unbacked_access_silent_without_guest_errors(kvm, guest, tmp_path):
    serial, out = _serial(tmp_path)
    r = run_pemu(BASE + serial + ["-kernel", str(guest("badio"))])
    assert r.returncode == 0
    assert "guest error" not in r.stderr


def test_kernel_neither_bzimage_nor_elf(kvm, tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x90" * 4096)
    r = run_pemu(BASE + ["-kernel", str(junk), "-serial", "null"])
    assert r.returncode == 1
    assert "not a bzImage, an ELF vmlinux with a PVH note, or a multiboot image" in r.stderr
    assert "Traceback" not in r.stderr


def test_memory_larger_than_host(kvm, guest):
    r = run_pemu(["-M", "microvm", "-accel", "kvm", "-m", "64T", "-serial", "null",
                  "-kernel", str(guest("hello"))])
    assert r.returncode == 1
    assert "more memory than this host has" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_kvm_device_is_reported(guest, tmp_path):
    from pemu.accel.kvm.errors import KVMUnavailable
    from pemu.accel.kvm.system import KVMSystem

    try:
        KVMSystem(str(tmp_path / "no-kvm"))
    except KVMUnavailable as e:
        assert "does not exist" in str(e)
    else:
        raise AssertionError("opening a missing device must fail")


def test_non_kvm_device_is_reported():
    from pemu.accel.kvm.errors import KVMUnavailable
    from pemu.accel.kvm.system import KVMSystem

    try:
        KVMSystem("/dev/null")
    except KVMUnavailable as e:
        assert "not a usable KVM" in str(e)
    else:
        raise AssertionError("/dev/null is not KVM")


def test_only_kvm_and_microvm_are_accepted(guest):
    r = run_pemu(["-M", "pc", "-accel", "kvm", "-kernel", str(guest("hello"))])
    assert r.returncode == 1 and "unsupported machine type" in r.stderr
    r = run_pemu(["-M", "microvm", "-accel", "tcg", "-kernel", str(guest("hello"))])
    assert r.returncode == 1 and "only under KVM" in r.stderr
    r = run_pemu(["-M", "microvm", "-accel", "kvm", "-cpu", "qemu64", "-kernel",
                  str(guest("hello"))])
    assert r.returncode == 1 and "-cpu qemu64" in r.stderr and "host" in r.stderr


def test_kvm_internal_error_is_reported_not_hung(kvm, guest, tmp_path):
    serial, out = _serial(tmp_path)
    r = run_pemu(BASE + serial + ["-kernel", str(guest("xsave"))])
    if probe_linux_support(enter_long_mode).ok:  # hardware KVM: the instruction simply runs
        assert r.returncode == 0 and out.read_text() == "PEMU-BAREMETAL xsave ok\n"
        return
    assert r.returncode == 1
    assert "KVM internal error (emulation failure" in r.stderr
    assert "instruction bytes: 0f ae 27" in r.stderr  # xsave (%edi)
    assert "at RIP 0x1" in r.stderr
    assert "Traceback" not in r.stderr
