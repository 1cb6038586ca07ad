"""KVM exit cost: pemu vs QEMU (qemu-system-x86_64 -accel kvm) on the same bare-metal guest.

The guest (tests/kvm/guests/ioloop.S) does N port writes, each a KVM_EXIT_IO that the VMM
handles in user space, then resets.  Wall time at N = 0 is the start-up cost; the
difference to N = big, divided by N, is the round-trip cost of one port-I/O exit.

    python3 bench/bench_kvm.py [--exits 200000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pemu_bytecode import compile_pemu  # noqa: E402

from bench.baremetal import GUEST_DIR, assemble  # noqa: E402


def build(count: int, out: Path) -> Path:
    src = f"        .set COUNT, {count}\n" + (GUEST_DIR / "ioloop.S").read_text()
    return assemble(f"ioloop{count}", out, source=src)


def timed(cmd: list[str], env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)
          ) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=600, env=env)
    dt = time.perf_counter() - t
    if r.returncode not in ok:
        raise SystemExit(f"{cmd[0]} failed ({r.returncode}): {r.stderr.decode()[-500:]}")
    return dt


def pemu_cmd(kernel: Path) -> list[str]:
    return [sys.executable, "-m", "pemu.cli.system_x86_64", "-M", "microvm", "-accel", "kvm",
            "-m", "32", "-serial", "null", "-no-reboot", "-kernel", str(kernel)]


def qemu_cmd(kernel: Path) -> list[str]:
    return ["qemu-system-x86_64", "-M", "microvm", "-accel", "kvm", "-m", "32",
            "-display", "none", "-serial", "null", "-monitor", "none", "-no-reboot",
            "-kernel", str(kernel), "-device", "isa-debug-exit,iobase=0xf4,iosize=4"]


def measure(name: str, make_cmd, small: Path, big: Path, n: int, runs: int,
            env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)) -> float:
    base = statistics.median(timed(make_cmd(small), env, ok) for _ in range(runs))
    full = statistics.median(timed(make_cmd(big), env, ok) for _ in range(runs))
    per_exit = (full - base) / n
    print(f"{name:5s}: start-up {base * 1000:7.1f} ms, {n} exits in {full - base:6.3f} s -> "
          f"{1 / per_exit:10.0f} exits/s, {per_exit * 1e6:6.2f} us per port-I/O round trip")
    return per_exit


def main() -> int:
    compile_pemu()  # pemu's starts read bytecode, as an installed pemu's do
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exits", type=int, default=200000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        small, big = build(0, Path(d)), build(args.exits, Path(d))
        env = dict(os.environ, PYTHONPATH=str(REPO))
        pemu = measure("pemu", pemu_cmd, small, big, args.exits, args.runs, env)
        if shutil.which("qemu-system-x86_64") is None:
            print("qemu-system-x86_64 not installed: no comparison")
            return 0
        # isa-debug-exit turns the guest's write of 0 into QEMU exit status 1
        qemu = measure("qemu", qemu_cmd, small, big, args.exits, args.runs, ok=(1,))
        print(f"ratio: a port-I/O exit costs {pemu / qemu:.2f}x as much in pemu as in QEMU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
