"""-device nvme / nvme-ns on virt: QEMU's spellings are taken, mistakes are one-line
errors before the guest runs."""

from __future__ import annotations

import pytest

from pemu.guests import guest_file
from tests.cli.test_command_line import emulator, refused

KERNEL = guest_file("riscv64") / "Image"  # read, never run: the options fail first


@pytest.fixture(autouse=True)
def _needs_kernel():
    if not KERNEL.exists():
        pytest.skip("needs ../shared/guests/riscv64")


def run(tmp_path, *devices):
    args = []
    for n in range(2):
        path = tmp_path / f"d{n}.raw"
        path.write_bytes(bytes(1 << 20))
        args += ["-drive", f"file={path},format=raw,if=none,id=d{n}"]
    for d in devices:
        args += ["-device", d]
    return emulator("riscv64", "-M", f"virt,dumpdtb={tmp_path / 'v.dtb'}", "-bios", "none",
                    "-kernel", str(KERNEL), "-nographic", *args)


@pytest.mark.parametrize("devices, named", [
    (("nvme,drive=d0",), "serial"),
    (("nvme,serial=a,id=c0", "nvme-ns,drive=d1,bus=c9"), "c9"),
    (("nvme,serial=a,id=c0,drive=d0", "nvme-ns,drive=d1,bus=c0,nsid=1"), "nsid"),
    (("nvme-ns,drive=d1",), "nvme"),
    (("nvme,serial=a,max_ioqpairs=0",), "max_ioqpairs"),
])
def test_bad_nvme_options_are_one_line_errors(tmp_path, devices, named):
    refused(run(tmp_path, *devices), named)


def test_controller_with_two_namespaces_starts(tmp_path):
    r = run(tmp_path, "nvme,serial=deadbeef,id=nvme0,drive=d0,addr=0x5",
            "nvme-ns,drive=d1,bus=nvme0,nsid=2")
    assert r.returncode == 0, r.stderr
