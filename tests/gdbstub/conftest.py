"""Fixtures for the GDB stub tests: a riscv64 test program built now, and a debuggee."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path(__file__).with_name("target_prog.c")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def gdb() -> str:
    path = shutil.which("gdb-multiarch")
    if path is None:
        pytest.skip("gdb-multiarch is not installed")
    return path


@pytest.fixture(scope="session")
def program(tmp_path_factory) -> Path:
    if shutil.which("riscv64-linux-gnu-gcc") is None:
        pytest.skip("riscv64-linux-gnu-gcc is not installed")
    out = tmp_path_factory.mktemp("gdbprog") / "target_prog"
    subprocess.run(["riscv64-linux-gnu-gcc", "-static", "-O1", "-g", "-o", str(out),
                    str(SOURCE)], check=True, capture_output=True)
    return out


def _listening(port: int) -> bool:
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":
                return True
    return False


class Debuggee:
    """pemu-riscv64 -g PORT PROGRAM in a subprocess, waiting for gdb."""

    def __init__(self, program: Path, *args: str) -> None:
        self.port = free_port()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pemu.linux_user.main", "-g", str(self.port),
             str(program), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            cwd=str(ROOT))
        # Wait until the port listens, without connecting: a connection would be taken
        # for the debugger (and its departure for a detach).
        deadline = time.monotonic() + 60
        while not _listening(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stderr.read().decode())
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("the gdb stub never started listening")
            time.sleep(0.05)

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out.decode(), err.decode()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


BAREMETAL = Path(__file__).with_name("baremetal_counter.S")


@pytest.fixture(scope="session")
def baremetal(tmp_path_factory) -> Path:
    """A bare-metal riscv64 ELF for the virt board (-bios none -kernel)."""
    if shutil.which("riscv64-linux-gnu-gcc") is None:
        pytest.skip("riscv64-linux-gnu-gcc is not installed")
    out = tmp_path_factory.mktemp("baremetal") / "counter.elf"
    subprocess.run(["riscv64-linux-gnu-gcc", "-nostdlib", "-static", "-g",
                    "-Wl,-Ttext=0x80000000", "-Wl,--build-id=none", "-Wl,-N",
                    "-o", str(out), str(BAREMETAL)], check=True, capture_output=True)
    return out


class VirtMachine:
    """The real riscv virt board running in this process (hart thread in the
    background), with the monitor adapter and, if asked, the gdb stub."""

    def __init__(self, kernel: Path, *extra: str) -> None:
        from pemu.chardev.registry import ChardevRegistry
        from pemu.cli.system_config import parse_system_argv
        from pemu.hw.riscv.virt import VirtBoard
        from pemu.monitor.riscv_board import RiscvBoardMonitor

        self.cfg = parse_system_argv(["-M", "virt", "-bios", "none", "-kernel", str(kernel),
                                      "-serial", "null", "-m", "64M", *extra], "test")
        self.chardevs = ChardevRegistry()
        self.board = VirtBoard(self.cfg, self.chardevs)
        from pemu.cli.system_riscv64 import _make_devices

        self.closers = _make_devices(self.board, self.cfg)  # -drive/-device, as the CLI
        self.board.reset()
        self.vm = RiscvBoardMonitor(self.board, self.cfg)
        self.thread = None

    def start(self) -> None:
        import threading

        self.thread = threading.Thread(target=self.board.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.board.request_exit(0, "test over")
        self.vm._open.set()
        if self.thread is not None:
            self.thread.join(timeout=10)
        for backend in self.closers:
            backend.close()
        self.chardevs.close_all()
