"""An autovectorized C program (issue 18: "a vectorized program gives the same output as
under QEMU").  Debian's gcc 12 does not vectorize for RISC-V, so clang 14 compiles it
(`-O3 -march=rv64gcv`, fixed 128-bit vectors); the loops become RVV code with tail
handling, reductions, masks and strided accesses.  Without V, QEMU stops it with SIGILL,
which shows the vector code runs; with V, pemu's output on both backends and at two
VLENs is QEMU's, line for line."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import PROGRAMS, run_pemu, run_qemu

CLANG = "clang-14"


@pytest.fixture(scope="module")
def vectorized(tmp_path_factory):
    if shutil.which(CLANG) is None:
        pytest.skip(f"{CLANG} is not installed (scripts/install-deps.sh installs it)")
    out = tmp_path_factory.mktemp("vectorized") / "vectorized"
    subprocess.run([CLANG, "--target=riscv64-linux-gnu", "-O3", "-march=rv64gcv",
                    "-mllvm", "-riscv-v-vector-bits-min=128", "-static", "-o", str(out),
                    str(PROGRAMS / "vectorized.c")], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def qemu_output(vectorized, qemu) -> bytes:
    without_v = run_qemu(str(vectorized))
    assert without_v.returncode == -4, without_v  # SIGILL: vector code, as compiled
    r = run_qemu("-cpu", "rv64,v=true,vlen=128,elen=64,vext_spec=v1.0", str(vectorized))
    assert r.returncode == 0 and r.stdout.endswith(b"VECTORIZED-DONE\n"), r
    assert b"hwcap V: 1\n" in r.stdout
    return r.stdout


@pytest.mark.parametrize("vlen", [128, 256])
def test_vectorized_program_matches_qemu(vectorized, qemu_output, tcg_backend, vlen) -> None:
    r = run_pemu("-cpu", f"rv64,v=true,vlen={vlen}", str(vectorized), timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().splitlines() == qemu_output.decode().splitlines()
