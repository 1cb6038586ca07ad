"""Linux user-mode benchmark: pemu-riscv64 against qemu-riscv64 on the same workloads.

Runs busybox sha256sum and gzip of one 8 MiB file and a CPU-bound C program of ours
(tests/programs/cpu_bound.c, built statically at run time), and prints each
pemu/qemu wall-time ratio.  A benchmark, not a test: python3 bench/bench_user.py
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pemu_bytecode import compile_pemu

from pemu.guests import guest_file

ROOT = Path(__file__).resolve().parents[1]
BUSYBOX = str(guest_file("riscv64/busybox"))


def timed(cmd: list[str], **kw) -> tuple[float, bytes]:
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, check=True, **kw).stdout
    return time.perf_counter() - start, out


def main() -> int:
    compile_pemu()  # pemu's starts read bytecode, as an installed pemu's do
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    pemu = [sys.executable, "-m", "pemu.linux_user.main"]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp, "data.bin")
        rng = random.Random(7)
        # half random, half text: gzip gets something to compress
        data.write_bytes(rng.randbytes(4 << 20) + b"".join(
            f"{i} {rng.random()}\n".encode() for i in range(200_000))[: 4 << 20])
        prog = Path(tmp, "cpu_bound")
        subprocess.run(["riscv64-linux-gnu-gcc", "-O2", "-static", "-o", str(prog),
                        str(ROOT / "tests/programs/cpu_bound.c")], check=True)
        workloads = {
            "busybox sha256sum 8 MiB": [BUSYBOX, "sha256sum", str(data)],
            "busybox gzip -c 8 MiB": [BUSYBOX, "gzip", "-c", str(data)],
            "cpu_bound 2000000": [str(prog), "2000000"],
        }
        print(f"{'workload':<28}{'qemu s':>10}{'pemu s':>10}{'pemu/qemu':>12}")
        for name, args in workloads.items():
            tq, out_q = timed(["qemu-riscv64", *args])
            tp, out_p = timed([*pemu, *args], env=env)
            same = "" if out_q == out_p else "  (OUTPUT DIFFERS)"
            print(f"{name:<28}{tq:>10.2f}{tp:>10.2f}{tp / tq:>12.1f}{same}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
