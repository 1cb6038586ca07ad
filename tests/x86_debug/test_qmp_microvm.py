"""QMP (the real qemu.qmp client) and HMP against pemu-system-x86_64 -accel kvm running a
bare-metal long-mode guest: -S, cont/stop really run and freeze the guest, events,
registers, memory through the guest's page tables, block, reset, quit."""

from __future__ import annotations

import asyncio

from qemu.qmp import QMPClient

from tests.x86_debug.conftest import COUNTER, HIGH, Pemu

HMP = "human-monitor-command"


async def _event(client: QMPClient, name: str, timeout: float = 20):
    async def wait():
        async for ev in client.events:
            if ev["event"] == name:
                return ev
    return await asyncio.wait_for(wait(), timeout)


async def _counter(c: QMPClient) -> int:
    text = await c.execute(HMP, {"command-line": f"xp /1xg {COUNTER:#x}"})
    return int(text.split()[1], 16)


async def _until(predicate, timeout: float = 20):
    async def poll():
        while not await predicate():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), timeout)


def test_qmp_stop_cont_reset_quit(kvm, longmode, tmp_path):
    sock = tmp_path / "qmp.sock"
    serial = tmp_path / "serial.txt"
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    dump_p, dump_v = tmp_path / "p.bin", tmp_path / "v.bin"
    vm = Pemu("-S", "-kernel", str(longmode.image), "-serial", f"file:{serial}",
              "-qmp", f"unix:{sock},server=on,wait=off",
              "-drive", f"file={disk},if=none,id=d0,format=raw",
              "-device", "virtio-blk-device,drive=d0,id=blk0", wait_for=sock)

    async def go() -> dict:
        r: dict = {}
        c = QMPClient("microvm")
        await c.connect(str(sock))
        r["pre"] = await c.execute("query-status")
        r["kvm"] = await c.execute("query-kvm")
        r["target"] = await c.execute("query-target")
        r["block"] = await c.execute("query-block")
        r["counter_pre"] = await _counter(c)
        await c.execute("cont")
        r["resume"] = await _event(c, "RESUME")
        await _until(lambda: _count_above(c, 1000))
        await c.execute("stop")
        r["stop"] = await _event(c, "STOP")
        r["paused"] = await c.execute("query-status")
        first = await _counter(c)
        await asyncio.sleep(0.5)
        r["frozen"] = (first, await _counter(c))
        r["serial_paused"] = serial.read_text()
        r["cpus"] = await c.execute("query-cpus-fast")
        r["regs"] = await c.execute(HMP, {"command-line": "info registers"})
        r["x_virt"] = await c.execute(HMP, {"command-line": f"x /1xg {HIGH + COUNTER:#x}"})
        r["mtree"] = await c.execute(HMP, {"command-line": "info mtree"})
        r["x_unmapped"] = await c.execute(HMP, {"command-line": "x /1xg 0x7fff00000000"})
        await c.execute("pmemsave", {"val": COUNTER, "size": 4096, "filename": str(dump_p)})
        await c.execute("memsave", {"val": HIGH + COUNTER, "size": 4096,
                                    "filename": str(dump_v)})
        await c.execute("cont")
        await _event(c, "RESUME")
        await _until(lambda: _count_above(c, r["frozen"][1] + 1000))
        r["running_again"] = await c.execute("query-status")
        await c.execute("system_reset")
        r["reset"] = await _event(c, "RESET")
        await _until(lambda: _serial_starts(serial, 2))
        await c.execute("system_powerdown")
        r["powerdown"] = await _event(c, "POWERDOWN")
        await c.execute("quit")
        r["shutdown"] = await _event(c, "SHUTDOWN")
        await c.disconnect()
        return r

    try:
        r = asyncio.run(asyncio.wait_for(go(), 90))
        status, err = vm.finish()
    finally:
        vm.kill()
    assert status == 0, err
    assert r["pre"] == {"status": "prelaunch", "running": False, "singlestep": False}
    assert r["counter_pre"] == 0  # -S: not one guest instruction ran
    assert r["kvm"] == {"enabled": True, "present": True}
    assert r["target"] == {"arch": "x86_64"}
    assert [b["device"] for b in r["block"]] == ["d0"]
    assert r["block"][0]["inserted"]["file"] == str(disk)
    assert r["paused"]["status"] == "paused" and not r["paused"]["running"]
    first, second = r["frozen"]
    assert first > 1000 and first == second  # stop really froze the guest
    assert r["serial_paused"] == "PEMU-DEBUG start\nPEMU-DEBUG long mode\n"
    assert r["cpus"][0]["target"] == "x86_64" and r["cpus"][0]["thread-id"] > 0
    regs = r["regs"]
    assert "RIP=ffff8000001" in regs, regs  # running in the high alias
    assert "CR3=0000000000300000" in regs and "EFER=0000000000000500" in regs, regs
    assert "CS =0010" in regs, regs
    assert int(r["x_virt"].split()[1], 16) == first  # same word through the page tables
    assert "Error:" in r["x_unmapped"] and "not present" in r["x_unmapped"]
    assert "serial0" in r["mtree"] and "ram0" in r["mtree"]
    assert dump_p.read_bytes() == dump_v.read_bytes()
    assert int.from_bytes(dump_p.read_bytes()[:8], "little") == first
    assert r["running_again"]["status"] == "running"
    assert r["reset"]["data"] == {"guest": False, "reason": "host-qmp-system-reset"}
    assert r["shutdown"]["data"] == {"guest": False, "reason": "host-qmp-quit"}


async def _count_above(c: QMPClient, n: int) -> bool:
    return await _counter(c) > n


async def _serial_starts(serial, n: int) -> bool:
    return serial.read_text().count("PEMU-DEBUG start") >= n


def test_guest_reset_restarts_in_place_and_stop_wins(kvm, guest, tmp_path):
    """The hello guest reboots through the i8042 right away: without -no-reboot the
    machine restarts it (RESET guest=true each time) until the monitor stops it."""
    sock = tmp_path / "qmp.sock"
    serial = tmp_path / "serial.txt"
    vm = Pemu("-S", "-kernel", str(guest("hello")), "-append", "round",
              "-serial", f"file:{serial}", "-qmp", f"unix:{sock},server=on,wait=off",
              wait_for=sock)

    async def go():
        c = QMPClient("microvm")
        await c.connect(str(sock))
        await c.execute("cont")
        resets = [await _event(c, "RESET") for _ in range(3)]
        await c.execute("stop")
        await _event(c, "STOP")
        status = await c.execute("query-status")
        await c.execute("quit")
        await c.disconnect()
        return resets, status

    try:
        resets, status = asyncio.run(asyncio.wait_for(go(), 60))
        code, err = vm.finish()
    finally:
        vm.kill()
    assert code == 0, err
    assert all(ev["data"] == {"guest": True, "reason": "guest-reset"} for ev in resets)
    assert status["status"] == "paused"
    lines = serial.read_text().splitlines()
    assert len(lines) >= 3
    assert set(lines[:3]) == {"PEMU-BAREMETAL hello from a KVM guest, cmdline: round"}
