"""QMP on virt's PCIe host (in-process board, stopped with -S): query-pci / info pci,
and hot-plug into a pcie-root-port with device_add / device_del.  The guest's side of
hot-plug (pciehp acknowledging and powering the slot off) is played by writing the
root port's config space through ECAM, as the guest's driver would."""

from __future__ import annotations

import asyncio

from qemu.qmp import QMPClient
from qemu.qmp.qmp_client import ExecuteError

from pemu.hw.pci import config as C
from pemu.hw.pci import pcie as X
from pemu.hw.riscv.memmap import VIRT_MEMMAP
from pemu.monitor.server import create_monitors
from tests.gdbstub.conftest import VirtMachine, baremetal  # noqa: F401 - fixture

ECAM = VIRT_MEMMAP["pcie_ecam"].base


def _guest_enables_hotplug(space, port_cfg: int, exp: int) -> None:
    """What pciehp does first: number the port's bus and enable slot events."""
    space.store(port_cfg + C.PRIMARY_BUS, 4, 0x00010100)
    space.store(port_cfg + exp + X.SLTCTL, 2, X.SLTCTL_HPIE | X.SLTCTL_PDCE
                | X.SLTCTL_ABPE | X.SLTCTL_DLLSCE)


async def _guest_lets_go(c: QMPClient, space, port_cfg: int, exp: int) -> dict:
    """After device_del: the guest acknowledges the button and powers the slot off;
    returns the DEVICE_DELETED event."""
    space.store(port_cfg + exp + X.SLTSTA, 2, 0xFFFF)
    ctl = space.load(port_cfg + exp + X.SLTCTL, 2)
    space.store(port_cfg + exp + X.SLTCTL, 2, ctl | X.SLTCTL_PCC | X.SLTCTL_PIC)

    async def deleted():
        async for ev in c.events:
            if ev["event"] == "DEVICE_DELETED":
                return ev
    return await asyncio.wait_for(deleted(), 20)


def test_query_pci_and_hot_plug_through_a_root_port(baremetal, tmp_path):  # noqa: F811
    sock = str(tmp_path / "qmp.sock")
    m = VirtMachine(baremetal, "-S", "-qmp", f"unix:{sock},server=on,wait=off",
                    "-device", "virtio-rng-pci,id=rng0,addr=0x4",
                    "-device", "pcie-root-port,id=rp1,slot=1,addr=0x5")
    monitors = create_monitors(m.cfg, m.vm, m.chardevs)
    port_cfg = ECAM + ((5 << 3) << 12)
    space = m.board.space
    port = m.board.pci.root_bus.find(5 << 3)
    exp = port.exp

    def guest_numbers_the_port_and_enables_hotplug() -> None:
        _guest_enables_hotplug(space, port_cfg, exp)

    async def go():
        c = QMPClient("virt")
        await c.connect(sock)
        r = {"pci": await c.execute("query-pci"),
             "info": await c.execute("human-monitor-command", {"command-line": "info pci"})}
        try:
            await c.execute("device_add", {"driver": "virtio-rng-pci", "id": "hot0"})
        except ExecuteError as e:
            r["root-refused"] = str(e)
        guest_numbers_the_port_and_enables_hotplug()
        await c.execute("device_add", {"driver": "virtio-rng-pci", "id": "hot0",
                                       "bus": "rp1"})
        r["sltsta-add"] = space.load(port_cfg + exp + X.SLTSTA, 2)
        r["child"] = space.load(ECAM + (1 << 20) + C.DEVICE_ID, 2)
        r["after-add"] = await c.execute("query-pci")
        try:
            await c.execute("device_add", {"driver": "virtio-rng-pci", "id": "hot1",
                                           "bus": "rp1"})
        except ExecuteError as e:
            r["occupied"] = str(e)
        await c.execute("device_del", {"id": "hot0"})
        r["sltsta-del"] = space.load(port_cfg + exp + X.SLTSTA, 2)
        r["still-there"] = space.load(ECAM + (1 << 20) + C.DEVICE_ID, 2)
        r["deleted"] = await _guest_lets_go(c, space, port_cfg, exp)
        r["gone"] = space.load(ECAM + (1 << 20) + C.VENDOR_ID, 2)
        await c.execute("quit")
        await c.disconnect()
        return r

    m.start()
    try:
        r = asyncio.run(asyncio.wait_for(go(), 60))
    finally:
        monitors.close()
        m.close()
    devices = {d["qdev_id"]: d for d in r["pci"][0]["devices"]}
    assert devices["rng0"]["slot"] == 4 and devices["rng0"]["id"]["device"] == 0x1044
    assert devices["rng0"]["class_info"]["class"] == 0x00FF
    assert devices["rp1"]["id"]["device"] == 0x000C
    assert devices["rp1"]["pci_bridge"]["devices"] == []
    assert all(reg["address"] == (1 << 64) - 1 for reg in devices["rng0"]["regions"])
    # QEMU 7.2's own lines for the same devices (qemu-system-riscv64 -M virt -S,
    # virtio-rng-pci,disable-legacy=on: `info pci` before the firmware ran)
    for line in ("Host bridge: PCI device 1b36:0008", "PCI subsystem 1af4:1100",
                 "Class 0255: PCI device 1af4:1044",
                 "BAR1: 32 bit memory at 0xffffffffffffffff [0x00000ffe].",
                 "BAR4: 64 bit prefetchable memory at 0xffffffffffffffff [0x00003ffe]."):
        assert line in r["info"], line
    assert "PCI bridge: PCI device 1b36:000c" in r["info"]
    assert "does not support hotplugging" in r["root-refused"]
    assert r["sltsta-add"] & X.SLTSTA_PDS and r["sltsta-add"] & X.SLTSTA_PDC
    assert r["child"] == 0x1044
    port_info = {d["qdev_id"]: d for d in r["after-add"][0]["devices"]}["rp1"]
    assert [d["qdev_id"] for d in port_info["pci_bridge"]["devices"]] == ["hot0"]
    assert "occupied" in r["occupied"]
    assert r["sltsta-del"] & X.SLTSTA_ABP and r["still-there"] == 0x1044
    assert r["deleted"]["data"]["device"] == "hot0"
    assert r["gone"] == 0xFFFF


