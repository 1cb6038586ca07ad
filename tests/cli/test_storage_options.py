"""-device ich9-ahci / ide-hd / ide-cd and virtio-scsi-pci / scsi-hd / scsi-cd on virt:
QEMU's spellings are taken, mistakes are one-line errors before the guest runs."""

from __future__ import annotations

import pytest

from tests.cli.test_command_line import emulator, refused
from tests.cli.test_nvme_options import KERNEL


@pytest.fixture(autouse=True)
def _needs_kernel():
    if not KERNEL.exists():
        pytest.skip("needs ../shared/guests/riscv64")


def run(tmp_path, *devices):
    args = []
    for n in range(3):
        path = tmp_path / f"d{n}.raw"
        path.write_bytes(bytes(1 << 20))
        media = ",media=cdrom" if n == 2 else ""
        args += ["-drive", f"file={path},format=raw,if=none,id=d{n}{media}"]
    for d in devices:
        args += ["-device", d]
    return emulator("riscv64", "-M", f"virt,dumpdtb={tmp_path / 'v.dtb'}", "-bios", "none",
                    "-kernel", str(KERNEL), "-nographic", *args)


@pytest.mark.parametrize("devices, named", [
    (("ide-hd,drive=d0",), "controller"),
    (("ahci,id=ahci", "ide-hd,drive=d0,bus=ahci.6"), "port 6"),
    (("ahci,id=ahci", "ide-hd,drive=d0,bus=sata.0"), "sata.0"),
    (("ahci,id=ahci", "ide-hd,drive=d0,bus=ahci.0", "ide-cd,drive=d2,bus=ahci.0"), "in use"),
    (("virtio-scsi-pci,id=scsi0", "scsi-hd,drive=d0,bus=scsi0.1"), "scsi0.1"),
    (("virtio-scsi-pci,id=scsi0", "scsi-hd,drive=d0,scsi-id=300"), "scsi-id=300"),
    (("virtio-scsi-pci,id=scsi0", "scsi-cd,drive=d9"), "d9"),
])
def test_bad_storage_options_are_one_line_errors(tmp_path, devices, named):
    refused(run(tmp_path, *devices), named)


def test_ahci_and_virtio_scsi_with_disks_and_cds_start(tmp_path):
    r = run(tmp_path, "ich9-ahci,id=ahci,addr=0x6", "ide-hd,drive=d0,bus=ahci.0",
            "ide-cd,drive=d2", "virtio-scsi-pci,id=scsi0", "scsi-hd,drive=d1,bus=scsi0.0,"
            "channel=0,scsi-id=1,lun=0")
    assert r.returncode == 0, r.stderr
