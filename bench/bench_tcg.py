"""TCG backends side by side: ``python3 bench/bench_tcg.py [--size MiB] [--no-python]``.

Runs the user-mode workloads (busybox sha256sum and gzip of a file, a CPU-bound C
program) under pemu's python backend, pemu's native x86-64 backend and Debian's
qemu-riscv64, and prints wall time, CPU time (user+sys of the child) and the ratio
pemu/qemu on CPU time, which is what the busy shared CI hosts measure most stably.
For pemu it also prints the engine's counters: blocks translated, translation time,
exits to Python per second and helper calls per second.  Not run by the test suite.

pemu runs the way an installed package does: with its bytecode compiled (a pip install
compiles it; bench/pemu_bytecode.py); ``--cold-bytecode`` measures every start compiling
pemu's sources again instead, as a checkout with PYTHONDONTWRITEBYTECODE=1 and no
bytecode does (~0.5 s a start).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pemu_bytecode import compile_pemu

from pemu.guests import guest_file

ROOT = Path(__file__).resolve().parents[1]
BUSYBOX = guest_file("riscv64/busybox")
CC = "riscv64-linux-gnu-gcc"


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    cpu0, t0 = _child_cpu(), time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, env=env, check=False)
    wall, cpu = time.perf_counter() - t0, _child_cpu() - cpu0
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[:3]}... failed: {p.stderr.decode()[-400:]}")
    return wall, cpu, p.stderr.decode()


def _stats(stderr: str) -> dict[str, float]:
    """Parse pemu-riscv64's ``-d stats`` line (``pemu-riscv64: stats: k=v ...``)."""
    for line in stderr.splitlines():
        if line.startswith("pemu-riscv64: stats: "):
            pairs = (kv.split("=", 1) for kv in line.split(": ", 2)[2].split())
            return {k: float(v) for k, v in pairs}
    return {}


def pemu(backend: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "pemu.linux_user.main", "-accel", f"tcg,backend={backend}",
            "-d", "stats", *args]


def make_input(path: Path, size: int) -> None:
    rnd = random.Random(7)
    words = [bytes(rnd.choices(b"abcdefghijklmnop \n", k=rnd.randint(1, 10)))
             for _ in range(4000)]
    data = bytearray()
    while len(data) < size:
        data += b"".join(rnd.choices(words, k=10000))
    path.write_bytes(bytes(data[:size]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=8, help="input file size in MiB")
    ap.add_argument("--no-python", action="store_true", help="skip the (slow) python backend")
    ap.add_argument("--primes", default="200000", help="cpu_bound argument")
    ap.add_argument("--cold-bytecode", action="store_true",
                    help="compile pemu's sources at every start (no bytecode)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pemu-bench-"))
    data = tmp / "input.bin"
    make_input(data, args.size << 20)
    workloads = [
        (f"sha256sum {args.size}MiB", [str(BUSYBOX), "sha256sum", str(data)]),
        (f"gzip {args.size}MiB", [str(BUSYBOX), "gzip", "-c", str(data)]),
    ]
    if shutil.which(CC):
        prog = tmp / "cpu_bound"
        subprocess.run([CC, "-O2", "-static", "-o", str(prog),
                        str(ROOT / "tests" / "programs" / "cpu_bound.c")], check=True)
        workloads.append((f"cpu_bound {args.primes}", [str(prog), args.primes]))
    backends = ["native"] if args.no_python else ["python", "native"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if args.cold_bytecode:  # bytecode looked for in an empty folder, never written
        env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONPYCACHEPREFIX=str(tmp / "pycache"))
    else:
        compile_pemu()
    print(f"{'workload':<22}{'runner':<9}{'wall s':>8}{'cpu s':>8}{'cpu/qemu':>10}"
          f"{'blocks':>8}{'xlate s':>9}{'exits/s':>10}{'helpers/s':>11}")
    for name, cmd in workloads:
        _wall, q_cpu, _ = run(["qemu-riscv64", *cmd])
        print(f"{name:<22}{'qemu':<9}{_wall:>8.2f}{q_cpu:>8.2f}{1.0:>10.2f}")
        for backend in backends:
            wall, cpu, err = run(pemu(backend, *cmd), env=env)
            st = _stats(err)
            exits = st.get("exits_miss", 0) + st.get("exits_exc", 0) + st.get("exits_req", 0)
            print(f"{'':<22}{backend:<9}{wall:>8.2f}{cpu:>8.2f}{cpu / q_cpu:>10.2f}"
                  f"{st.get('translated', 0):>8}{st.get('translate_seconds', 0):>9.2f}"
                  f"{exits / wall:>10.0f}{st.get('helper_calls', 0) / wall:>11.0f}")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
