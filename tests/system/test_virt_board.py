"""The virt board: OpenSBI hand-off, the generated device tree, U-Boot, bad input."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import time

import pytest

from tests.system.conftest import OPENSBI, ROOT, UBOOT, pemu_cmd, pemu_env, run_pemu

pytestmark = pytest.mark.usefixtures("tcg_backend")  # every test on both backends


@pytest.mark.parametrize("smp", ["1", "2"])
def test_opensbi_boots_an_s_mode_payload(build_program, smp):
    """OpenSBI (Debian's fw_dynamic) prints its banner, enters the payload in S-mode;
    the payload uses SBI calls, takes an Sstc timer interrupt and powers off (SRST)."""
    if not OPENSBI.exists():
        pytest.skip("Debian's opensbi is not installed")
    elf = build_program("sbi_payload", text_base=0x8020_0000)
    r = run_pemu("-M", "virt", "-m", "128M", "-smp", smp, "-nographic", "-kernel", str(elf),
                 timeout=300)
    out = r.stdout.decode(errors="replace")
    assert "OpenSBI v" in out
    assert "Domain0 Next Mode         : S-mode" in out
    assert f"Platform HART Count       : {smp}" in out
    assert "payload: hello from S-mode" in out
    assert "payload: timer interrupt ok" in out
    assert r.returncode == 0, out[-500:] + r.stderr.decode()


def test_dumpdtb_describes_the_board(tmp_path, build_program):
    if not shutil.which("dtc"):
        pytest.skip("dtc (device-tree-compiler) is not installed")
    dtb = tmp_path / "virt.dtb"
    r = run_pemu("-M", f"virt,dumpdtb={dtb}", "-m", "256M", "-smp", "2", "-bios", "none",
                 "-append", "console=ttyS0", "-kernel", str(build_program("finisher_fail")),
                 timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    dts = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", str(dtb)], capture_output=True,
                         text=True, check=True).stdout
    for needle in ("memory@80000000", "reg = <0x00 0x80000000 0x00 0x10000000>",
                   "cpu@0", "cpu@1", "riscv,isa = \"rv64imafdc", "serial@10000000",
                   "plic@c000000", "clint@2000000", "test@100000", "rtc@101000",
                   "virtio_mmio@10008000", "virtio_mmio@10001000",
                   "bootargs = \"console=ttyS0\"", "timebase-frequency = <0x989680>",
                   "syscon-poweroff"):
        assert needle in dts, needle
    assert dts.count("virtio,mmio") == 8
    assert "flash" not in dts  # only what exists is described
    # the ECAM host bridge as QEMU's virt describes it (INTx swizzled onto PLIC 32..35)
    for needle in ("pci@30000000", 'compatible = "pci-host-ecam-generic"',
                   "bus-range = <0x00 0xff>", "interrupt-map-mask = <0x1800 0x00 0x00 0x07>",
                   "ranges = <0x1000000 0x00 0x00 0x00 0x3000000 0x00 0x10000 "
                   "0x2000000 0x00 0x40000000 0x00 0x40000000 0x00 0x40000000 "
                   "0x3000000 0x04 0x00 0x04 0x00 0x04 0x00>"):
        assert needle in dts, needle
    assert "msi-parent" not in dts  # no MSI controller on the PLIC board: INTx


def test_kernel_that_is_neither_image_nor_elf(tmp_path):
    bogus = tmp_path / "bogus.bin"
    bogus.write_bytes(os.urandom(4096))
    r = run_pemu("-M", "virt", "-bios", "none", "-kernel", str(bogus), timeout=60)
    assert r.returncode == 1
    assert b"not a RISC-V Linux Image or an ELF file" in r.stderr
    assert b"Traceback" not in r.stderr


def test_missing_disk_file(tmp_path):
    r = run_pemu("-M", "virt", "-bios", "none", "-kernel", str(tmp_path / "none.elf"),
                 "-drive", f"file={tmp_path / 'missing.img'},format=raw,if=virtio",
                 timeout=60)
    assert r.returncode == 1
    assert b"Traceback" not in r.stderr
    r = run_pemu("-M", "virt", "-drive", f"file={tmp_path / 'missing.img'},format=raw,"
                 "if=virtio", timeout=60)
    assert r.returncode == 1
    assert b"missing.img" in r.stderr and b"Traceback" not in r.stderr


def test_unknown_machine_and_options():
    r = run_pemu("-M", "sifive_u", timeout=30)
    assert r.returncode == 1 and b"unsupported machine type" in r.stderr
    r = run_pemu("-M", "virt,bogus=1", timeout=30)
    assert r.returncode == 1 and b"bogus" in r.stderr


def _read_until(fd: int, needle: bytes, timeout: float, buf: bytearray) -> bool:
    end = time.monotonic() + timeout
    watch = select.poll()  # (not select: a test worker's descriptors may number over 1023)
    watch.register(fd, select.POLLIN)
    while time.monotonic() < end:
        if needle in buf:
            return True
        ready = watch.poll(500)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:
                return needle in buf
            if not data:
                return needle in buf
            buf += data
    return needle in buf


def test_uboot_prompt_and_version_over_a_pty():
    """Debian's S-mode U-Boot under OpenSBI: reach the prompt, run `version`, Ctrl-A x."""
    if not (UBOOT.exists() and OPENSBI.exists()):
        pytest.skip("Debian's u-boot-qemu/opensbi are not installed")
    master, slave = pty.openpty()
    proc = subprocess.Popen(pemu_cmd("-M", "virt", "-m", "256M", "-nographic", "-kernel",
                                     str(UBOOT)), stdin=slave, stdout=slave, stderr=slave,
                            env=pemu_env(), cwd=ROOT, start_new_session=True)
    os.close(slave)
    buf = bytearray()
    try:
        assert _read_until(master, b"Hit any key to stop autoboot", 300, buf), bytes(buf)
        os.write(master, b"\r")  # stop autoboot
        assert _read_until(master, b"=> ", 120, buf), bytes(buf[-400:])
        del buf[:]
        os.write(master, b"version\r")
        assert _read_until(master, b"GNU ld", 120, buf), bytes(buf)
        assert b"U-Boot 20" in buf
        os.write(master, b"\x01x")  # Ctrl-A x: quit
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_signals_stop_the_guest_cleanly(build_program, tmp_path, sig):
    import signal

    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    proc = subprocess.Popen(pemu_cmd("-M", "virt", "-bios", "none", "-kernel",
                                     str(build_program("spin")), "-serial", "stdio",
                                     "-drive", f"file={disk},format=raw,if=virtio"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=pemu_env(), cwd=ROOT)
    try:
        assert proc.stdout.read(2) == b"R\n"  # the guest runs
        proc.send_signal(getattr(signal, sig))
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert f"terminating on signal {getattr(signal, sig).value}".encode() in err
    assert b"Traceback" not in err
