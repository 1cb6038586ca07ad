"""QEMU 7.2 as the oracle: ``qemu-system-riscv64 -M virt -S`` with a command line,
a few QMP commands, their answers.  No guest runs."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest


def qemu_execute(args: list[str], tmp_path, *commands: str | tuple[str, dict]) -> list:
    """The ``return`` of each command (a name, or a name and its arguments)."""
    sock = str(tmp_path / "qemu-qmp.sock")
    proc = subprocess.Popen(["qemu-system-riscv64", "-M", "virt", "-S", "-nodefaults",
                             "-display", "none", *args, "-qmp",
                             f"unix:{sock},server=on,wait=off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        conn = socket.socket(socket.AF_UNIX)
        deadline = time.monotonic() + 30
        while True:
            try:
                conn.connect(sock)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.kill()
                    pytest.fail(f"QEMU did not start: {proc.stderr.read().decode()}")
                time.sleep(0.1)
        f = conn.makefile("rw")

        def execute(command: str, arguments: dict) -> object:
            f.write(json.dumps({"execute": command, "arguments": arguments}) + "\n")
            f.flush()
            while "event" in (reply := json.loads(f.readline())):
                pass
            assert "return" in reply, reply
            return reply["return"]
        f.readline()
        execute("qmp_capabilities", {})
        out = [execute(c, {}) if isinstance(c, str) else execute(*c) for c in commands]
        conn.close()
        return out
    finally:
        proc.kill()
        proc.wait()
