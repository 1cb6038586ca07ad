"""The runner shared by the user-mode assembly-loop benchmarks (bench_vector.py,
bench_zbb_cbo.py): each workload is a small static program built per run, timed under
qemu-riscv64 and under pemu-riscv64 on each backend, and printed as one row with the
ratio (and DIFFERS where the outputs do not match)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, bytes]:
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, check=True, env=env).stdout
    return time.perf_counter() - start, out


def parse_args(doc: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--mib", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--backends", default="native")
    return ap.parse_args()


def compare(args: argparse.Namespace, title: str, workloads: dict[str, bool],
            build: Callable[[Path, str, int, int], Path], qemu_cpu: str,
            pemu_cpu: str) -> None:
    """``workloads``: name -> whether qemu-riscv64 runs it too (no ratio otherwise);
    ``build(folder, name, rounds, bytes)`` makes its program."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    backends = [b for b in args.backends.split(",") if b]
    width = max(map(len, workloads)) + 4
    print(title)
    print(f"{'workload':<{width}}{'qemu s':>9}" + "".join(f"{b + ' s':>11}{'ratio':>7}"
                                                          for b in backends))
    with tempfile.TemporaryDirectory() as tmp:
        for name, on_qemu in workloads.items():
            prog = build(Path(tmp), name, args.rounds, args.mib << 20)
            tq, out_q = timed(["qemu-riscv64", "-cpu", qemu_cpu, str(prog)]) if on_qemu \
                else (0.0, b"")
            row = f"{name:<{width}}" + (f"{tq:>9.2f}" if on_qemu else f"{'-':>9}")
            for backend in backends:
                tp, out_p = timed([sys.executable, "-m", "pemu.linux_user.main", "-accel",
                                   f"tcg,backend={backend}", "-cpu", pemu_cpu, str(prog)],
                                  env)
                row += f"{tp:>11.2f}" + (f"{tp / tq:>7.1f}" if on_qemu else f"{'-':>7}")
                if on_qemu and out_p != out_q:
                    row += " DIFFERS"
            print(row, flush=True)
