"""Before/after boots: two pemu trees and QEMU, interleaved, with pemu's counters.

    PYTHONPATH=. python3 bench/bench_boot_trees.py --base /tmp/base-tree [--new .]
        [--guest lean|debian] [--rounds N] [--skip-qemu] [--timeout S]

Each round runs QEMU, then the base tree, then the new tree (native backend, the
same riscv64 command line as bench_boot.py), so that both trees see about the same
host load; run it with at least two rounds and read the later ones (each tree has
its own translation cache, ``PEMU_TB_CACHE=<cache-dir>/<tree name>``, so the first
round fills it).  For every run it prints the load average at its start, wall and
CPU seconds (user+sys of the child), pemu's ``-d stats`` line, and from
``PEMU_COUNTERS=1`` the softmmu slow-path helper calls and the TLB counters
(``docs/PERFORMANCE.md`` "Counting").
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

from pemu_bytecode import compile_pemu

from bench.bench_boot import GUESTS, guest_args

DONE = b"PEMU-GUEST-TEST-DONE"
COUNTERS = ("helper:softmmu_load_mmu1", "helper:softmmu_store_mmu1",
            "helper:softmmu_load_mmu0", "helper:softmmu_store_mmu0",
            "tlb:native walker fills", "tlb:flush page", "tlb:flush page of asid",
            "helper:fence_i", "fence.i:pages snapshotted", "fence.i:pages compared",
            "fence.i:pages changed")


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(name: str, cmd: list[str], env: dict[str, str], timeout: float,
        cwd: Path | None = None) -> None:
    load = os.getloadavg()[0]
    start, cpu = time.monotonic(), _child_cpu()
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env,
                           stdin=subprocess.DEVNULL, cwd=cwd)
        rc, out, err = r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = 124, e.stdout or b"", e.stderr or b""
    wall, cpu = time.monotonic() - start, _child_cpu() - cpu
    text = err.decode(errors="replace")
    print(f"{name:8s} load {load:5.2f}  wall {wall:6.1f} s  cpu {cpu:6.1f} s  rc {rc}  "
          f"done {DONE in out}", flush=True)
    stats = re.search(r"stats: (.*)", text)
    if stats:
        print("   ", stats.group(1), flush=True)
    counts = {k: int(m.group(1)) for k in COUNTERS
              if (m := re.search(re.escape(k) + r"\s+(\d+)", text))}
    if counts:
        slow = sum(int(n) for n in re.findall(r"helper:softmmu_\S+\s+(\d+)", text))
        print(f"    softmmu slow-path helpers {slow}; {counts}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True, help="the tree to compare with")
    ap.add_argument("--new", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--guest", choices=("lean", "debian"), default="lean")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--skip-qemu", action="store_true")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/bench-boot-trees"))
    args = ap.parse_args()
    g = GUESTS[args.guest]
    guest = guest_args(args.guest, 1, f"console={g.console} pemu.test=poweroff")
    trees = {"base": args.base.resolve(), "new": args.new.resolve()}
    for tree in trees.values():  # starts read bytecode, as an installed pemu's do
        compile_pemu(tree)
    for i in range(args.rounds):
        print(f"-- round {i}", flush=True)
        if not args.skip_qemu:
            run("qemu", [f"qemu-system-{g.arch}", *guest], dict(os.environ), args.timeout)
        for name, tree in trees.items():
            env = dict(os.environ, PYTHONPATH=str(tree), PEMU_COUNTERS="1",
                       PEMU_TB_CACHE=str(args.cache_dir / name))
            # run from the tree itself: ``-m`` puts the working directory first on
            # sys.path, which would otherwise pick the caller's tree for both
            run(name, [sys.executable, "-m", f"pemu.cli.system_{g.arch}", *guest,
                       "-accel", "tcg,backend=native", "-d", "stats"], env, args.timeout,
                cwd=tree)
    return 0


if __name__ == "__main__":
    sys.exit(main())
