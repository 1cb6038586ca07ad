"""Shared helpers for the Linux user-mode tests: compilers, oracles and runners."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pemu.guests import guest_file

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ROOT / "tests" / "programs"
SYSROOT = "/usr/riscv64-linux-gnu"
BUSYBOX = guest_file("riscv64/busybox")
CC = "riscv64-linux-gnu-gcc"


# The TCG backend the current test runs pemu with (set by the tcg_backend fixture).
_backend: dict[str, str | None] = {"name": None}


def pemu_cmd(*args: str) -> list[str]:
    accel = ["-accel", f"tcg,backend={_backend['name']}"] if _backend["name"] else []
    return [sys.executable, "-m", "pemu.linux_user.main", *accel, *args]


def run_pemu(*args: str, timeout: float = 240, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.update(kw.pop("env", {}))
    return subprocess.run(pemu_cmd(*args), capture_output=True, timeout=timeout, env=env,
                          cwd=kw.pop("cwd", None), input=kw.pop("input", None))


def run_qemu(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["qemu-riscv64", *args], capture_output=True, timeout=timeout,
                          cwd=kw.pop("cwd", None), input=kw.pop("input", None))


@pytest.fixture(params=["native", "python"])
def tcg_backend(request):
    """Run the test once per TCG backend, through pemu-riscv64's real -accel option."""
    if request.param == "native":
        from pemu.accel.tcg.backend.x86_64 import host_supported

        if not host_supported():
            pytest.skip("the native backend needs an x86-64 Linux host")
    _backend["name"] = request.param
    yield request.param
    _backend["name"] = None


@pytest.fixture(scope="session")
def qemu() -> str:
    path = shutil.which("qemu-riscv64")
    if path is None:
        pytest.skip("qemu-riscv64 (Debian qemu-user) is not installed")
    return path


@pytest.fixture(scope="session")
def busybox() -> Path:
    if not BUSYBOX.exists():
        pytest.skip(f"{BUSYBOX} is missing")
    return BUSYBOX


@pytest.fixture(scope="session")
def build(tmp_path_factory):
    """Compile a program from tests/programs (at test time; binaries are never committed)."""
    if shutil.which(CC) is None or not Path(SYSROOT, "lib").is_dir():
        pytest.skip("riscv64-linux-gnu-gcc with the Debian riscv64 sysroot is not installed")
    out_dir = tmp_path_factory.mktemp("guest-programs")
    cache: dict[tuple[str, bool], Path] = {}

    def compile_program(name: str, static: bool = False) -> Path:
        key = (name, static)
        if key not in cache:
            out = out_dir / (name + ("-static" if static else "-dyn"))
            cmd = [CC, "-O2", "-pthread", "-o", str(out), str(PROGRAMS / f"{name}.c")]
            if static:
                cmd.insert(1, "-static")
            subprocess.run(cmd, check=True, capture_output=True)
            cache[key] = out
        return cache[key]

    return compile_program
