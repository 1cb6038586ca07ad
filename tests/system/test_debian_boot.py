"""Debian's own riscv64 guest (Debian 13's 6.12 kernel, an initramfs of Debian packages)
boots under pemu to the end of its self-test and powers off.

This guest used to hang in user mode: its first dynamically linked program (kmod's
modprobe, run by the kernel and by /init) fills the translation cache, and the native
backend dropped the block it was translating together with the rest (see
test_tb_flush.py for the small reproduction).  One boot per configuration; every check
reads that boot's log.  The boot carries a virtio disk and a virtio-rng device, so /init
must modprobe their drivers (virtio_mmio, virtio_blk, virtio_rng, and ext4 on demand):
the same glibc program that hung.  On the python backend a boot takes over an hour, so it
runs only with PEMU_LONG_TESTS=1.

The native ``-smp 1`` boot runs the hart as ``-cpu rva23s64`` (V, H, Zicboz, ...): the
kernel then copies to and from user memory with vector loops (from 768 bytes on: the
self-test's pipes, whose sha256 it checks) and saves the vector registers on context
switches; it must report the vector unit.  The other boots are the default ``rv64``
(``-smp 2`` with rva23s64 on a loaded host once met a soft-lockup warning in the
kernel's trace-event setup, strlen_zbb: Zbb's orc.b is still a helper call).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil

import pytest

from pemu.guests import guest_file
from tests.system.conftest import OPENSBI, run_pemu

DEBIAN = guest_file("riscv64-debian")
LEAN = guest_file("riscv64")
BOOT_TIMEOUT = 5400
pytestmark = pytest.mark.slow
CONFIGS = [("native", 1, "rva23s64"), ("native", 2, "rv64"), ("python", 1, "rv64"),
           ("python", 2, "rv64")]


@pytest.fixture(scope="module", params=CONFIGS,
                ids=[f"{b}-smp{n}-{cpu}" for b, n, cpu in CONFIGS])
def boot(request, tmp_path_factory):
    """(smp, exit status, console output, cpu model) of one self-test boot."""
    backend, smp, cpu = request.param
    if not (DEBIAN / "Image").exists() or not OPENSBI.exists():
        pytest.skip("needs ../shared/guests/riscv64-debian and Debian's opensbi")
    if backend == "python" and os.environ.get("PEMU_LONG_TESTS") != "1":
        pytest.skip("a Debian boot takes over an hour on the python backend: "
                    "set PEMU_LONG_TESTS=1")
    if backend == "native":
        from pemu.accel.tcg.backend.x86_64 import host_supported

        if not host_supported():
            pytest.skip("the native TCG backend needs an x86-64 Linux host")
    disk = tmp_path_factory.mktemp("debian") / "rootfs.ext4"
    with gzip.open(LEAN / "rootfs.ext4.gz") as src, open(disk, "wb") as dst:
        shutil.copyfileobj(src, dst)
    r = run_pemu("-accel", f"tcg,backend={backend}", "-M", "virt", "-cpu", cpu, "-m", "512M",
                 "-smp", str(smp), "-nographic", "-no-reboot",
                 "-kernel", str(DEBIAN / "Image"),
                 "-initrd", str(DEBIAN / "initramfs.cpio.gz"),
                 "-append", "console=ttyS0 pemu.test=poweroff",
                 "-drive", f"file={disk},format=raw,if=none,id=d0,readonly=on",
                 "-device", "virtio-blk-device,drive=d0", "-device", "virtio-rng-device",
                 timeout=BOOT_TIMEOUT)
    return smp, r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode(), cpu


def test_reaches_the_end_of_the_self_test(boot):
    _, status, out, _ = boot
    lines = out.splitlines()
    for marker in ("PEMU-GUEST-BOOT-OK", "PEMU-TEST sha256 ok", "PEMU-TEST urandom ok",
                   "PEMU-GUEST-TEST-DONE"):
        assert any(line.startswith(marker) for line in lines), f"no {marker}:\n{out[-3000:]}"
    assert status == 0, out[-2000:]


def test_it_is_debians_kernel_with_every_cpu(boot):
    smp, _, out, _ = boot
    assert re.search(r"Linux version 6\.12\.\S+-riscv64 \(debian-kernel@", out)
    assert f"smp: Brought up 1 node, {smp} CPU" in out
    assert re.search(rf"PEMU-TEST cpus: {smp} ", out), out[-2000:]


def test_modprobe_loaded_the_drivers_of_the_devices(boot):
    _, _, out, _ = boot
    assert "PEMU-TEST virtio virtio0 device-id 0x0002 driver virtio_blk" in out, out[-3000:]
    assert re.search(r"PEMU-TEST virtio virtio1 device-id 0x0004 driver virtio_rng", out)
    # ext4 is a module of this kernel, loaded by the kernel's own modprobe call at the
    # mount.  (The mount itself fails under QEMU too: the image uses metadata_csum and
    # the guest's initramfs has no crc32c module.)
    assert "EXT4-fs (vda)" in out, out[-3000:]


def test_no_kernel_complaint(boot):
    _, _, out, _ = boot
    for bad in ("Kernel panic", "Oops", "BUG:", "soft lockup", "hard LOCKUP",
                "rcu_sched self-detected stall"):
        assert bad not in out, out[out.index(bad) - 500:out.index(bad) + 1500]


def test_the_kernel_reports_the_vector_unit_of_rva23s64(boot):
    _, _, out, cpu = boot
    base = re.search(r"riscv: base ISA extensions (\w+)", out)
    elf = re.search(r"riscv: ELF capabilities (\w+)", out)
    assert base and elf, out[:3000]
    # V (and H) exactly where the model has them: rv64 is IMAFDC
    assert ("v" in base.group(1) and "v" in elf.group(1)) == (cpu == "rva23s64"), out[:3000]
    assert ("h" in base.group(1)) == (cpu == "rva23s64")
