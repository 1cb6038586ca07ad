"""Every virtio-pci function's identity (class, vendor/device, subsystem, interrupt
pin, BAR layout) is QEMU 7.2's: both stopped with -S on the same command line, their
query-pci compared.  No guest runs."""

from __future__ import annotations

import shutil

import pytest

from pemu.monitor.pci_commands import query_pci
from tests.gdbstub.conftest import VirtMachine, baremetal  # noqa: F401 - fixture
from tests.monitor.qemu_oracle import qemu_execute

# QEMU's modern-only variants (pemu's are modern only; the names are its aliases)
DEVICES = {
    "blk": "virtio-blk-pci-non-transitional,drive=d0",
    "net": "virtio-net-pci-non-transitional,netdev=n0",
    "rng": "virtio-rng-pci-non-transitional",
    "ser": "virtio-serial-pci-non-transitional",
    "bal": "virtio-balloon-pci-non-transitional",
    "scsi": "virtio-scsi-pci-non-transitional",
    "p9": "virtio-9p-pci-non-transitional,fsdev=f0,mount_tag=share",
}
# QEMU 7.2's class codes (query-pci's 16-bit class/subclass), for the record and
# for hosts without QEMU: 9p's 0x0002 is QEMU's own value
QEMU_CLASSES = {"blk": 0x0100, "net": 0x0200, "rng": 0x00FF, "ser": 0x0780, "bal": 0x00FF,
                "scsi": 0x0100, "p9": 0x0002}
EXPANSION_ROM = 6  # QEMU's virtio-net carries a boot ROM (efi-virtio.rom); pemu has none


def command_line(tmp_path) -> list[str]:
    disk = tmp_path / "d0.raw"
    disk.write_bytes(bytes(1 << 20))
    share = tmp_path / "share"
    share.mkdir(exist_ok=True)
    args = ["-drive", f"file={disk},format=raw,if=none,id=d0", "-netdev", "user,id=n0",
            "-fsdev", f"local,id=f0,path={share},security_model=none"]
    for slot, (name, dev) in enumerate(DEVICES.items(), start=2):
        args += ["-device", f"{dev},id={name},addr={slot:#x}"]
    return args


def identities(devices: list[dict]) -> dict[str, tuple]:
    return {d["qdev_id"]: (d["class_info"]["class"], d["id"], d.get("irq_pin"),
                           sorted((r["bar"], r["size"], r["type"], r.get("prefetch"),
                                   r.get("mem_type_64")) for r in d["regions"]
                                  if r["bar"] != EXPANSION_ROM))
            for d in devices if d.get("qdev_id")}


@pytest.fixture
def pemu_ids(baremetal, tmp_path):  # noqa: F811
    m = VirtMachine(baremetal, "-S", *command_line(tmp_path))
    try:
        yield identities(query_pci(m.board.pci)[0]["devices"])
    finally:
        m.close()


def test_virtio_pci_class_codes_are_qemus(pemu_ids):
    assert {name: ids[0] for name, ids in pemu_ids.items()} == QEMU_CLASSES
    for name, (_, ids, pin, _bars) in pemu_ids.items():
        assert ids["vendor"] == 0x1AF4 and 0x1041 <= ids["device"] <= 0x107F, name
        assert (ids["subsystem-vendor"], ids["subsystem"]) == (0x1AF4, 0x1100), name
        assert pin == 1, name


@pytest.mark.skipif(shutil.which("qemu-system-riscv64") is None,
                    reason="needs qemu-system-riscv64 (the oracle)")
def test_virtio_pci_identities_match_qemu(pemu_ids, tmp_path):
    (buses,) = qemu_execute(command_line(tmp_path), tmp_path, "query-pci")
    assert pemu_ids == identities(buses[0]["devices"])
