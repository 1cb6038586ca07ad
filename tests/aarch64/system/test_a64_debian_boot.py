"""Debian 13's arm64 guest (../shared/guests/aarch64-debian: the 6.12 kernel and the
initramfs of Debian packages) boots on ``pemu-system-aarch64 -M virt -cpu max`` to the
end of its self-test and powers off through PSCI SYSTEM_OFF (pemu exits 0), with one
and with two vCPUs, on the native backend.

This boot used to look merely slow: with ``-cpu max`` (FEAT_LSE) SLUB's cmpxchg128 is a
CASP, which pemu lacked, so the kernel oopsed in sched_init_numa and spun in panic's
mdelay; and every misaligned load inside a page (Linux's zlib unpacking the initramfs)
took the softmmu's Python slow path.  Slow: one module-scoped boot per vCPU count,
every check reads that boot's console.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from pemu.accel.tcg.backend.x86_64 import host_supported
from pemu.guests import guest_file

DEBIAN = guest_file("aarch64-debian")
BOOT_S = 1500  # the board's own limit (status 124): a loaded 2-core host is slow
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=[1, 2], ids=["smp1", "smp2"])
def boot(request) -> tuple[int, int, str]:
    """(vCPUs, exit status, console) of one self-test boot."""
    smp = request.param
    kernel = DEBIAN / "vmlinuz"
    if not kernel.exists():
        pytest.skip("needs ../shared/guests/aarch64-debian")
    if not host_supported():
        pytest.skip("the native TCG backend needs an x86-64 Linux host")
    code = ("import sys; from pemu.cli import system_aarch64 as m; "
            "from pemu.cli.system_config import parse_system_argv as p; "
            f"sys.exit(m.run(p(sys.argv[1:], m.PROG), timeout={BOOT_S}))")
    r = subprocess.run([sys.executable, "-c", code, "-M", "virt", "-cpu", "max",
                        "-m", "1G", "-smp", str(smp), "-nographic", "-no-reboot",
                        "-accel", "tcg,backend=native", "-kernel", str(kernel),
                        "-initrd", str(DEBIAN / "initramfs.cpio.gz"),
                        "-append", "console=ttyAMA0 pemu.test=poweroff"],
                       capture_output=True, timeout=BOOT_S + 120)
    return smp, r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode()


def test_reaches_the_end_of_the_self_test_and_powers_off(boot) -> None:
    _, status, out = boot
    lines = out.splitlines()
    for marker in ("PEMU-GUEST-BOOT-OK", "PEMU-TEST sha256 ok", "PEMU-TEST urandom ok",
                   "PEMU-GUEST-TEST-DONE"):
        assert any(line.startswith(marker) for line in lines), f"no {marker}:\n{out[-3000:]}"
    assert status == 0, out[-2000:]  # PSCI SYSTEM_OFF


def test_it_is_debians_kernel_with_every_cpu_online(boot) -> None:
    smp, _, out = boot
    assert re.search(r"Linux version 6\.12\.\S+-arm64 \(debian-kernel@", out)
    assert "Machine model: linux,dummy-virt" in out
    assert "psci: PSCIv1.1 detected in firmware." in out
    assert f"smp: Brought up 1 node, {smp} CPU" in out, out[-3000:]
    assert "CPU features: detected: LSE atomic instructions" in out
    assert re.search(rf"PEMU-TEST cpus: {smp} ", out), out[-2000:]


def test_the_initramfs_was_unpacked_and_init_ran(boot) -> None:
    _, _, out = boot
    assert "Trying to unpack rootfs image as initramfs..." in out
    assert "Freeing initrd memory" in out
    assert "Run /init as init process" in out
    assert re.search(r"Linux \S+ 6\.12\.\S+-arm64 .* aarch64 GNU/Linux", out)  # uname -a


def test_nothing_went_wrong_on_the_way(boot) -> None:
    _, _, out = boot
    # (not "BUG:": the soft-lockup watchdog may fire on a loaded host, guest time being
    # the host's)
    for bad in ("Internal error", "Kernel panic", "Unable to handle", "Oops",
                "PEMU-WARN", "FAIL"):
        assert bad not in out, bad
