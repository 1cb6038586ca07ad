"""SMP scaling: N processes in a ``-smp N`` guest against one in ``-smp 1``.

    python3 bench/bench_smp_scaling.py [--loops N] [--workload loop|exec] [--smp N]
                                       [--skip-qemu] [--modes multi,single] [--timeout S]

The shared lean riscv64 guest boots to its shell (its boot time is printed, not part
of the ratio); then a busybox shell loop of N iterations runs once in a ``-smp 1``
guest and ``--smp`` times at once in a ``-smp N`` guest (2 by default), each timed by
the host from the command to its completion marker.  ``--workload loop`` is
CPU-bound shell arithmetic; ``exec`` forks and execs ``/bin/true`` every iteration.
The scaling ratio is t(N loops, -smp N) / t(1 loop, -smp 1): 1.0 when the other vCPUs
run in parallel for free, N when they all share one host thread (on a host with at
least N cores).  It runs pemu (native backend) with each ``thread=`` mode asked for
and QEMU with MTTCG (``-accel tcg,thread=multi``), on the same host cores, and prints
the ratios.
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

from pemu_bytecode import compile_pemu

from pemu.guests import guest_file

ROOT = Path(__file__).resolve().parents[1]
OPENSBI = Path("/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin")
PROMPT = b"pemu-guest:"


class Guest:
    """The lean guest on a pty, at its shell."""

    def __init__(self, cmd: list[str], timeout: float) -> None:
        self.log = bytearray()
        self.master, slave = pty.openpty()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     cwd=ROOT, start_new_session=True)
        os.close(slave)
        start = time.monotonic()
        if not self._read_until(PROMPT, timeout):
            raise RuntimeError(f"no shell prompt: {bytes(self.log[-2000:])!r}")
        self.boot_seconds = time.monotonic() - start

    def _read_until(self, marker: bytes, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        start = len(self.log)
        while marker not in self.log[start:]:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                return False
            if select.select([self.master], [], [], min(left, 1.0))[0]:
                try:
                    self.log += os.read(self.master, 65536)
                except OSError:
                    return False
        return True

    def timed(self, command: str, timeout: float) -> float:
        """Seconds from typing ``command`` to its completion marker."""
        start = time.monotonic()
        os.write(self.master, f"{command}; echo BENCH-DONE-$((6*7))\r".encode())
        if not self._read_until(b"BENCH-DONE-42", timeout):
            raise RuntimeError(f"'{command}' did not finish: {bytes(self.log[-2000:])!r}")
        return time.monotonic() - start

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self.master)


# Iterations per process when --loops is not given: about the same guest time for each
# workload (a fork+exec of /bin/true costs what ~400 iterations of the loop do; with the
# loop's count the exec workload ran for hours).
DEFAULT_LOOPS = {"loop": 200000, "exec": 500}

WORKLOADS = {
    # CPU-bound: shell arithmetic, no system calls
    "loop": "(i=0; while [ $i -lt {n} ]; do i=$((i+1)); done)",
    # fork/exec-heavy: every iteration forks and execs busybox (page faults, TLB
    # flushes, IPIs for remote fences, the scheduler moving tasks between harts)
    "exec": "(i=0; while [ $i -lt {n} ]; do /bin/true; i=$((i+1)); done)",
}


def loops_command(workload: str, n_procs: int, loops: int) -> str:
    one = WORKLOADS[workload].replace("{n}", str(loops))
    return " ".join(f"{one} &" for _ in range(n_procs)) + " wait"


def measure(base: list[str], accel: list[str], workload: str, loops: int, smp: int,
            timeout: float) -> tuple[float, float, float]:
    """(seconds of 1 loop with -smp 1, seconds of ``smp`` loops with -smp ``smp``,
    boot seconds of the -smp ``smp`` guest)."""
    times = []
    boot = 0.0
    for n in (1, smp):
        guest = Guest([*base, *accel, "-smp", str(n)], timeout)
        boot = guest.boot_seconds
        try:
            times.append(guest.timed(loops_command(workload, n, loops), timeout))
        finally:
            guest.close()
    return times[0], times[1], boot


def main() -> int:
    compile_pemu()  # pemu's starts read bytecode, as an installed pemu's do
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--loops", type=int, default=None,
                   help="iterations per process (default: loop 200000, exec 500)")
    p.add_argument("--workload", choices=sorted(WORKLOADS), default="loop")
    p.add_argument("--smp", type=int, default=2, help="vCPUs (and processes) of the "
                   "parallel run")
    p.add_argument("--modes", default="multi", help="pemu thread= modes, comma-separated")
    p.add_argument("--skip-qemu", action="store_true")
    p.add_argument("--timeout", type=float, default=900)
    args = p.parse_args()
    if args.loops is None:
        args.loops = DEFAULT_LOOPS[args.workload]
    folder = guest_file("riscv64")
    common = ["-M", "virt", "-m", "256M", "-nographic", "-kernel", str(folder / "Image"),
              "-initrd", str(folder / "initramfs.cpio.gz"), "-append", "console=ttyS0"]
    rows = []
    qemu = shutil.which("qemu-system-riscv64")
    if qemu and not args.skip_qemu and OPENSBI.exists():
        t1, t2, boot = measure([qemu, "-bios", "default", *common],
                               ["-accel", "tcg,thread=multi"], args.workload, args.loops,
                               args.smp, args.timeout)
        rows.append(("QEMU thread=multi", t1, t2, boot))
        print(f"QEMU: {t1:.2f} s, {t2:.2f} s (boot {boot:.1f} s)", flush=True)
    for mode in args.modes.split(","):
        t1, t2, boot = measure([sys.executable, "-m", "pemu.cli.system_riscv64", *common],
                               ["-accel", f"tcg,backend=native,thread={mode}"],
                               args.workload, args.loops, args.smp, args.timeout)
        rows.append((f"pemu native thread={mode}", t1, t2, boot))
        print(f"pemu thread={mode}: {t1:.2f} s, {t2:.2f} s (boot {boot:.1f} s)", flush=True)
    print(f"{args.workload}: {args.loops} iterations per process; "
          f"{os.cpu_count()} host CPUs, load {os.getloadavg()[0]:.1f}")
    n = args.smp
    for name, t1, t2, boot in rows:
        print(f"{name:28s} 1 proc -smp 1: {t1:7.2f} s   {n} procs -smp {n}: {t2:7.2f} s   "
              f"scaling ratio {t2 / t1:.2f} (1.0 = perfect)   -smp {n} boot {boot:.1f} s")
    qemu_rows = [r for r in rows if r[0].startswith("QEMU")]
    if qemu_rows:
        q1, q2 = qemu_rows[0][1:3]
        for name, t1, t2, _ in rows:
            if not name.startswith("QEMU"):
                print(f"{name}: time vs QEMU {t1 / q1:.1f}x (-smp 1), {t2 / q2:.1f}x (-smp {n}); "
                      f"scaling ratio vs QEMU's {(t2 / t1) / (q2 / q1):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
