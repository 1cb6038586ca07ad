"""Fixtures for the x86-64 monitor and gdb tests: the long-mode guest, built now with
the host's binutils (through tests/kvm/baremetal.py), and pemu-system-x86_64 running it
in a child process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.kvm.baremetal import LOAD_ADDR, assemble, have_binutils
from tests.kvm.conftest import guest, guest_dir, kvm  # noqa: F401 - shared fixtures

ROOT = Path(__file__).resolve().parents[2]
GUESTS = Path(__file__).parent / "guests"
HIGH = 0xFFFF_8000_0000_0000  # the guest's alias of low RAM (see guests/longmode.S)
COUNTER = 0x280000  # physical address of the guest's counter
BASE = ["-M", "microvm", "-accel", "kvm", "-cpu", "host", "-m", "32"]


@dataclass
class Guest:
    image: Path
    symbols: dict[str, int]  # link-time (physical) addresses


@pytest.fixture(scope="session")
def longmode(tmp_path_factory) -> Guest:
    if not have_binutils():
        pytest.skip("host binutils (as, ld) not installed")
    out = tmp_path_factory.mktemp("x86guest")
    image = assemble("longmode", out, bits=64, source=(GUESTS / "longmode.S").read_text())
    elf = out / "longmode.elf"
    subprocess.run(["ld", "-m", "elf_x86_64", f"-Ttext=0x{LOAD_ADDR:x}", "-o", str(elf),
                    str(out / "longmode.o")], check=True, capture_output=True)
    nm = subprocess.run(["nm", str(elf)], check=True, capture_output=True, text=True).stdout
    symbols = {}
    for line in nm.splitlines():
        parts = line.split()
        if len(parts) == 3:
            symbols[parts[2]] = int(parts[0], 16)
    return Guest(image, symbols)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Pemu:
    """pemu-system-x86_64 in a child process (it owns signals and vCPU threads)."""

    def __init__(self, *args: str, wait_for: Path | None = None) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen([sys.executable, "-m", "pemu.cli.system_x86_64", *BASE,
                                      *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=env, text=True)
        deadline = time.monotonic() + 30
        while wait_for is not None and not wait_for.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stderr.read())
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"pemu never created {wait_for}")
            time.sleep(0.05)

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def wait_until(predicate, timeout: float = 20, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
