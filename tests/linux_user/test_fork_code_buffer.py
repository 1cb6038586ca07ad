"""A forked child runs its own copy of the parent's translated code, as it was at the fork.

The native backend's code buffer is a shared mapping (a memfd mapped twice), so a fork
child must copy it.  It used to copy it itself, after the fork, while the parent went
on running: a parent that chained an old block to code it had just translated patched
the child's future copy too, and the child's old block then jumped into whatever the
child had put at that offset.  A warm translation cache makes the parent fast enough
to do that within the child's first milliseconds: Debian's ``dpkg-deb --fsys-tarfile``
(which forks a reader and a decompressor) failed in about a quarter of its warm runs.

``fork_diverge.c``: parent and child take different paths after the fork, then both
run the unexecuted side of a branch in an old block.  A launcher that delays every
fork child (as a loaded host does) makes the old race certain: the child was killed
by SIGSEGV in every run.  Compared with qemu-riscv64.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT, SYSROOT, run_qemu

from pemu.accel.tcg.backend.x86_64 import host_supported

pytestmark = pytest.mark.skipif(not host_supported(), reason="needs the native backend")

# pemu-riscv64 in a Python whose fork children first sleep: registered before pemu
# creates its backend, so the sleep runs before any of pemu's own after-fork work
SLOW_CHILD_LAUNCHER = (
    "import os, sys, time\n"
    "delay = float(sys.argv.pop(1))\n"
    "os.register_at_fork(after_in_child=lambda: time.sleep(delay))\n"
    "from pemu.linux_user.main import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def run_pemu_slow_children(delay_s: float, *args: str, cache: str = "off"
                           ) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PEMU_TB_CACHE=cache)
    return subprocess.run([sys.executable, "-c", SLOW_CHILD_LAUNCHER, str(delay_s),
                           "-accel", "tcg,backend=native", *args],
                          capture_output=True, timeout=240, env=env)


def test_a_slow_fork_child_runs_the_code_of_the_fork(build, qemu):
    prog = str(build("fork_diverge"))
    want = run_qemu("-L", SYSROOT, prog, "2")
    assert want.returncode == 0 and b"child exit 0" in want.stdout, want.stderr
    got = run_pemu_slow_children(0.5, "-L", SYSROOT, prog, "2")
    assert b"Traceback" not in got.stderr, got.stderr.decode()[-3000:]
    assert (got.stdout.decode(), got.returncode) == (want.stdout.decode(), want.returncode)


def test_fork_children_with_a_warm_translation_cache(build, qemu, tmp_path):
    """The same program started again with its blocks in the cache: the parent reaches
    the new paths sooner than a child still copying (a short delay, many forks)."""
    prog = str(build("fork_diverge"))
    want = run_qemu("-L", SYSROOT, prog, "4")
    cache = str(tmp_path / "cache")
    for _ in range(2):  # cold, then warm
        got = run_pemu_slow_children(0.05, "-L", SYSROOT, prog, "4", cache=cache)
        assert (got.stdout.decode(), got.returncode) == (want.stdout.decode(),
                                                         want.returncode), got.stderr
    assert (tmp_path / "cache" / "tb.sqlite").exists()
