"""Shared fixtures: KVM availability and bare-metal guests assembled once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pemu.accel.kvm.system import kvm_status
from tests.kvm.baremetal import assemble, have_binutils

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def kvm() -> None:
    why = kvm_status()
    if why is not None:
        pytest.skip(f"KVM not usable here: {why}")


@pytest.fixture(scope="session")
def guest_dir(tmp_path_factory) -> Path:
    if not have_binutils():
        pytest.skip("host binutils (as, ld) not installed")
    return tmp_path_factory.mktemp("guests")


@pytest.fixture(scope="session")
def guest(guest_dir):
    cache: dict[str, Path] = {}

    def build(name: str) -> Path:
        if name not in cache:
            cache[name] = assemble(name, guest_dir)
        return cache[name]

    return build


def run_pemu(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    """pemu-system-x86_64 in a child process (it owns signals and threads)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "pemu.cli.system_x86_64", *args],
                          capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)
