"""A pemu-system-riscv64 process for the VM state tests: its console lines, and a
small synchronous QMP client on a UNIX socket (events kept for the test to look at)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

from tests.system.conftest import pemu_cmd, pemu_env

_TICK = re.compile(r"T([0-9a-fA-F]{8})$")  # ticker.S: "T" and the tick in 8 hex digits

class QMP:
    def __init__(self, path: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.file = self.sock.makefile("rwb")
        self.events: list[dict] = []
        self._read()  # greeting
        self.cmd("qmp_capabilities")

    def _read(self) -> dict:
        line = self.file.readline()
        if not line:
            raise ConnectionError("QMP closed")
        return json.loads(line)

    def execute(self, name: str, **args) -> dict:
        msg = {"execute": name, **({"arguments": args} if args else {})}
        self.file.write(json.dumps(msg).encode() + b"\n")
        self.file.flush()
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
                continue
            return reply

    def cmd(self, name: str, **args):
        reply = self.execute(name, **args)
        assert "return" in reply, reply
        return reply["return"]

    def hmp(self, line: str) -> str:
        return self.cmd("human-monitor-command", **{"command-line": line})

    def wait_event(self, name: str, timeout: float = 60, **data) -> dict:
        deadline = time.monotonic() + timeout
        self.sock.settimeout(timeout)
        while True:
            for ev in self.events:
                if ev["event"] == name and all(ev.get("data", {}).get(k) == v
                                               for k, v in data.items()):
                    self.events.remove(ev)
                    return ev
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {name} {data}")
            self.events.append(self._read())

    def close(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass  # the process is gone
        self.sock.close()


class Pemu:
    """``Pemu(tmp, *args)``: started with -qmp on a socket in ``tmp``; ``lines`` is the
    console output so far.  ``command(*args)`` makes the command line (the RISC-V
    system emulator unless told otherwise)."""

    def __init__(self, tmp: Path, *args: str, name: str = "vm", command=pemu_cmd) -> None:
        self.qmp_path = str(tmp / f"{name}.qmp")
        self.proc = subprocess.Popen(
            command("-nographic", "-qmp", f"unix:{self.qmp_path},server=on,wait=off", *args),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=pemu_env())
        self.lines: list[str] = []
        self.stamps: list[float] = []  # when each line arrived (host monotonic)
        self.err = b""
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()
        self._qmp: QMP | None = None

    def _pump(self) -> None:
        for raw in self.proc.stdout:
            self.stamps.append(time.monotonic())
            self.lines.append(raw.decode(errors="replace").strip())

    def _pump_err(self) -> None:
        self.err = self.proc.stderr.read()

    @property
    def qmp(self) -> QMP:
        if self._qmp is None:
            self._qmp = QMP(self.qmp_path)
        return self._qmp

    def send(self, text: str) -> None:
        """Type on the guest's console (-nographic: the serial port is our stdin)."""
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def wait_line(self, pattern: str, start: int = 0, timeout: float = 300) -> int:
        """Index of the first console line from ``start`` on matching ``pattern``."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for i in range(start, len(self.lines)):
                if rx.search(self.lines[i]):
                    return i
            if self.proc.poll() is not None:
                raise AssertionError(f"pemu exited {self.proc.returncode}: {self.err!r}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {pattern!r}: {self.lines[-10:]}")
            time.sleep(0.1)

    def ticks(self) -> list[int]:
        # a tick cut short by loadvm or an incoming migration runs into the restored
        # guest's next one on the same line ("T0000T00000006"): the whole one counts
        found = (_TICK.search(line) for line in list(self.lines))
        return [int(m.group(1), 16) for m in found if m is not None]

    def wait_ticks(self, n: int, timeout: float = 120) -> list[int]:
        """Wait until ``n`` more ticks than now were printed."""
        start = len(self.ticks())
        deadline = time.monotonic() + timeout
        while len(self.ticks()) < start + n:
            if self.proc.poll() is not None:
                raise AssertionError(f"pemu exited {self.proc.returncode}: {self.err!r}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no ticks: {self.lines[-5:]} {self.err!r}")
            time.sleep(0.05)
        return self.ticks()

    def wait_migration(self, want: set[str], timeout: float = 120) -> dict:
        """query-migrate's answer once its status is one of ``want``."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.qmp.cmd("query-migrate")
            if info.get("status") in want:
                return info
            assert time.monotonic() < deadline, info
            time.sleep(0.05)

    def finish(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            try:
                self.qmp.execute("quit")
            except (OSError, ConnectionError, ValueError):
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._qmp is not None:
            self._qmp.close()
        return self.proc.returncode


def hart_register(vm: Pemu, reg: str) -> int:
    """A GPR by ABI name from HMP ``info registers`` (the machine should be paused)."""
    text = vm.qmp.hmp("info registers")
    for line in text.splitlines():
        words = line.split()
        for i, w in enumerate(words):
            if w.endswith("/" + reg):
                return int(words[i + 1], 16)
    raise AssertionError(f"no {reg} in {text}")


__all__ = ["Pemu", "QMP", "hart_register", "os"]


def memfd_ram_inode(pid: int) -> int:
    """The inode of the guest RAM's memfd in process ``pid``'s mappings: the same in
    two processes when a live update handed the RAM over instead of copying it."""
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            if "memfd:pemu-ram" in line:
                return int(line.split()[4])
    raise AssertionError(f"no memfd RAM mapped in {pid}")


def wait_path(path: str, timeout: float = 300) -> None:
    """Until something listens on (has created) ``path``; SystemExit when it never does
    (the benchmarks use it too)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit(f"nothing listens on {path}")
        time.sleep(0.01)
