"""Dynamically linked arm64 programs under ``pemu-aarch64 -L``: C programs (dynamic/)
built with Debian's gcc-aarch64-linux-gnu run against Debian's own arm64 glibc
(libc6:arm64 through multiarch: /lib/ld-linux-aarch64.so.1, /usr/lib/aarch64-linux-gnu)
with ``-L /``, and against the cross toolchain's copy with ``-L /usr/aarch64-linux-gnu``
(and its lib/ as the library path).
Stdout, stderr and the exit status must equal ``qemu-aarch64 -L`` with the same root.

They go through ld.so, relocation and lazy binding, glibc's IFUNC-selected Advanced
SIMD string functions, printf's FP formatting, pthreads on futexes, signal delivery
through glibc's wrappers, and dlopen of libraries libc6 ships."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from a64_programs import QEMU, run_pemu

from pemu.accel.tcg.backend.x86_64 import host_supported

HERE = Path(__file__).resolve().parent / "dynamic"
GCC = "aarch64-linux-gnu-gcc"
MULTIARCH = Path("/")  # libc6:arm64
CROSS = Path("/usr/aarch64-linux-gnu")  # libc6-arm64-cross
BACKENDS = ["python"] + (["native"] if host_supported() else [])
PROGRAMS = {  # name -> arguments
    "hello": ["first", "two words", ""],
    "threads": [],
    "signals": [],
    "dlopen": [],
    "floats": [],
    "strings": [],
}
ENV = ["-E", "PEMU_DYN_TEST=set by -E"]
# checked on their own: qemu-aarch64 runs a guest program that a guest execs only
# through the host's binfmt_misc, which the test host need not have
OWN_CHECKS = ["fexecve"]


def _has_loader(root: Path) -> bool:
    return (root / "lib/ld-linux-aarch64.so.1").exists()


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> dict[str, Path]:
    missing = [t for t in (GCC, QEMU) if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (gcc-aarch64-linux-gnu, qemu-user)")
    out = tmp_path_factory.mktemp("a64-dynamic")
    built = {}
    for name in [*PROGRAMS, *OWN_CHECKS]:
        exe = out / name
        subprocess.run([GCC, "-O2", "-o", str(exe), str(HERE / f"{name}.c"), "-lm",
                        "-lpthread", "-ldl"], check=True, capture_output=True)
        built[name] = exe
    return built


def _same_as_qemu(exe: Path, root: Path, args: list[str], backend: str | None,
                  env: tuple[str, ...] = ()) -> None:
    options = ["-L", str(root), *ENV, *env]
    want = subprocess.run([QEMU, *options, str(exe), *args], capture_output=True,
                          timeout=120)
    got = run_pemu(*options, str(exe), *args, backend=backend)
    assert got.stderr == want.stderr, got.stderr.decode(errors="replace")[-2000:]
    assert got.stdout == want.stdout
    assert got.returncode == want.returncode
    assert want.stdout  # each program prints what it did


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(PROGRAMS))
def test_against_debians_arm64_glibc(programs, name: str, backend: str) -> None:
    if not _has_loader(MULTIARCH):
        pytest.skip("needs libc6:arm64 (dpkg --add-architecture arm64; scripts/install-deps.sh)")
    _same_as_qemu(programs[name], MULTIARCH, PROGRAMS[name], backend)


@pytest.mark.parametrize("name", ["hello", "strings", "threads"])
def test_against_the_cross_toolchains_glibc(programs, name: str) -> None:
    """The cross sysroot keeps its libraries in lib/, where ld.so does not look: its
    default directories are /lib/aarch64-linux-gnu and the like, which are not in the
    sysroot, so ``-L`` falls back to the host's path there (as in QEMU) and, with
    libc6:arm64 installed, that ld.so loaded the *multiarch* libc.so.6: two builds of
    glibc whose private structures differ (pthread_create walked a stack-cache list
    laid out by the other build and spun forever, under qemu-aarch64 too).  The
    library path (inside the prefix) makes it the cross glibc throughout."""
    if not _has_loader(CROSS):
        pytest.skip("needs libc6-arm64-cross (gcc-aarch64-linux-gnu)")
    _same_as_qemu(programs[name], CROSS, PROGRAMS[name], BACKENDS[-1],
                  env=("-E", "LD_LIBRARY_PATH=/lib"))


def test_fexecve_through_a_close_on_exec_descriptor(programs) -> None:
    """glibc's fexecve falls back to execve("/proc/self/fd/N") on a descriptor that is
    close-on-exec (dropbear re-executes itself so): the pemu that runs the program next
    must still find it."""
    if not _has_loader(MULTIARCH):
        pytest.skip("needs libc6:arm64")
    r = run_pemu("-L", str(MULTIARCH), str(programs["fexecve"]), backend=BACKENDS[-1])
    assert (r.returncode, r.stdout, r.stderr) == (7, b"ran again as fexecve-child\n", b""), \
        r.stderr.decode(errors="replace")


def test_the_program_really_is_dynamic(programs) -> None:
    """The interpreter pemu had to load: PT_INTERP names arm64's ld.so."""
    head = programs["hello"].read_bytes()[:4096]
    assert b"/lib/ld-linux-aarch64.so.1" in head
