"""A glibc program using V under pemu-riscv64 ``-cpu rv64,v=true``: AT_HWCAP says V,
a signal handler that uses the vector unit leaves the interrupted code's vector state
alone (Linux's V signal context, which handlers also find in their ucontext), and a
strip-mined vector copy works.  QEMU 7.2's linux-user saves no vector state in signal
frames, so this checks against the Linux ABI, not against it."""

from __future__ import annotations

import pytest
from conftest import SYSROOT, run_pemu


@pytest.mark.parametrize("dynamic", [True, False])
def test_vector_state_survives_a_signal_handler(build, tcg_backend, dynamic: bool) -> None:
    prog = build("vector_signals", static=not dynamic)
    prefix = ["-L", SYSROOT] if dynamic else []
    r = run_pemu(*prefix, "-cpu", "rv64,v=true,vlen=256", str(prog), timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().split() == [
        "hwcap_v=1", "magic=1", "handler_vl=3", "vl=3", "vxrm=1", "v1=5", "copy=1"]


def test_without_v_the_program_gets_sigill(build) -> None:
    r = run_pemu(str(build("vector_signals", static=True)), timeout=120)
    assert r.returncode == -4  # SIGILL: the first vector instruction
