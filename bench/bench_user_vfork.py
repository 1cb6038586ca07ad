"""What a guest vfork + exec costs, with pemu's vfork children run in place and without.

In the Debian root of bench_user_distro.py, through a warm private binfmt server: a
shell loop of /bin/true (dash runs each command with vfork) and a loop of pipelines
(dash forks their members), each run with ``PEMU_VFORK=0`` (every vfork a host fork)
and ``PEMU_VFORK=1`` (syscalls/vfork_child.py) in turn, interleaved for some rounds.
Prints CPU milliseconds and minor page faults per iteration of every process of the
workload (the server's tree), and the load average.  A benchmark, not a test:
    python3 bench/bench_user_vfork.py --private-binfmt [--iterations N] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]

import bench_user_distro as distro  # noqa: E402
from private_binfmt import enter_if_asked  # noqa: E402


def minor_faults(server: int) -> int:
    """Minor faults of the server and the children it waited for, and of ours."""
    fields = Path(f"/proc/{server}/stat").read_text().rsplit(")", 1)[1].split()
    own = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt
    return int(fields[7]) + int(fields[8]) + own


def main() -> int:
    distro.compile_pemu()
    argv = enter_if_asked(sys.argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = distro.parse_binfmt_bench_args(parser, argv)
    if args is None:
        return 1
    n = args.iterations
    workloads = {
        "/bin/true": (n, f"i=0; while [ $i -lt {n} ]; do /bin/true; i=$((i+1)); done"),
        "pipeline": (n // 2, f"for i in $(seq 1 {n // 2}); do echo $i | sed s/1/x/ | "
                             "wc -c >/dev/null; done"),
    }
    name = f"pemu-bench-vfork-{os.getpid()}"
    with distro.qemu_registered(name):
        root, _ = distro.cached_root(builder="qemu")
    with tempfile.TemporaryDirectory(prefix="pemu-bench-vfork-") as scratch:
        work = Path(scratch)
        cache = work / "tb-cache"
        cache.mkdir()
        with distro.pemu_registered(name, work, cache):  # fills the cache: warm from now
            for _, script in workloads.values():
                distro.timed(root, script, lambda: 0.0)
        for round_ in range(args.rounds):
            for setting in ("0", "1"):
                distro.ENV["PEMU_VFORK"] = setting
                with distro.pemu_registered(name, work, cache) as server:
                    for label, (count, script) in workloads.items():
                        before = minor_faults(server.pid)
                        wall, cpu = distro.timed(root, script,
                                                 lambda: distro.cpu_of_tree(server.pid))
                        faults = minor_faults(server.pid) - before
                        print(f"round {round_} PEMU_VFORK={setting} {label:<10} "
                              f"{cpu / count * 1000:6.1f} CPU ms, {faults / count:6.0f} "
                              f"faults per iteration (wall {wall:.1f} s, load "
                              f"{os.getloadavg()[0]:.1f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
