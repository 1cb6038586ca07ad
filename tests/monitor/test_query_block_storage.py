"""query-block and info block list the drive of every storage device on virt's PCIe
host (virtio-blk-pci, NVMe controller and namespace, AHCI disk and CD, SCSI disk and
CD) with QEMU's fields.  QEMU 7.2 itself is the oracle when it is installed: the same
command line, stopped with -S, no guest."""

from __future__ import annotations

import shutil

import pytest

from pemu.hw.pci import pcie as X
from pemu.monitor.hmp import HMPInterpreter
from tests.gdbstub.conftest import VirtMachine, baremetal  # noqa: F401 - fixture
from tests.monitor.qemu_oracle import qemu_execute

# drive id -> (format, media); the devices below name them
DRIVES = {"dv": "disk", "dn": "disk", "dn2": "disk", "dh": "disk", "dc": "cdrom",
          "ds": "disk", "dsc": "cdrom"}
DEVICES = [
    "virtio-blk-pci,drive=dv,id=vblk",
    "nvme,serial=s1,drive=dn,id=nvme0",
    "nvme-ns,drive=dn2,bus=nvme0,nsid=2",  # no id: /machine/peripheral-anon/device[0]
    "ich9-ahci,id=ahci",
    "ide-hd,drive=dh,bus=ahci.0,id=sata0",
    "ide-cd,drive=dc,bus=ahci.1",  # no id: device[1]
    "virtio-scsi-pci,id=scsi0",
    "scsi-hd,drive=ds,bus=scsi0.0,id=sd0",
    "scsi-cd,drive=dsc,bus=scsi0.0,id=cd1",
]
# what QEMU reports for each (its own values, outside the file names and node names)
FIELDS = ("device", "qdev", "locked", "removable", "tray_open", "io-status", "type")


def command_line(tmp_path) -> list[str]:
    args = []
    for name, media in DRIVES.items():
        image = tmp_path / f"{name}.raw"
        image.write_bytes(bytes(4 << 20))
        extra = ",media=cdrom,readonly=on" if media == "cdrom" else ""
        args += ["-drive", f"file={image},format=raw,if=none,id={name}{extra}"]
    for dev in DEVICES:
        args += ["-device", dev]
    return args


def summary(block: list[dict]) -> dict[str, dict]:
    """Per drive: QEMU's top-level fields, and the read-only flag and format."""
    out = {}
    for b in block:
        entry = {k: b[k] for k in FIELDS if k in b}
        entry["ro"] = b["inserted"]["ro"]
        entry["drv"] = b["inserted"]["drv"]
        entry["size"] = b["inserted"]["image"]["virtual-size"]
        out[b["device"]] = entry
    return out


@pytest.fixture
def pemu_block(baremetal, tmp_path):  # noqa: F811
    m = VirtMachine(baremetal, "-S", *command_line(tmp_path))
    try:
        yield m.vm.block.query_block(), HMPInterpreter(m.vm, None).info_block()
    finally:
        m.close()


def test_every_storage_unit_is_listed_with_qemus_fields(pemu_block):
    block, info = pemu_block
    got = summary(block)
    assert set(got) == set(DRIVES)
    assert got["dv"]["qdev"] == "/machine/peripheral/vblk/virtio-backend"
    assert got["dn"]["qdev"] == "nvme0" and "io-status" not in got["dn"]
    assert got["dn2"]["qdev"] == "/machine/peripheral-anon/device[0]"
    assert got["dc"]["qdev"] == "/machine/peripheral-anon/device[1]"
    for cd in ("dc", "dsc"):
        assert got[cd]["removable"] and got[cd]["tray_open"] is False and got[cd]["ro"]
    for disk in ("dv", "dn", "dn2", "dh", "ds"):
        assert not got[disk]["removable"] and "tray_open" not in got[disk]
        assert got[disk]["size"] == 4 << 20
    assert "dc (#block" in info and "(raw, read-only)" in info
    assert "    Attached to:      sata0\n" in info
    assert info.count("    Removable device: not locked, tray closed\n") == 2


@pytest.mark.skipif(shutil.which("qemu-system-riscv64") is None,
                    reason="needs qemu-system-riscv64 (the oracle)")
