"""Host signals reach a guest that spins in chained native code (signal_wakeup.py).

The guest arms alarm() and loops on a volatile flag without a syscall: only the
wakeup watcher can get the main thread out of generated code so that the Python
handler runs.  Without it the program never ends (the test's timeout fails it).
The forked child checks that the watcher is started again after fork.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from .native_harness import ROOT, needs_native

CC = "riscv64-linux-gnu-gcc"
SPIN_SOURCE = r"""
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile sig_atomic_t fired;
static void on_alarm(int sig) { (void)sig; fired = 1; }
static void spin(const char *who) {
    fired = 0;
    alarm(1);
    unsigned long n = 0;
    while (!fired) n++;
    printf("%s: the alarm ended a loop of %s\n", who, n ? "many iterations" : "none");
    fflush(stdout);
}
int main(void) {
    signal(SIGALRM, on_alarm);
    pid_t child = fork();
    if (child == 0) {
        spin("child");
        return 3;
    }
    int status = 0;
    waitpid(child, &status, 0);
    printf("child exit %d\n", WEXITSTATUS(status));
    spin("parent");
    return 0;
}
"""


@needs_native
def test_alarm_interrupts_spinning_native_code(tmp_path) -> None:
    if shutil.which(CC) is None:
        pytest.skip(f"{CC} is not installed")
    src = tmp_path / "spin.c"
    src.write_text(SPIN_SOURCE)
    prog = tmp_path / "spin"
    subprocess.run([CC, "-O2", "-static", "-o", str(prog), str(src)], check=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    got = subprocess.run([sys.executable, "-m", "pemu.linux_user.main", "-accel",
                          "tcg,backend=native", str(prog)], capture_output=True, env=env,
                         timeout=120, check=False)
    assert got.returncode == 0, got.stderr.decode()[-2000:]
    expected = (b"child: the alarm ended a loop of many iterations\nchild exit 3\n"
                b"parent: the alarm ended a loop of many iterations\n")
    assert got.stdout == expected
    if shutil.which("qemu-riscv64"):
        oracle = subprocess.run(["qemu-riscv64", str(prog)], capture_output=True,
                                timeout=60, check=False)
        assert oracle.stdout == got.stdout
