"""-device on virt's PCIe bus: bus=, addr=, multifunction= are checked before the guest
runs, with one-line errors; a good set of PCI devices gets into the device tree dump."""

from __future__ import annotations

import pytest

from pemu.guests import guest_file
from tests.cli.test_command_line import emulator, refused

KERNEL = guest_file("riscv64") / "Image"  # read, never run: the options fail first


@pytest.fixture(autouse=True)
def _needs_kernel():
    if not KERNEL.exists():
        pytest.skip("needs ../shared/guests/riscv64")


@pytest.fixture
def disk(tmp_path):
    path = tmp_path / "d.raw"
    path.write_bytes(bytes(1 << 20))
    return f"file={path},format=raw,if=none,id=d0"


@pytest.mark.parametrize("device, named", [
    ("virtio-rng-pci,addr=0x20", "addr"),
    ("virtio-rng-pci,addr=zz", "addr"),
    ("virtio-rng-pci,bus=pcie.7", "pcie.7"),
    ("virtio-rng-pci,addr=0", "in use"),  # the host bridge is 00.0
    ("virtio-rng-pci,disable-legacy=off", "disable-legacy"),
    ("virtio-rng-pci,bogus=1", "bogus"),
])
def test_bad_pci_placement_is_one_line_error(device, named):
    refused(emulator("riscv64", "-M", "virt", "-bios", "none", "-kernel", str(KERNEL),
                     "-nographic", "-device", device), named)


def test_multifunction_needs_function_0_multifunction(tmp_path, disk):
    refused(emulator("riscv64", "-M", "virt", "-bios", "none", "-kernel", str(KERNEL),
                     "-nographic", "-device", "virtio-rng-pci,addr=3",
                     "-device", "virtio-rng-pci,addr=3.1"), "single function")
    dtb = tmp_path / "v.dtb"
    r = emulator("riscv64", "-M", f"virt,dumpdtb={dtb}", "-bios", "none", "-kernel",
                 str(KERNEL), "-nographic", "-drive", disk,
                 "-device", "virtio-rng-pci,addr=0x3,multifunction=on",
                 "-device", "virtio-blk-pci,drive=d0,addr=0x3.1")
    assert r.returncode == 0, r.stderr
    assert dtb.stat().st_size > 0