def test_a_blockdev_add_node_hot_plugged_as_a_disk_as_libvirt_does(baremetal, tmp_path):  # noqa: F811
    """virsh attach-device / detach-device of a disk: blockdev-add of a protocol and a
    format node, device_add virtio-blk-pci drive=FORMAT on a root port; device_del,
    DEVICE_DELETED, then blockdev-del of both nodes."""
    sock = str(tmp_path / "qmp.sock")
    image = tmp_path / "disk2.raw"
    image.write_bytes(bytes(1 << 20))
    m = VirtMachine(baremetal, "-S", "-qmp", f"unix:{sock},server=on,wait=off",
                    "-device", "pcie-root-port,id=rp1,slot=1,addr=0x5")
    monitors = create_monitors(m.cfg, m.vm, m.chardevs)
    port_cfg = ECAM + ((5 << 3) << 12)
    space = m.board.space
    exp = m.board.pci.root_bus.find(5 << 3).exp

    async def go():
        c = QMPClient("virt")
        await c.connect(sock)
        r = {}
        _guest_enables_hotplug(space, port_cfg, exp)
        await c.execute("blockdev-add", {"driver": "file", "filename": str(image),
                                         "node-name": "lv-storage"})
        await c.execute("blockdev-add", {"node-name": "lv-format", "driver": "raw",
                                         "file": "lv-storage", "backing": None})
        await c.execute("device_add", {"driver": "virtio-blk-pci", "id": "disk1",
                                       "bus": "rp1", "drive": "lv-format"})
        r["block"] = await c.execute("query-block")
        r["child"] = space.load(ECAM + (1 << 20) + C.DEVICE_ID, 2)
        try:
            await c.execute("blockdev-del", {"node-name": "lv-format"})
        except ExecuteError as e:
            r["busy"] = str(e)
        await c.execute("device_del", {"id": "disk1"})
        r["deleted"] = await _guest_lets_go(c, space, port_cfg, exp)
        r["block-after"] = await c.execute("query-block")
        for node in ("lv-format", "lv-storage"):
            await c.execute("blockdev-del", {"node-name": node})
        try:
            await c.execute("device_add", {"driver": "virtio-blk-pci", "id": "disk2",
                                           "bus": "rp1", "drive": "lv-format"})
        except ExecuteError as e:
            r["no-node"] = str(e)
        await c.execute("quit")
        await c.disconnect()
        return r

    m.start()
    try:
        r = asyncio.run(asyncio.wait_for(go(), 60))
    finally:
        monitors.close()
        m.close()
    disk = [b for b in r["block"] if b["qdev"] == "/machine/peripheral/disk1/virtio-backend"]
    assert len(disk) == 1 and disk[0]["device"] == ""  # a -blockdev disk, as libvirt expects
    assert disk[0]["inserted"]["node-name"] == "lv-format"
    assert disk[0]["inserted"]["image"]["virtual-size"] == 1 << 20
    assert r["child"] == 0x1042  # virtio-blk (modern) behind the root port
    assert "busy" in r["busy"]
    assert r["deleted"]["data"]["device"] == "disk1"
    assert not any(b["qdev"].startswith("/machine/peripheral/disk1") for b in r["block-after"])
    assert "drive 'lv-format' not found" in r["no-node"]
