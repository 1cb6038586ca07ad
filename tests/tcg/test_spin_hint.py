"""RISC-V ``pause`` (Linux's cpu_relax) as a host yield (accel/tcg/spin_hint.py): in a
guest thread that runs on its own host thread, generated code calls libc's
``sched_yield`` itself.  The loop keeps several values live across every pause, so a
call that clobbered a register the allocator holds across it shows in the result;
both backends, against qemu-riscv64 where it is installed (~1 s)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = r"""
#include <stdio.h>
int main(void) {
    unsigned long s = 1, t = 7, u = 3;
    for (unsigned long i = 0; i < 20000; i++) {
        s = s * 6364136223846793005UL + i;
        __asm__ volatile(".4byte 0x0100000f");  /* pause (Zihintpause) */
        t ^= s >> 7;
        u += t | i;
    }
    printf("%lx %lx %lx\n", s, t, u);
    return 0;
}
"""


@pytest.fixture(scope="module")
def pause_loop(tmp_path_factory) -> Path:
    if shutil.which("riscv64-linux-gnu-gcc") is None:
        pytest.skip("riscv64-linux-gnu-gcc is not installed")
    folder = tmp_path_factory.mktemp("pause")
    (folder / "pause.c").write_text(SOURCE)
    out = folder / "pause"
    subprocess.run(["riscv64-linux-gnu-gcc", "-static", "-O2", "-o", str(out),
                    str(folder / "pause.c")], check=True, capture_output=True)
    return out


def _expected() -> str:
    s, t, u = 1, 7, 3
    mask = (1 << 64) - 1
    for i in range(20000):
        s = (s * 6364136223846793005 + i) & mask
        t ^= s >> 7
        u = (u + (t | i)) & mask
    return f"{s:x} {t:x} {u:x}\n"


@pytest.mark.parametrize("backend", ["native", "python"])
def test_pause_keeps_the_loop_state(pause_loop, backend):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "pemu.linux_user.main", "-accel",
                        f"tcg,backend={backend}", str(pause_loop)], capture_output=True,
                       text=True, timeout=120, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout == _expected()
    if shutil.which("qemu-riscv64"):
        q = subprocess.run(["qemu-riscv64", str(pause_loop)], capture_output=True,
                           text=True, timeout=60)
        assert q.stdout == r.stdout
