"""The pcie-root-port slot register by register against QEMU 7.2: one script of config
accesses (what pciehp does) and QMP device_add / device_del, run on QEMU through qtest
(``-qtest``: QEMU's own test protocol for MMIO reads and writes, no CPU runs) and on
pemu's virt board in this process; the recorded Slot Status / Slot Control values,
the card's visibility, device_del's answers and DEVICE_DELETED must be the same."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time

import pytest

from pemu.hw.riscv.memmap import VIRT_MEMMAP
from pemu.monitor.errors import QMPError
from tests.gdbstub.conftest import VirtMachine, baremetal  # noqa: F401 - fixture

ECAM = VIRT_MEMMAP["pcie_ecam"].base
PORT = ECAM + ((8 << 3) << 12)  # 00:08.0
CARD = ECAM + (1 << 20)  # 01:00.0
PORT_ARGS = ["-device", "pcie-root-port,id=rp1,bus=pcie.0,addr=0x8,chassis=1,slot=1"]
CARD_OPTS = {"driver": "virtio-blk-pci", "drive": "hp0", "bus": "rp1", "id": "hp"}


def script(m) -> list:
    """The accesses, on ``m`` (read/write of physical memory, device_add/del, events)."""
    out: list = []
    m.write(PORT + 0x18, 4, 0x00010100)  # primary 0, secondary 1, subordinate 1
    m.write(PORT + 0x04, 2, 0x6)  # memory space, bus master
    exp = m.read(PORT + 0x34, 1)
    while exp and m.read(PORT + exp, 1) != 0x10:
        exp = m.read(PORT + exp + 1, 1)
    ctl, sta = PORT + exp + 0x18, PORT + exp + 0x1A

    def slot(tag: str) -> None:
        out.append((tag, hex(m.read(ctl, 2)), hex(m.read(sta, 2)),
                    hex(m.read(CARD, 4)), m.behind_port()))
    slot("reset")
    out.append(m.device_add(CARD_OPTS))
    slot("plugged")
    m.write(sta, 2, m.read(sta, 2))  # acknowledge
    m.write(ctl, 2, 0x2C0)  # power on, power indicator blinking (pciehp's enable)
    slot("powering")
    out.append(m.device_del("hp"))  # refused: the indicator blinks
    m.write(ctl, 2, 0x1C0)  # indicator on
    out.append(m.device_del("hp"))
    slot("button")
    m.write(sta, 2, m.read(sta, 2))
    m.write(ctl, 2, 0x5C0)  # power off, indicator still on: the card stays, hidden
    slot("off-indicator-on")
    m.write(ctl, 2, 0x7C0)  # power and indicator off: the card goes
    slot("off")
    out.append(m.deleted())
    m.write(sta, 2, m.read(sta, 2))
    # a second card (its own drive: QEMU deletes a -drive with its device) into the
    # powered-off slot; device_del has nobody to ask: out at once
    out.append(m.device_add(dict(CARD_OPTS, drive="hp1", id="hp2")))
    out.append(m.device_del("hp2"))
    slot("fast-unplug")
    out.append(m.deleted())
    return out


class QemuSide:
    def __init__(self, tmp_path, drive: list[str]) -> None:
        qtest_path, qmp_path = str(tmp_path / "qtest.sock"), str(tmp_path / "qmp.sock")
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(qtest_path)
        listener.listen(1)
        listener.settimeout(30)
        self.proc = subprocess.Popen(
            ["qemu-system-riscv64", "-M", "virt", "-nodefaults", "-display", "none",
             "-qtest", f"unix:{qtest_path}", *PORT_ARGS, *drive,
             "-qmp", f"unix:{qmp_path},server=on,wait=off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.qtest = listener.accept()[0].makefile("rw")
        listener.close()
        self.qmp_sock = socket.socket(socket.AF_UNIX)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.qmp_sock.connect(qmp_path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.qmp = self.qmp_sock.makefile("rw")
        self.events: list[dict] = []
        self.qmp.readline()
        self._execute("qmp_capabilities", {})

    def _qtest(self, line: str) -> str:
        self.qtest.write(line + "\n")
        self.qtest.flush()
        while not (reply := self.qtest.readline()).startswith(("OK", "FAIL")):
            pass
        return reply

    def read(self, addr: int, size: int) -> int:
        op = {1: "readb", 2: "readw", 4: "readl"}[size]
        return int(self._qtest(f"{op} {addr:#x}").split()[1], 16)

    def write(self, addr: int, size: int, value: int) -> None:
        op = {1: "writeb", 2: "writew", 4: "writel"}[size]
        self._qtest(f"{op} {addr:#x} {value:#x}")

    def _execute(self, command: str, arguments: dict) -> dict:
        self.qmp.write(json.dumps({"execute": command, "arguments": arguments}) + "\n")
        self.qmp.flush()
        while "event" in (reply := json.loads(self.qmp.readline())):
            self.events.append(reply)
        return reply

    def device_add(self, opts: dict) -> str:
        return "ok" if "return" in self._execute("device_add", opts) else "refused"

    def device_del(self, dev_id: str) -> str:
        reply = self._execute("device_del", {"id": dev_id})
        return "ok" if "return" in reply else reply["error"]["desc"]

    def behind_port(self) -> list[str]:
        (bus,) = self._execute("query-pci", {})["return"]
        (port,) = [d for d in bus["devices"] if d.get("qdev_id") == "rp1"]
        return [d["qdev_id"] for d in port["pci_bridge"].get("devices", [])]

    def deleted(self) -> list[str]:
        # QEMU emits DEVICE_DELETED from an RCU callback; with no vCPU running under
        # qtest it waits, and a failed device_add is what drains those callbacks
        self._execute("device_add", {"driver": "no-such-device"})
        self._execute("query-status", {})  # reads the events sent before it
        out = [e["data"]["device"] for e in self.events
               if e["event"] == "DEVICE_DELETED" and "device" in e["data"]]
        self.events.clear()
        return out

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


class PemuSide:
    def __init__(self, machine: VirtMachine) -> None:
        self.m = machine
        self.events: list[dict] = []
        machine.vm.events.subscribe(self.events.append)

    def read(self, addr: int, size: int) -> int:
        return self.m.board.space.load(addr, size)

    def write(self, addr: int, size: int, value: int) -> None:
        self.m.board.space.store(addr, size, value)

    def device_add(self, opts: dict) -> str:
        try:
            self.m.vm.device_add(dict(opts))
        except QMPError:
            return "refused"
        return "ok"

    def device_del(self, dev_id: str) -> str:
        try:
            self.m.vm.device_del(dev_id)
        except QMPError as e:
            return str(e)
        return "ok"

    def behind_port(self) -> list[str]:
        port = self.m.board.pci.find_bus("rp1")
        return [d.id for _, d in sorted(port.devices.items())]

    def deleted(self) -> list[str]:
        out = [e["data"]["device"] for e in self.events
               if e["event"] == "DEVICE_DELETED"]
        self.events.clear()
        return out


@pytest.mark.skipif(shutil.which("qemu-system-riscv64") is None,
                    reason="needs qemu-system-riscv64 (the oracle)")
def test_slot_behaves_as_qemus(baremetal, tmp_path):  # noqa: F811
    drive = []
    for name in ("hp0", "hp1"):
        image = tmp_path / f"{name}.raw"
        image.write_bytes(bytes(1 << 20))
        drive += ["-drive", f"file={image},format=raw,if=none,id={name}"]
    qemu = QemuSide(tmp_path, drive)
    try:
        expected = script(qemu)
    finally:
        qemu.close()
    m = VirtMachine(baremetal, "-S", *PORT_ARGS, *drive)
    try:
        got = script(PemuSide(m))
    finally:
        m.close()
    assert got == expected
    # and the script saw what it is about (QEMU's values)
    assert ("plugged", "0x7c0", "0x49", "0xffffffff", ["hp"]) in expected
    assert "Hot-unplug failed: guest is busy (power indicator blinking)" in expected
    assert expected.count(["hp"]) == 1 and ["hp2"] in expected  # DEVICE_DELETED
