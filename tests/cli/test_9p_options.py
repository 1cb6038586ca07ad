"""-fsdev, -virtfs and -device virtio-9p-*: QEMU's errors, one line, before the guest
runs; a good share gets its device on virt's PCIe bus or a virtio-mmio slot."""

from __future__ import annotations

import pytest

from pemu.guests import guest_file
from tests.cli.test_command_line import emulator, refused

KERNEL = guest_file("riscv64") / "Image"  # read, never run: the options fail first


@pytest.fixture(autouse=True)
def _needs_kernel():
    if not KERNEL.exists():
        pytest.skip("needs ../shared/guests/riscv64")


def virt(*args: str):
    return emulator("riscv64", "-M", "virt", "-bios", "none", "-kernel", str(KERNEL),
                    "-nographic", *args)


@pytest.mark.parametrize("args, words", [
    (["-virtfs", "local,path=/tmp,security_model=none"], ["Usage: -virtfs"]),
    (["-fsdev", "local,id=f,path=/tmp"], ["security_model property not set"]),
    (["-fsdev", "local,id=f,path=/tmp,security_model=mapped-file"], ["mapped-file"]),
    (["-device", "virtio-9p-pci,mount_tag=t"], ["couldn't find fsdev with the id = NULL"]),
    (["-fsdev", "local,id=f,path=/nonexistent/dir,security_model=none",
      "-device", "virtio-9p-device,fsdev=f,mount_tag=t"],
     ["cannot initialize fsdev 'f'", "/nonexistent/dir"]),
    (["-fsdev", "local,id=f,path=/tmp,security_model=none",
      "-device", "virtio-9p-device,fsdev=f"], ["needs mount_tag"]),
])
def test_bad_share_options_are_one_line_errors(args, words):
    refused(virt(*args), *words)


def test_both_transports_plug(tmp_path):
    dtb = tmp_path / "v.dtb"
    r = emulator("riscv64", "-M", f"virt,dumpdtb={dtb}", "-bios", "none", "-kernel",
                 str(KERNEL), "-nographic",
                 "-virtfs", f"local,path={tmp_path},mount_tag=pcishare,security_model=none",
                 "-fsdev", f"local,id=m,path={tmp_path},security_model=mapped-xattr,"
                           "readonly=on",
                 "-device", "virtio-9p-device,fsdev=m,mount_tag=mmioshare")
    assert r.returncode == 0, r.stderr
    assert dtb.stat().st_size > 0
