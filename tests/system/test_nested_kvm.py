"""Nested virtualization under TCG: Debian's riscv64 kernel, on a pemu hart with the
hypervisor extension (``-cpu rv64,h=true``; AIA with IMSIC guest files), loads Debian's
kvm.ko, gets /dev/kvm and runs a guest of its own (programs/kvm_nested.c: MMIO stores
and a load, then an SBI system reset), which the host kernel's KVM reports to the
program as exits.

One pemu boot (3 to 6 minutes on a loaded 2-core machine, hence ``slow``) with every
check reading its log, and the same initramfs under QEMU 7.2 (about 15 s) when it is
installed: the nested guest's exits must be the same lines on both.  The overlay needs
the guest kernel's package from the Debian archive (downloaded once and cached, see
nested_kvm_guest.py) and the riscv64 cross compiler.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from pemu.guests import guest_file
from tests.linux_user.debian_root import archive_reachable
from tests.system.conftest import OPENSBI, run_pemu
from tests.system.nested_kvm_guest import CC, KERNEL_DEB, deb_path, nested_kvm_initrd

DEBIAN = guest_file("riscv64-debian")
BOOT_TIMEOUT = 1800
QEMU = "qemu-system-riscv64"
APPEND = "console=ttyS0 rdinit=/kvmtest/init"
# pemu's boot has the AIA with guest files, so the guest's KVM drives hvictl, hviprio
# and vsiselect on every guest entry too; QEMU 7.2's runs the plain board (it hangs
# under load with aia=aplic-imsic), the program's lines are the same either way
PEMU_MACHINE = "virt,aia=aplic-imsic,aia-guests=2"
pytestmark = pytest.mark.slow


def _missing() -> str | None:
    if not (DEBIAN / "Image").exists() or not OPENSBI.exists():
        return "needs ../shared/guests/riscv64-debian and Debian's opensbi"
    for tool in (CC, "dpkg-deb"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    from pemu.accel.tcg.backend.x86_64 import host_supported

    if not host_supported():
        return "a Debian boot needs the native TCG backend (an x86-64 Linux host)"
    return None


@pytest.fixture(scope="module")
def initrd(tmp_path_factory):
    why = _missing()
    if why:
        pytest.skip(why)
    if not _deb_cached():
        why = archive_reachable()
        if why:
            pytest.skip(f"{KERNEL_DEB} is not cached and {why}")
    return nested_kvm_initrd(DEBIAN / "initramfs.cpio.gz", tmp_path_factory.mktemp("kvm"))


def _deb_cached() -> bool:
    return deb_path().exists()


@pytest.fixture(scope="module")
def pemu_boot(initrd) -> str:
    r = run_pemu("-accel", "tcg,backend=native", "-M", PEMU_MACHINE, "-cpu", "rv64,h=true",
                 "-m", "512M", "-smp", "1", "-nographic", "-no-reboot",
                 "-kernel", str(DEBIAN / "Image"), "-initrd", str(initrd),
                 "-append", APPEND, timeout=BOOT_TIMEOUT)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    assert r.returncode == 0, out[-3000:]
    return out


@pytest.fixture(scope="module")
def qemu_boot(initrd) -> str:
    if shutil.which(QEMU) is None:
        pytest.skip(f"needs {QEMU} (QEMU 7.2) for the comparison")
    r = subprocess.run([QEMU, "-M", "virt", "-cpu", "rv64,h=true", "-m", "512M",
                        "-smp", "1", "-nographic", "-no-reboot", "-bios", str(OPENSBI),
                        "-kernel", str(DEBIAN / "Image"), "-initrd", str(initrd),
                        "-append", APPEND], capture_output=True, timeout=600,
                       stdin=subprocess.DEVNULL)
    return r.stdout.decode(errors="replace")


def _program_lines(out: str) -> list[str]:
    """What the nested-KVM program printed, in order."""
    return [line.strip() for line in out.splitlines()
            if line.startswith("KVM-TEST ") and not line.startswith(
                ("KVM-TEST dmesg", "KVM-TEST start", "KVM-TEST isa"))]


def test_kvm_module_loads_and_finds_the_hypervisor_extension(pemu_boot):
    assert "KVM-TEST insmod kvm.ko ok" in pemu_boot, pemu_boot[-3000:]
    assert re.search(r"kvm \[\d+\]: hypervisor extension available", pemu_boot), \
        pemu_boot[-3000:]
    assert re.search(r"kvm \[\d+\]: using Sv\d+x4 G-stage page table format", pemu_boot)
    assert re.search(r"kvm \[\d+\]: VMID 14 bits available", pemu_boot)  # as on QEMU
    assert re.search(r"kvm \[\d+\]: AIA available with 2 guest external interrupts",
                     pemu_boot), pemu_boot[-3000:]
    isa = re.search(r"KVM-TEST isa: isa\s*: (\S+)", pemu_boot)
    assert isa and re.match(r"rv64imafdch", isa.group(1)), pemu_boot[-3000:]


def test_dev_kvm_appears(pemu_boot):
    assert "KVM-TEST /dev/kvm is a character device" in pemu_boot, pemu_boot[-3000:]
    assert "KVM-TEST api-version 12" in pemu_boot


def test_nested_guest_exits_reach_the_program(pemu_boot):
    lines = _program_lines(pemu_boot)
    assert "KVM-TEST exit mmio read addr=0x10000010 len=4 data=0x5a5a1234" in lines, lines
    # the guest added one to what the program answered its load with
    assert "KVM-TEST exit mmio write addr=0x10000018 len=4 data=0x5a5a1235" in lines, lines
    assert "KVM-TEST guest said: hello from the nested guest" in lines, lines
    # KVM_SYSTEM_EVENT_SHUTDOWN: the nested guest's SBI SRST reached KVM's SBI emulation
    assert any(re.fullmatch(r"KVM-TEST exit system-event type=1 after \d+ exits", line)
               for line in lines), lines
    assert "KVM-TEST program exit status 0" in lines, lines
    assert not any("FAIL" in line for line in lines), lines


def test_no_kernel_complaint(pemu_boot):
    for bad in ("Kernel panic", "Oops", "BUG:", "WARNING:", "soft lockup",
                "rcu_sched self-detected stall", "Illegal instruction"):
        assert bad not in pemu_boot, pemu_boot[pemu_boot.index(bad) - 500:][:2500]


def test_same_exits_as_qemu(pemu_boot, qemu_boot):
    expected = _program_lines(qemu_boot)
    assert "KVM-TEST done" in expected, f"QEMU's own run failed:\n{qemu_boot[-3000:]}"
    assert _program_lines(pemu_boot) == expected
