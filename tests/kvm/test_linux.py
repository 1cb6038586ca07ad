"""Linux guests from /work/shared/guests reach PEMU-GUEST-TEST-DONE where KVM can run them.

Whether it can is asked at run time with pemu's probe guest (XSAVE/XRSTOR/CMPXCHG16B in a
64-bit kernel); on a KVM that cannot, these skip with the probe's finding.
"""

from __future__ import annotations

import pytest

from pemu.accel.kvm.probe import probe_linux_support
from pemu.guests import guest_file
from pemu.target.x86.cpu_modes import enter_long_mode
from tests.kvm.conftest import run_pemu

GUESTS = guest_file("x86_64")
KERNELS = {
    "lean-bzImage": ("bzImage-lean", ["-M", "microvm,acpi=off"], "reboot=t"),
    "lean-vmlinux-pvh": ("vmlinux-lean", ["-M", "microvm,acpi=off"], "reboot=t"),
    "debian-cloud": ("vmlinuz-cloud", ["-M", "microvm"], "reboot=t"),
}


@pytest.fixture(scope="module")
def linux_capable_kvm(kvm):
    result = probe_linux_support(enter_long_mode)
    if not result.ok:
        pytest.skip(f"host KVM cannot run Linux: {result.reason}")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_linux_guest_self_test(linux_capable_kvm, name, tmp_path):
    kernel, machine, extra = KERNELS[name]
    if not (GUESTS / kernel).exists():
        pytest.skip(f"{GUESTS / kernel} missing")
    serial = tmp_path / "serial.txt"
    r = run_pemu(machine + [
        "-accel", "kvm", "-cpu", "host", "-m", "256M", "-smp", "2", "-no-reboot",
        "-kernel", str(GUESTS / kernel), "-initrd", str(GUESTS / "initramfs.cpio.gz"),
        "-append", f"console=ttyS0 pemu.test=poweroff {extra}",
        "-serial", f"file:{serial}", "-device", "virtio-rng-device"], timeout=180)
    text = serial.read_text(errors="replace")
    assert "PEMU-GUEST-BOOT-OK" in text, r.stderr
    assert "PEMU-TEST sha256 ok" in text
    assert "PEMU-GUEST-TEST-DONE" in text
    assert r.returncode == 0
