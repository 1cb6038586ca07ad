"""The options libvirt puts on a guest's command line: each does what QEMU's does, or
is refused with one line naming it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time

import pytest
from qemu.qmp import ExecuteError, QMPClient

from tests.cli.test_command_line import emulator, refused
from tests.libvirt.test_qmp_probe import start_probe
from tests.system.conftest import ROOT, build_program, pemu_env  # noqa: F401 - fixture

UUID = "c7a5fdbd-cdaf-9455-926a-d65c16db1809"


@pytest.mark.parametrize(("args", "named"), [
    (["-smp", "2,sockets=2,cores=1,threads=1"], "sockets"),
    (["-smp", "4,maxcpus=8"], "hot-plug"),
    (["-smp", "4,cores=3"], "Invalid CPU topology"),
    (["-uuid", "not-a-uuid"], "-uuid not-a-uuid"),
    (["-overcommit", "mem-lock=on"], "mem-lock=on"),
    (["-overcommit", "bogus=off"], "Invalid parameter 'bogus'"),
    (["-boot", "order=c"], "boot device order"),
    (["-boot", "menu=on"], "menu=on"),
    (["-audiodev", "alsa,id=a0"], "alsa"),
    (["-audiodev", '{"driver":"none"}'], "'id' is missing"),
    (["-msg", "bogus=on"], "Invalid parameter 'bogus'"),
    (["-name", "guest=g,process=p"], "Invalid parameter 'process'"),
    (["-device", '{"driver":"virtio-blk-pci",'], "JSON parse error"),
    (["-device", '{"driver":"ide-hd","id":"d0"}'], "ide-hd"),
    (["-netdev", '{"type":"vde","id":"n0"}'], "vde"),
])
def test_refused_with_one_line(args, named):
    refused(emulator("riscv64", *args), named)


@pytest.mark.parametrize(("args", "named"), [
    (["-M", "virt,usb=on"], "usb=on"),
    (["-object", "memory-backend-file,id=m0,size=64M"], "mem-path"),
    (["-object", "memory-backend-memfd,id=m0,size=64M,share=off"], "share=off"),
    (["-M", "virt,aux-ram-share=maybe"], "aux-ram-share"),
    (["-M", "virt,memory-backend=m0"], "memory-backend=m0"),
    (["-m", "128M", "-object", '{"qom-type":"memory-backend-ram","id":"m0","size":67108864}',
      "-M", "virt,memory-backend=m0"], "must be equal"),
    (["-object", "memory-backend-ram,id=m0,size=64M,share=on"], "share"),
])
def test_machine_and_memory_options_refused(args, named):
    refused(emulator("riscv64", "-bios", "none", "-nographic", *args), named)


def test_management_options_pass_the_parser():
    # -M help answers after the whole command line was parsed: every option passed
    r = emulator("riscv64", "-name", "guest=g,debug-threads=on", "-uuid", UUID,
                 "-overcommit", "mem-lock=off", "-msg", "timestamp=on", "-boot", "strict=on",
                 "-audiodev", '{"id":"audio1","driver":"none"}', "-no-user-config",
                 "-nodefaults", "-smp", "1,sockets=1,cores=1,threads=1", "-no-shutdown",
                 "-object", '{"qom-type":"secret","id":"s0","data":"x"}',
                 "-netdev", '{"type":"user","id":"n0"}', "-M", "help")
    assert r.returncode == 0, r.stderr


def test_name_uuid_and_host_thread_names(tmp_path):
    r, sock, pidfile = start_probe(tmp_path, "-name", "guest=probe-guest,debug-threads=on",
                                   "-uuid", UUID)
    assert r.returncode == 0, r.stderr
    pid = int(open(pidfile).read())

    async def go():
        client = QMPClient("names")
        await client.connect(sock)
        name = await client.execute("query-name")
        uuid = await client.execute("query-uuid")
        # while this session's thread lives
        comms = set()
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comms.add(f.read().strip())
        await client.execute("quit")
        await client.disconnect()
        return name, uuid, comms

    try:
        name, uuid, comms = asyncio.run(asyncio.wait_for(go(), 60))
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    assert name == {"name": "probe-guest"}
    assert uuid == {"UUID": UUID}
    assert "pemu-qmp" in comms  # the QMP session's thread, named in the host


def test_msg_timestamp_prefixes_error_lines(tmp_path):
    r = emulator("riscv64", "-machine", "none", "-msg", "timestamp=on", "-chardev",
                 "socket,id=c0,path=/nonexistent/dir/s,server=on,wait=off",
                 "-mon", "chardev=c0")
    assert r.returncode == 1
    line = r.stderr.strip()
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z pemu-system-riscv64: ", line), line


async def _events(client: QMPClient, names: list[str], timeout: float = 30) -> list[dict]:
    seen: list[dict] = []

    async def wait():
        async for ev in client.events:
            if ev["event"] in names:
                seen.append(ev)
                if len(seen) == len(names):
                    return

    await asyncio.wait_for(wait(), timeout)
    return seen


def test_no_shutdown_keeps_a_powered_off_guest(build_program, tmp_path):  # noqa: F811
    elf = build_program("reboot")  # boots twice (reset in between), then powers off
    sock, serial = str(tmp_path / "qmp.sock"), tmp_path / "serial.txt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pemu.cli.system_riscv64", "-M", "virt", "-m", "64M",
         "-bios", "none", "-kernel", str(elf), "-nodefaults", "-display", "none",
         "-serial", f"file:{serial}", "-S", "-no-shutdown",
         "-qmp", f"unix:{sock},server=on,wait=off"],
        env=pemu_env(), cwd=ROOT, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)

    async def drive() -> dict:
        out: dict = {}
        client = QMPClient("no-shutdown")
        end = time.monotonic() + 60
        while not os.path.exists(sock) and time.monotonic() < end:
            await asyncio.sleep(0.1)
        await client.connect(sock)
        await client.execute("cont")
        out["first"] = await _events(client, ["SHUTDOWN", "STOP"])
        out["status"] = await client.execute("query-status")
        try:
            await client.execute("cont")
        except ExecuteError as e:
            out["cont"] = e.error.error.desc
        await client.execute("system_reset")
        await client.execute("cont")
        out["again"] = await _events(client, ["SHUTDOWN", "STOP"])
        await client.execute("quit")
        await client.disconnect()
        return out

    try:
        out = asyncio.run(asyncio.wait_for(drive(), 120))
        status = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [e["event"] for e in out["first"]] == ["SHUTDOWN", "STOP"]
    assert out["first"][0]["data"] == {"guest": True, "reason": "guest-shutdown"}
    assert out["status"]["status"] == "shutdown" and not out["status"]["running"]
    assert "reset" in out["cont"].lower()  # QEMU: a reset is required first
    assert [e["event"] for e in out["again"]] == ["SHUTDOWN", "STOP"]
    # boots 1 and 2 before the first power-off, 3 after the reset (RAM survives)
    assert serial.read_bytes() == b"12DONE\n3DONE\n"
    assert status == 0, proc.stderr.read()


def test_json_device_and_netdev_are_the_keyval_forms(tmp_path):
    """-device/-netdev JSON reach the same checks as their a=b forms."""
    disk = tmp_path / "d.raw"
    disk.write_bytes(b"\0" * 65536)
    device = json.dumps({"driver": "virtio-blk-pci", "drive": "d0", "id": "blk0",
                         "bogus": True})
    r = emulator("riscv64", "-bios", "none", "-nographic", "-drive",
                 f"file={disk},format=raw,if=none,id=d0", "-device", device)
    refused(r, "virtio-blk-pci.bogus")


@pytest.mark.parametrize("nodefaults", [False, True])
def test_nodefaults_leaves_the_uart_without_a_backend(build_program, nodefaults):  # noqa: F811
    elf = build_program("reboot")  # prints on the UART, then powers off
    args = [sys.executable, "-m", "pemu.cli.system_riscv64", "-M", "virt", "-m", "64M",
            "-bios", "none", "-kernel", str(elf), "-display", "none"]
    r = subprocess.run(args + (["-nodefaults"] if nodefaults else []), env=pemu_env(),
                       cwd=ROOT, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (b"" if nodefaults else b"12DONE\n")
