"""QMP/HMP and the gdbstub on ``pemu-system-aarch64 -M virt`` running a bare-metal
guest (counter.S: known values in x5/x6, then a loop counting in x2 and storing the
count at 0x40200000).

QMP: -S (prelaunch), query-cpus-fast, cont/stop with the guest counting in between,
memory and registers through HMP, query-pci and ``info pci`` with virtio-rng-pci,
nvme and ``-nic user,model=virtio-net-pci`` plugged, system_reset while paused (the
CPU back at the entry, still paused), quit.  GDB: gdb-multiarch attached to ``-s -S``
reads registers, single-steps, stops at a breakpoint twice and reads memory; the same
script on ``qemu-system-aarch64`` gives the same answers.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.aarch64.system.bare_metal import LOAD_ADDRESS, assemble, need

COUNTER = 0x40200000
ENTRY = LOAD_ADDRESS
LOOP_STORE = 0x40080020  # "str x2, [x1]" in the loop
TIMEOUT_S = 60
QEMU = "qemu-system-aarch64"


@pytest.fixture(scope="module")
def counter_elf(tmp_path_factory) -> Path:
    return assemble(tmp_path_factory.mktemp("a64mon"), "counter.S")


def _pemu(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pemu.cli.system_aarch64", "-M", "virt",
                             "-cpu", "cortex-a57", "-nographic", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no QMP socket: {proc.communicate()[1].decode()}")
        time.sleep(0.05)


def test_qmp_and_hmp(counter_elf, tmp_path) -> None:
    qmp = pytest.importorskip("qemu.qmp")
    disk = tmp_path / "nvme.raw"
    disk.write_bytes(bytes(1 << 20))
    sock = tmp_path / "qmp.sock"
    proc = _pemu("-S", "-kernel", str(counter_elf), "-qmp", f"unix:{sock},server=on,wait=off",
                 "-device", "virtio-rng-pci,id=rng0", "-drive",
                 f"file={disk},format=raw,if=none,id=d0", "-device",
                 "nvme,serial=a64,drive=d0,id=nvme0", "-nic", "user,model=virtio-net-pci")
    _wait_for(sock, proc)

    async def hmp(c, line: str) -> str:
        return await c.execute("human-monitor-command", {"command-line": line})

    async def go() -> dict:
        c = qmp.QMPClient("a64")
        await c.connect(str(sock))
        r = {"pre": await c.execute("query-status"),
             "cpus": await c.execute("query-cpus-fast")}
        await c.execute("cont")
        await asyncio.sleep(0.3)
        await c.execute("stop")
        r["paused"] = await c.execute("query-status")
        r["x"] = await hmp(c, f"x /1xg {COUNTER:#x}")
        r["regs"] = await hmp(c, "info registers")
        r["pci"] = await c.execute("query-pci")
        r["info_pci"] = await hmp(c, "info pci")
        await c.execute("system_reset")
        for _ in range(200):  # the reset happens on the board's thread
            r["reset_regs"] = await hmp(c, "info registers")
            if f" PC={ENTRY:016x} " in r["reset_regs"]:
                break
            await asyncio.sleep(0.05)
        r["after_reset"] = await c.execute("query-status")
        await c.execute("quit")
        await c.disconnect()
        return r

    try:
        r = asyncio.run(asyncio.wait_for(go(), TIMEOUT_S))
        assert proc.wait(timeout=TIMEOUT_S) == 0
    finally:
        proc.kill()
        proc.communicate()
    assert r["pre"]["status"] == "prelaunch"
    assert r["cpus"][0]["target"] == "aarch64" and len(r["cpus"]) == 1
    assert r["paused"]["status"] == "paused"
    counted = int(r["x"].split(":")[1], 16)
    assert counted > 0  # the guest ran between cont and stop
    regs = r["regs"]
    assert "X05=00000000abcd1234" in regs and "X06=0000000000000007" in regs
    assert f"X01={COUNTER:016x}" in regs
    x2 = int(re.search(r"X02=([0-9a-f]{16})", regs).group(1), 16)
    assert x2 in (counted, counted + 1)  # stopped before or after the store
    assert "EL1h" in regs
    devices = {(d["slot"], d["id"]["vendor"], d["id"]["device"])
               for d in r["pci"][0]["devices"]}
    assert devices == {(0, 0x1B36, 0x0008), (1, 0x1AF4, 0x1044), (2, 0x1B36, 0x0010),
                       (3, 0x1AF4, 0x1041)}
    assert 'id "rng0"' in r["info_pci"] and 'id "nvme0"' in r["info_pci"]
    assert "NVMe controller" in r["info_pci"]
    assert f" PC={ENTRY:016x} " in r["reset_regs"]
    assert "X05=0000000000000000" in r["reset_regs"]
    assert r["after_reset"]["status"] == "paused"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


GDB_SCRIPT = ["set architecture aarch64", "target remote :{port}", "info registers pc cpsr",
              "stepi", "stepi", "stepi", "stepi", "p/x $x5", "p/x $x1", "p/x $pc",
              "info registers x6", f"break *{LOOP_STORE:#x}", "continue", "p/x $pc",
              "p $x2", "continue", "p $x2", "p/x $VBAR", "p/x $ELR_EL1", "p/x $SP_EL1",
              f"x/2xw {ENTRY:#x}", "delete", "stepi", "p/x $pc", "p $x2", "set $x2 = 41",
              "stepi", "stepi", "stepi", "p $x2", f"x/1xg {COUNTER:#x}"]


def _listening(port: int) -> bool:
    """Whether a TCP socket listens on ``port`` (the kernel's table; state 0A)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":
                return True
    return False


def _gdb_session(command: list[str], port: int) -> str:
    """Run ``command`` (an emulator with -gdb on ``port``, -S) and the GDB script on it;
    GDB's answers, without the lines that name the remote or the kill."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        # the stub listens once the machine is built; not probed by connecting (a
        # connection that goes away is a detach, and a detach resumes the machine)
        while not _listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(proc.communicate()[1].decode())
            time.sleep(0.1)
        args = ["gdb-multiarch", "-batch", "-nx"]
        for line in GDB_SCRIPT:
            args += ["-ex", line.format(port=port)]
        out = subprocess.run(args + ["-ex", "kill"], capture_output=True, text=True,
                             timeout=TIMEOUT_S).stdout
    finally:
        proc.kill()
        proc.communicate()
    return "\n".join(line for line in out.splitlines()
                     if not line.startswith(("[Inferior", "Kill the program", "warning",
                                             "determining executable", "Remote debugging")))


def test_gdb_steps_like_qemu(counter_elf) -> None:
    need("gdb-multiarch")
    port = _free_port()
    ours = _gdb_session([sys.executable, "-m", "pemu.cli.system_aarch64", "-M", "virt",
                         "-cpu", "cortex-a57", "-nographic", "-S", "-gdb", f"tcp::{port}",
                         "-kernel", str(counter_elf)], port)
    assert "pc             0x40080000" in ours
    assert "cpsr           0x400003c5" in ours  # Z, DAIF masked, EL1h: QEMU's reset
    assert "$1 = 0xabcd1234" in ours and "$2 = 0x40200000" in ours
    assert f"Breakpoint 1, 0x{LOOP_STORE:016x}" in ours
    assert "$5 = 1" in ours and "$6 = 2" in ours  # once around the loop
    assert "$7 = 0x40080800" in ours  # VBAR_EL1 by QEMU's name for it
    assert "$12 = 42" in ours  # x2 set by GDB to 41, then counted by the guest
    assert f"{COUNTER:#x}:\t0x000000000000002a" in ours  # and stored
    need(QEMU)
    port = _free_port()
    theirs = _gdb_session([QEMU, "-M", "virt", "-cpu", "cortex-a57", "-nographic", "-S",
                           "-gdb", f"tcp::{port}", "-kernel", str(counter_elf)], port)
    assert ours == theirs
