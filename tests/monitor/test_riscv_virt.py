"""QMP and HMP on the real riscv virt board (TCG) running a bare-metal guest, with a
virtio-blk drive on a real qcow2 image: -S, cont, stop, memory, registers, block,
reset while paused, quit."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest
from qemu.qmp import QMPClient

from pemu.monitor.server import create_monitors
from tests.gdbstub.conftest import VirtMachine, baremetal  # noqa: F401 - fixture

COUNTER = 0x80100000


async def _event(client: QMPClient, name: str):
    async def wait():
        async for ev in client.events:
            if ev["event"] == name:
                return ev
    return await asyncio.wait_for(wait(), 20)


def test_qmp_drives_the_virt_board(baremetal, tmp_path):  # noqa: F811
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed")
    disk = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "4M"], check=True)
    sock = str(tmp_path / "qmp.sock")
    m = VirtMachine(baremetal, "-S", "-name", "bare", "-qmp", f"unix:{sock},server=on,wait=off",
                    "-drive", f"file={disk},format=qcow2,if=none,id=d0",
                    "-device", "virtio-blk-device,drive=d0,id=blk0")
    monitors = create_monitors(m.cfg, m.vm, m.chardevs)
    m.start()
    dump = tmp_path / "counter.bin"

    async def go():
        c = QMPClient("virt")
        await c.connect(sock)
        r = {"pre": await c.execute("query-status")}
        r["cpus"] = await c.execute("query-cpus-fast")
        await c.execute("cont")
        await _event(c, "RESUME")
        await asyncio.sleep(0.3)
        await c.execute("stop")
        await _event(c, "STOP")
        await c.execute("pmemsave", {"val": COUNTER, "size": 8, "filename": str(dump)})
        r["regs"] = await c.execute("human-monitor-command",
                                    {"command-line": "info registers"})
        r["x"] = await c.execute("human-monitor-command",
                                 {"command-line": f"x /1xg {COUNTER:#x}"})
        r["mtree"] = await c.execute("human-monitor-command", {"command-line": "info mtree"})
        r["block"] = await c.execute("query-block")
        r["qom"] = await c.execute("qom-list", {"path": "/machine/peripheral"})
        await c.execute("system_reset")
        r["reset"] = await _event(c, "RESET")
        await asyncio.sleep(0.3)
        r["after_reset"] = await c.execute("human-monitor-command",
                                           {"command-line": "info cpus"})
        r["still"] = await c.execute("query-status")
        await c.execute("quit")
        r["shutdown"] = await _event(c, "SHUTDOWN")
        await c.disconnect()
        return r

    try:
        r = asyncio.run(asyncio.wait_for(go(), 60))
        m.thread.join(timeout=10)
        exited = not m.thread.is_alive()
    finally:
        monitors.close()
        m.close()
    assert r["pre"]["status"] == "prelaunch"
    assert r["cpus"][0]["target"] == "riscv64"
    counted = int.from_bytes(dump.read_bytes(), "little")
    assert counted > 0  # the guest ran between cont and stop
    assert f"{COUNTER:016x}: 0x{counted:016x}" in r["x"]  # and nothing ran since stop
    assert " mhartid  0000000000000000" in r["regs"] and " priv     M" in r["regs"]
    assert "(prio 0, ram): ram" in r["mtree"] and "virtio-mmio7" in r["mtree"]
    assert r["block"][0]["device"] == "d0" and r["block"][0]["inserted"]["file"] == str(disk)
    assert r["block"][0]["qdev"] == "/machine/peripheral/blk0"
    assert {"name": "blk0", "type": "child<virtio-blk-device>"} in r["qom"]
    assert r["reset"]["data"]["reason"] == "host-qmp-system-reset"
    assert "* CPU #0: pc=0x0000000000001000" in r["after_reset"]  # back at the reset vector
    assert r["still"]["status"] == "paused"  # a reset does not start a paused machine
    assert r["shutdown"]["data"] == {"guest": False, "reason": "host-qmp-quit"}
    assert exited and m.board.exit_reason == "quit from the monitor"
