"""The balloon commands on the real virt board (in-process, stopped with -S): QMP
``balloon``/``query-balloon``, ``qom-set``/``qom-get`` of the guest statistics and
HMP ``info balloon`` reach a -device virtio-balloon-pci; the guest's side (the driver
writing ``actual``) is played by the device-config write its BAR4 access becomes."""

from __future__ import annotations

import asyncio

from qemu.qmp import QMPClient
from qemu.qmp.qmp_client import ExecuteError

from pemu.monitor.server import create_monitors
from tests.gdbstub.conftest import VirtMachine, baremetal  # noqa: F401 - fixture

RAM = 64 << 20
PATH = "/machine/peripheral/bal0"


def test_balloon_commands_on_the_virt_board(baremetal, tmp_path):  # noqa: F811
    sock = str(tmp_path / "qmp.sock")
    m = VirtMachine(baremetal, "-S", "-qmp", f"unix:{sock},server=on,wait=off",
                    "-device", "virtio-balloon-pci,id=bal0,addr=0x4",
                    "-device", f"virtio-vsock-pci,id=vs0,guest-cid=9,uds-path="
                    f"{tmp_path / 'v.sock'}")
    monitors = create_monitors(m.cfg, m.vm, m.chardevs)
    function = m.board.pci.root_bus.find(4 << 3)
    balloon = function.virtio

    def driver_writes_actual(pages: int) -> None:
        # offset 4 of the device config: actual
        function.transport.write_device_config(4, 4, pages)

    async def go():
        c = QMPClient("virt")
        await c.connect(sock)
        r = {"before": await c.execute("query-balloon")}
        await c.execute("balloon", {"value": RAM // 4})
        r["num_pages"] = balloon.num_pages
        driver_writes_actual(RAM * 3 // 4 // 4096)

        async def change():
            async for ev in c.events:
                if ev["event"] == "BALLOON_CHANGE":
                    return ev
        r["event"] = await asyncio.wait_for(change(), 20)
        r["after"] = await c.execute("query-balloon")
        r["hmp"] = await c.execute("human-monitor-command", {"command-line": "info balloon"})
        r["list"] = await c.execute("qom-list", {"path": PATH})
        await c.execute("qom-set", {"path": PATH, "property": "guest-stats-polling-interval",
                                    "value": 30})
        r["interval"] = await c.execute("qom-get", {
            "path": PATH, "property": "guest-stats-polling-interval"})
        await c.execute("qom-set", {"path": PATH, "property": "guest-stats-polling-interval",
                                    "value": 0})
        r["stats"] = await c.execute("qom-get", {"path": PATH, "property": "guest-stats"})
        try:
            await c.execute("qom-set", {"path": PATH, "property": "guest-stats",
                                        "value": 1})
        except ExecuteError as e:
            r["readonly"] = str(e)
        try:
            await c.execute("balloon", {"value": 0})
        except ExecuteError as e:
            r["zero"] = str(e)
        await c.disconnect()
        return r

    m.start()
    try:
        r = asyncio.run(asyncio.wait_for(go(), 60))
    finally:
        monitors.close()
        m.close()
    assert r["before"] == {"actual": RAM}
    assert r["num_pages"] == RAM * 3 // 4 // 4096
    assert r["event"]["data"] == {"actual": RAM // 4}
    assert r["after"] == {"actual": RAM // 4}
    assert r["hmp"] == f"balloon: actual={RAM // 4 >> 20}\n"
    assert {"name": "guest-stats-polling-interval", "type": "int"} in r["list"]
    assert r["interval"] == 30
    assert r["stats"]["last-update"] == 0  # no guest driver ran: nothing reported yet
    assert "not writable" in r["readonly"]
    assert "target" in r["zero"]
    assert not (tmp_path / "v.sock").exists()  # the vsock device closed its socket