def test_query_block_matches_qemu(pemu_block, tmp_path):
    block, info = pemu_block
    qemu_block, qemu_info = qemu_execute(
        command_line(tmp_path), tmp_path, "query-block",
        ("human-monitor-command", {"command-line": "info block"}))
    assert summary(block) == summary(qemu_block)

    def attached(text: str) -> list[str]:
        return sorted(line for line in text.splitlines() if line.startswith("    "))
    assert attached(info) == attached(qemu_info)


# -drive if=none drives that no -device takes at start, hot-plugged later by device_add
HOT_DRIVES = ("hn", "hv")
HOT_PORTS = ["pcie-root-port,id=rp1,chassis=1,slot=1,addr=0x5",
             "pcie-root-port,id=rp2,chassis=2,slot=2,addr=0x6"]
HOT_DEVICES = [{"driver": "nvme", "drive": "hn", "bus": "rp1", "id": "hotnvme",
                "serial": "hot1"},
               {"driver": "virtio-blk-pci", "drive": "hv", "bus": "rp2", "id": "hotvirtio"}]


def hot_plug_command_line(tmp_path) -> list[str]:
    args = []
    for name in HOT_DRIVES:
        image = tmp_path / f"{name}.raw"
        image.write_bytes(bytes(2 << 20))
        args += ["-drive", f"file={image},format=raw,if=none,id={name}"]
    for port in HOT_PORTS:
        args += ["-device", port]
    return args


def _guest_powers_the_slot_off(board, port_addr: int) -> None:
    """pciehp's answer to the attention button: power and indicator off."""
    port = board.pci.root_bus.find(port_addr << 3)
    ctl = port.config_read(port.exp + X.SLTCTL, 2)
    port.config_write(port.exp + X.SLTCTL, 2, ctl | X.SLTCTL_PCC | X.SLTCTL_PIC)


def test_a_hot_plugged_drive_option_is_listed_and_goes_with_its_device(baremetal,  # noqa: F811
                                                                       tmp_path):
    m = VirtMachine(baremetal, "-S", *hot_plug_command_line(tmp_path))
    try:
        before = summary(m.vm.block.query_block())
        for dev in HOT_DEVICES:
            m.vm.device_add(dict(dev))
        plugged = summary(m.vm.block.query_block())
        deleted = []
        m.vm.events.subscribe(lambda e: deleted.append(e["data"]["device"])
                              if e["event"] == "DEVICE_DELETED" else None)
        m.vm.device_del("hotnvme")
        _guest_powers_the_slot_off(m.board, 5)
        after = summary(m.vm.block.query_block())
        readd = None
        try:
            m.vm.device_add(dict(HOT_DEVICES[0], id="again"))
        except Exception as e:  # noqa: BLE001 - the QMP error's text is the check
            readd = str(e)
    finally:
        m.close()
    # unattached: removable, no qdev, no tray, no I/O status (QEMU 7.2's answer)
    assert set(before) == set(HOT_DRIVES)
    for name in HOT_DRIVES:
        assert before[name]["removable"] and "qdev" not in before[name]
        assert "tray_open" not in before[name] and "io-status" not in before[name]
    assert plugged["hn"]["qdev"] == "hotnvme" and not plugged["hn"]["removable"]
    assert plugged["hv"]["qdev"] == "/machine/peripheral/hotvirtio/virtio-backend"
    assert plugged["hv"]["io-status"] == "ok"
    # device_del: the -drive goes with its device, as in QEMU
    assert deleted == ["hotnvme"]
    assert set(after) == {"hv"}
    assert readd is not None and "'hn' not found" in readd, readd


@pytest.mark.skipif(shutil.which("qemu-system-riscv64") is None,
                    reason="needs qemu-system-riscv64 (the oracle)")
def test_hot_plugged_drive_options_match_qemu(baremetal, tmp_path):  # noqa: F811
    m = VirtMachine(baremetal, "-S", *hot_plug_command_line(tmp_path))
    try:
        ours = [summary(m.vm.block.query_block())]
        for dev in HOT_DEVICES:
            m.vm.device_add(dict(dev))
        ours.append(summary(m.vm.block.query_block()))
    finally:
        m.close()
    qemu = qemu_execute(hot_plug_command_line(tmp_path), tmp_path, "query-block",
                        *(("device_add", dev) for dev in HOT_DEVICES), "query-block")
    assert ours == [summary(qemu[0]), summary(qemu[-1])]
