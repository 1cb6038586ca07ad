"""mstatus.FS tracking: FP instructions illegal with FS Off, Initial/Clean -> Dirty on the
first FP-state write, and FS/SD as M-mode (mstatus) and S-mode (sstatus) read them.

The bare-metal program programs/fs_tracking.S checks everything itself and reports
through the SiFive test finisher (exit status N = check N failed).  The same ELF runs
on Debian's qemu-system-riscv64 too, so the expectations are QEMU's, not only ours.
Linux checks the tracking too: it saves a task's f registers on a context switch only
when sstatus.SD says they are dirty (a boot to a shell: about a minute on the native
backend, ten on the python one, so that one only with PEMU_LONG_TESTS=1).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.system.conftest import run_pemu
from tests.system.test_linux_boot import _need_guest, _need_long, _rootfs_copy, boot_shell_on_pty
from tests.system.test_virt_board import _read_until

QEMU = "qemu-system-riscv64"


def _run_pemu(elf) -> subprocess.CompletedProcess:
    return run_pemu("-M", "virt", "-bios", "none", "-kernel", str(elf), "-nographic",
                    timeout=120)


def test_fs_off_traps_and_clean_fs_turns_dirty(build_program, tcg_backend):
    r = _run_pemu(build_program("fs_tracking"))
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout


def test_flags_accrued_into_fflags_alone_dirty_fs(build_program, tcg_backend):
    """flt with a NaN or an inexact fcvt.w.s write only an x register and fflags; the
    spec still wants FS Dirty (QEMU 7.2 leaves it Clean, so this one has no oracle)."""
    r = _run_pemu(build_program("fs_tracking", ACCRUED_ONLY=1))
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"


def test_qemu_agrees_with_the_program(build_program):
    """The oracle: QEMU runs the same checks and passes them all."""
    if shutil.which(QEMU) is None:
        pytest.skip(f"needs {QEMU} (Debian qemu-system-misc)")
    elf = build_program("fs_tracking")
    r = subprocess.run([QEMU, "-M", "virt", "-bios", "none", "-kernel", str(elf),
                        "-nographic"], capture_output=True, input=b"", timeout=60)
    assert r.returncode == 0, f"QEMU: check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout


# -- what the frontend emits for each FS state (no guest needed) -------------------------

FADD_S = 0x0020_F053  # fadd.s ft0, ft1, ft2 (rm = dyn)
FMUL_D = 0x1232_F0D3  # fmul.d ft1, ft5, ft3
FSW = 0x0000_2027  # fsw ft0, 0(x0)
FEQ_S = 0xA010_2553  # feq.s a0, ft0, ft1


def _helpers_called(flags: int, *insns: int) -> list[str]:
    from pemu.accel.tcg.opcodes import CALL
    from pemu.target.riscv.translate import translate_block

    code = b"".join(i.to_bytes(4, "little") for i in insns)

    def fetch(addr: int, size: int) -> int:
        off = addr - 0x8000_0000
        if off >= len(code):
            raise IndexError(addr)  # ends the block after the last instruction
        return int.from_bytes(code[off:off + size], "little")

    block = translate_block(0x8000_0000, flags, fetch)
    return [op.aux.name for op in block.ops if op.opc is CALL]


def test_frontend_marks_fs_once_per_block_and_never_without_fs_bits():
    from pemu.target.riscv.priv import FLAG_FS_CLEAN, FLAG_FS_OFF

    fp_code = (FSW, FADD_S, FMUL_D, FADD_S)
    # flags 0 (user mode, or FS Dirty): no marking at all
    assert "mark_fs_dirty" not in _helpers_called(0, *fp_code)
    assert "mark_fs_dirty" not in _helpers_called(3, *fp_code)
    # FS Initial/Clean: one mark, after the first write (the store writes nothing)
    calls = _helpers_called(3 | FLAG_FS_CLEAN, *fp_code)
    assert calls.count("mark_fs_dirty") == 1
    assert calls.index("mark_fs_dirty") == calls.index("fadd_s") + 1
    # a compare marks only if it raised flags: the call is conditional, every time
    assert _helpers_called(1 | FLAG_FS_CLEAN, FEQ_S, FEQ_S).count("mark_fs_dirty") == 2
    # FS Off: the first FP instruction raises, and nothing after it is translated
    assert _helpers_called(1 | FLAG_FS_OFF, FSW, FADD_S) == ["raise_exception"]


# -- Linux: FP state of processes that preempt each other ----------------------------------

def _harmonic(m: int, n: int) -> float:
    s = 0.0
    for k in range(1, n + 1):
        s += m / k  # the order busybox awk adds in: bit-identical doubles
    return s


@pytest.mark.slow
def test_linux_keeps_the_fp_state_of_preempted_processes(tmp_path, tcg_backend):
    """Three busybox awk processes sum m/k in doubles at the same time.  A write that
    left FS Clean would let the kernel skip saving one task's f registers and hand
    them to another: the sums would come out wrong (or awk divides by zero)."""
    _need_guest()
    _need_long(tcg_backend)  # about a minute native, ten python
    image = _rootfs_copy(tmp_path)
    proc, master = boot_shell_on_pty(f"file={image},format=raw,if=virtio")
    buf = bytearray()
    factors, n = (1, 3, 7), 4000
    try:
        jobs = "".join(f"awk 'BEGIN{{s=0; for(k=1;k<={n};k++) s+={m}/k; "
                       f"printf \"R%d %.15e\\n\", {m}, s}}' & " for m in factors)
        os.write(master, f'{jobs}wait; echo FP-""DONE\r'.encode())
        assert _read_until(master, b"FP-DONE", 1800, buf), bytes(buf)
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    out = bytes(buf).decode(errors="replace")
    for m in factors:
        assert f"R{m} {_harmonic(m, n):.15e}" in out, out
