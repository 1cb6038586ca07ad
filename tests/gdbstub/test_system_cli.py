"""The real pemu-system-riscv64 command line with -S, -gdb and -qmp: gdb-multiarch and the
qemu.qmp client drive the same process (the hooks the CLI must call, end to end)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time

from qemu.qmp import QMPClient

from .conftest import ROOT, _listening, free_port


def _wait_for(predicate, what: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"pemu exited before {what}: {proc.stderr.read().decode()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


async def _qmp(sock: str) -> tuple[str, str, dict]:
    qmp = QMPClient("test")
    await qmp.connect(sock)
    running = (await qmp.execute("query-status"))["status"]
    await qmp.execute("stop")
    stopped = (await qmp.execute("query-status"))["status"]
    version = await qmp.execute("query-version")
    await qmp.execute("quit")
    await qmp.disconnect()
    return running, stopped, version


def test_cli_gdb_then_qmp(gdb, baremetal, tmp_path):
    port = free_port()
    sock = str(tmp_path / "qmp.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pemu.cli.system_riscv64", "-M", "virt", "-m", "64M",
         "-bios", "none", "-kernel", str(baremetal), "-serial", "null", "-display", "none",
         "-S", "-gdb", f"tcp::{port}", "-qmp", f"unix:{sock},server=on,wait=off"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=str(ROOT))
    try:
        _wait_for(lambda: _listening(port) and os.path.exists(sock), "the gdb and QMP sockets",
                  proc)
        assert os.stat(sock).st_mode & 0o777 == 0o600  # the monitor is a privileged interface
        out = subprocess.run(
            [gdb, "-batch", "-nx", "-ex", "set architecture riscv:rv64",
             "-ex", f"target remote 127.0.0.1:{port}", "-ex", "info registers pc",
             "-ex", "break *0x80000000", "-ex", "continue", "-ex", "info registers pc",
             "-ex", "stepi", "-ex", "info registers pc", "-ex", "detach", str(baremetal)],
            capture_output=True, text=True, timeout=120)
        text = out.stdout + out.stderr
        pcs = [int(x, 16) for x in re.findall(r"^pc\s+(0x[0-9a-f]+)", text, re.M)]
        assert pcs[0] == 0x1000, text  # -S: stopped at the reset vector
        assert pcs[1] == 0x80000000, text  # the kernel entry
        assert 0x80000000 < pcs[2] <= 0x80000004, text
        running, stopped, version = asyncio.run(_qmp(sock))
        assert running == "running" and stopped == "paused"
        assert set(version["qemu"]) == {"major", "minor", "micro"}
        assert proc.wait(timeout=30) == 0  # quit ends the process with status 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
