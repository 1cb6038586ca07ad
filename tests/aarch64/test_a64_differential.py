"""pemu-aarch64 against qemu-aarch64 on the same programs, byte for byte: random A64
sequences (integer, LSE, CRC32, exclusives; then with Advanced SIMD and FP: registers,
NZCV, FPSR, V registers and a memory buffer written out at the end), a hand-written
SIMD/FP/signal program, an exclusives counter across threads and atomics on a page
shared by two processes; both TCG backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from a64_programs import assemble, need_tools, random_program, run_pemu, run_qemu

from pemu.accel.tcg.backend.x86_64 import host_supported

HERE = Path(__file__).resolve().parent
BACKENDS = ["python"] + (["native"] if host_supported() else [])


def _same_as_qemu(exe: Path, backend: str) -> None:
    want = run_qemu(str(exe))
    got = run_pemu(str(exe), backend=backend)
    assert got.stderr == b"" and got.returncode == want.returncode == 0, got.stderr.decode()
    assert len(got.stdout) == len(want.stdout) > 0
    for off in range(0, len(want.stdout), 8):  # name the first word that differs
        assert got.stdout[off:off + 8] == want.stdout[off:off + 8], f"word {off // 8}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [1, 2])
def test_random_integer_sequences(tmp_path: Path, backend: str, seed: int) -> None:
    need_tools()
    exe = assemble(random_program(seed * 1000 + len(backend), length=300), tmp_path)
    _same_as_qemu(exe, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_random_simd_and_fp_sequences(tmp_path: Path, backend: str) -> None:
    """Half the instructions Advanced SIMD or scalar FP on V registers loaded with random
    bits (NaNs, subnormals, infinities): V0-V15, FPSR and NZCV must match too."""
    need_tools()
    exe = assemble(random_program(77 + len(backend), length=300, simd=True), tmp_path)
    _same_as_qemu(exe, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_simd_fp_and_a_signal_frame(tmp_path: Path, backend: str) -> None:
    need_tools()
    exe = assemble((HERE / "simd_fp_signals.S").read_text(), tmp_path)
    _same_as_qemu(exe, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_exclusives_are_atomic_across_threads(tmp_path: Path, backend: str) -> None:
    need_tools()
    exe = assemble((HERE / "threads_exclusive.S").read_text(), tmp_path)
    got = run_pemu(str(exe), backend=backend)
    assert got.returncode == 0, got.stderr.decode()
    assert int.from_bytes(got.stdout, "little") == 2 * 20000
    assert got.stdout == run_qemu(str(exe)).stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_atomics_are_atomic_across_processes(tmp_path: Path, backend: str) -> None:
    """Two processes share a page and hammer counters with LSE (LDADD, CAS, CASP) and
    exclusives (LDXR/STXR, LDXP/STXP): with a lock of one process only, about one in
    ten of the adds were lost."""
    need_tools()
    exe = assemble((HERE / "processes_atomic.S").read_text(), tmp_path)
    got = run_pemu(str(exe), backend=backend)
    assert got.returncode == 0, got.stderr.decode()
    words = [int.from_bytes(got.stdout[i:i + 8], "little") for i in range(0, 64, 8)]
    n = 2 * 4000
    assert words == [n, n | n << 32 | (n & 0xFF) << 48, n, 0, n, 2 * n, n, 2 * n]
    assert got.stdout == run_qemu(str(exe)).stdout


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [5, 6])
def test_random_wider_neon_sequences(tmp_path: Path, backend: str, seed: int) -> None:
    """The rest of the common Advanced SIMD set mixed with the integer ops: saturating
    (FPSR.QC), widening and narrowing, permutes and TBL/TBX, shifts by immediate, across
    lanes, LD1-4/ST1-4 of structures and single lanes, LDnR, vector FP (FPSR flags)."""
    need_tools()
    exe = assemble(random_program(seed * 131 + len(backend), length=400, neon=True), tmp_path)
    _same_as_qemu(exe, backend)
