"""Debian's static arm64 busybox under pemu-aarch64: the same bytes as qemu-aarch64
(the shell, pipes and forks, command substitution, sort, md5sum, FP in awk).

Where busybox's shell execs an applet (/proc/self/exe), qemu-aarch64 fails that exec
(its /proc/self/exe is qemu itself) and the shell finds the host's tool on PATH; so
the script sticks to applets whose host twin prints the same bytes (not gzip, whose
header would differ)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from a64_programs import run_pemu, run_qemu

from pemu.accel.tcg.backend.x86_64 import host_supported
from pemu.guests import guest_file

BUSYBOX = guest_file("aarch64/busybox")

SCRIPT = r"""
x=$(echo inner); echo "${#x} $x"; for i in 1 2 3; do echo -n $i; done; echo
printf '%08x %s\n' 48879 "$((7 * 6))"
seq 1 50 | awk '{s += $1 * 1.5} END {printf "%.6f %d %s\n", s, NR, s / 7}'
sort -n nums.txt | md5sum
false || echo recovered; exit 3
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    if not Path(BUSYBOX).exists() or shutil.which("qemu-aarch64") is None:
        pytest.skip("needs ../shared/guests/aarch64/busybox and qemu-aarch64")
    path = tmp_path_factory.mktemp("a64bb")
    rng = random.Random(5)
    (path / "nums.txt").write_text("".join(f"{rng.randrange(1000)} item{i}\n"
                                           for i in range(300)))
    (path / "script.sh").write_text(SCRIPT)
    return path


# the python backend runs the same script under -m slow (~70 s); the random sequences
# and the SIMD/FP program cover it in the quick suite
@pytest.mark.parametrize("backend", ["native", pytest.param("python", marks=pytest.mark.slow)])
def test_busybox_script_matches_qemu(workdir: Path, backend: str) -> None:
    if backend == "native":
        if not host_supported():
            pytest.skip("the native backend needs an x86-64 Linux host")
    want = run_qemu(str(BUSYBOX), "sh", "script.sh", cwd=workdir)
    got = run_pemu(str(BUSYBOX), "sh", "script.sh", backend=backend, cwd=workdir)
    assert want.returncode == 3, want.stderr.decode()
    assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout,
                                                        want.stderr)
