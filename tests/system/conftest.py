"""Helpers for the system-emulation tests: build bare-metal programs, run pemu."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pemu.guests import guest_file

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = Path(__file__).parent / "programs"
GUESTS = guest_file("riscv64")
OPENSBI = Path("/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin")
UBOOT = Path("/usr/lib/u-boot/qemu-riscv64_smode/uboot.elf")
AS = "riscv64-linux-gnu-as"
LD = "riscv64-linux-gnu-ld"


def _native_supported() -> bool:
    from pemu.accel.tcg.backend.x86_64 import host_supported

    return host_supported()


# The TCG backends every system test runs on (see the tcg_backend fixture).
BACKENDS = ("python", "native")
_backend: dict[str, str | None] = {"name": None}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests that use ``tcg_backend`` (directly or through ``usefixtures``) run once per
    backend; ``@pytest.mark.backends("native")`` narrows the list for one test."""
    if "tcg_backend" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        names = marker.args if marker else BACKENDS
        metafunc.parametrize("tcg_backend", names, indirect=True)


@pytest.fixture
def tcg_backend(request: pytest.FixtureRequest):
    """The backend ``pemu_cmd`` passes as ``-accel tcg,backend=...`` in this test."""
    name = getattr(request, "param", "python")
    if name == "native" and not _native_supported():
        pytest.skip("the native TCG backend needs an x86-64 Linux host")
    _backend["name"] = name
    yield name
    _backend["name"] = None


def pemu_cmd(*args: str) -> list[str]:
    accel = []
    if _backend["name"] is not None and "-accel" not in args:
        accel = ["-accel", f"tcg,backend={_backend['name']}"]
    return [sys.executable, "-m", "pemu.cli.system_riscv64", *accel, *args]


def pemu_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_pemu(*args: str, timeout: float = 120, input: bytes | None = None,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """pemu-system-riscv64 with ``args``; ``env``: variables set on top of ours."""
    return subprocess.run(pemu_cmd(*args), env={**pemu_env(), **(env or {})},
                          capture_output=True,
                          timeout=timeout, input=input if input is not None else b"",
                          cwd=ROOT)


QEMU_SYSTEM = "qemu-system-riscv64"


def run_check_program(elf: Path, who: str, oracle: bool = False,
                      extra: tuple[str, ...] = ()) -> str:
    """Run a bare-metal check program (programs/NAME.S: DONE on the console and exit
    status 0, else the number of the check that failed) on pemu with ``-d stats``, or
    with ``oracle`` on Debian's qemu-system-riscv64 (skips without it); asserts it
    passed and returns pemu's stats (stderr).  ``who`` names the run in a failure;
    ``extra``: more command-line arguments (-smp, -cpu)."""
    args = ["-M", "virt", "-bios", "none", "-kernel", str(elf), "-nographic", *extra]
    if oracle:
        if shutil.which(QEMU_SYSTEM) is None:
            pytest.skip(f"needs {QEMU_SYSTEM} (Debian qemu-system-misc)")
        r = subprocess.run([QEMU_SYSTEM, *args], capture_output=True, input=b"", timeout=60)
    else:
        r = run_pemu(*args, "-d", "stats", timeout=120)
    output = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    assert r.returncode == 0, (f"{who}: check {r.returncode} failed (numbers in "
                               f"programs/{elf.stem.split('-')[0]}.S)\n{output}")
    assert b"DONE" in r.stdout, output
    return r.stderr.decode(errors="replace")


def stats_count(stats: str, name: str) -> int:
    """The number the ``-d stats`` line gives for ``name`` ("native page walks")."""
    found = re.search(rf"{name} (\d+)", stats)
    assert found, stats
    return int(found.group(1))


@pytest.fixture(scope="session")
def build_program(tmp_path_factory):
    """Assemble tests/system/programs/NAME.S (with --defsym pairs) into an ELF."""
    if not (shutil.which(AS) and shutil.which(LD)):
        pytest.skip(f"{AS}/{LD} not installed (Debian binutils-riscv64-linux-gnu)")
    out_dir = tmp_path_factory.mktemp("programs")

    def build(name: str, text_base: int = 0x8000_0000, **defsyms: int) -> Path:
        suffix = "".join(f"-{k}{v}" for k, v in sorted(defsyms.items()))
        obj = out_dir / f"{name}{suffix}.o"
        elf = out_dir / f"{name}{suffix}.elf"
        cmd = [AS, "-march=rv64gc", "-I", str(PROGRAMS), "-o", str(obj),
               str(PROGRAMS / f"{name}.S")]
        for k, v in defsyms.items():
            cmd += ["--defsym", f"{k}={v}"]
        subprocess.run(cmd, check=True, capture_output=True)
        subprocess.run([LD, "-N", f"-Ttext=0x{text_base:x}", "--no-warn-rwx-segments",
                        "-o", str(elf), str(obj)], check=True, capture_output=True)
        return elf

    return build
