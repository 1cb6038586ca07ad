"""Debian 13's arm64 kernel (6.12, ../shared/guests/aarch64-debian) on
``pemu-system-aarch64 -M virt -cpu cortex-a57``: one boot, bounded in time, checked for
the banner and what early boot reliably reaches in that time on a loaded host (the
device tree, earlycon, PSCI, the memory map, the command line; on an idle host it gets
to the GIC, the arch timer and the initcalls).  Slow: one module-scoped boot of about
two minutes.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from pemu.accel.tcg.backend.x86_64 import host_supported
from pemu.guests import guest_file

DEBIAN = guest_file("aarch64-debian")
BOOT_S = 110  # the board's own limit: the run stops (status 124) when it is over
BACKEND = "native" if host_supported() else "python"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def console() -> str:
    kernel = DEBIAN / "vmlinuz"
    if not kernel.exists():
        pytest.skip("needs ../shared/guests/aarch64-debian")
    code = ("import sys; from pemu.cli import system_aarch64 as m; "
            "from pemu.cli.system_config import parse_system_argv as p; "
            f"sys.exit(m.run(p(sys.argv[1:], m.PROG), timeout={BOOT_S}))")
    r = subprocess.run([sys.executable, "-c", code, "-M", "virt", "-cpu", "cortex-a57",
                        "-m", "512M", "-nographic", "-no-reboot",
                        "-accel", f"tcg,backend={BACKEND}", "-kernel", str(kernel),
                        "-initrd", str(DEBIAN / "initramfs.cpio.gz"),
                        "-append", "console=ttyAMA0 earlycon"],
                       capture_output=True, timeout=BOOT_S + 60)
    assert r.returncode in (0, 124), r.stderr.decode()
    return r.stdout.decode(errors="replace")


def test_banner(console: str) -> None:
    assert "Linux version 6.12" in console
    assert "Booting Linux on physical CPU 0x0000000000 [0x411fd070]" in console


def test_early_boot(console: str) -> None:
    """The device tree, earlycon on the PL011, PSCI over HVC and the memory map."""
    for line in ("Machine model: linux,dummy-virt",
                 "earlycon: pl11 at MMIO 0x0000000009000000",
                 "psci: PSCIv1.1 detected in firmware.",
                 "node   0: [mem 0x0000000040000000-0x000000005fffffff]",
                 "Kernel command line: console=ttyAMA0 earlycon"):
        assert line in console, line
    assert "Internal error" not in console and "Kernel panic" not in console
