"""pemu-aarch64 -g: stock gdb-multiarch debugs an A64 program (the aarch64 target
description, breakpoints, registers including V, stepping, register writes)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from a64_programs import ROOT, assemble, need_tools

LOOP = """
.global _start
_start:
    mov x19, #0
    movz x20, #0x1234
    fmov d0, #2.5
loop:
    add x19, x19, #1
    cmp x19, #5
    b.ne loop
    add x0, x19, x20
    mov x8, #93
    svc #0
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    """Without connecting: the stub takes the first connection for the debugger."""
    with open("/proc/net/tcp") as f:
        return any(line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A"
                   for line in f.readlines()[1:])


def test_gdb_multiarch_debugs_an_a64_program(tmp_path: Path) -> None:
    need_tools()
    gdb = shutil.which("gdb-multiarch")
    if gdb is None:
        pytest.skip("gdb-multiarch is not installed")
    exe = assemble(LOOP, tmp_path)
    port = _free_port()
    boot = ("import sys; from pemu.linux_user.main import main_aarch64; "
            "sys.exit(main_aarch64(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", boot, "-g", str(port), str(exe)],
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        deadline = time.monotonic() + 60  # the stub listens once the program is loaded
        while not _listening(port) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        out = subprocess.run(
            [gdb, "-q", "-batch", "-ex", f"target remote :{port}",
             "-ex", "break *loop", "-ex", "continue", "-ex", "continue",
             "-ex", "info registers x19 x20 pc", "-ex", "p $v0.d.f[0]",
             "-ex", "stepi", "-ex", "x/i $pc", "-ex", "set $x20 = 10", "-ex", "delete",
             "-ex", "continue", str(exe)],
            capture_output=True, timeout=120, text=True).stdout
        status = proc.wait(timeout=60)
    finally:
        proc.kill()
    assert out.count("Breakpoint 1, 0x") == 2, out
    assert "x19            0x1 " in out and "x20            0x1234" in out, out
    assert "$1 = 2.5" in out, out
    assert "cmp\tx19, #0x5" in out, out
    assert status == 15, out  # 5 + the x20 that gdb wrote
