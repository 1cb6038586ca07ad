"""What a GNU ``./configure`` spends its time on, under pemu and under qemu-riscv64-static.

A configure script of an autoconf package runs hundreds of tiny compiles (gcc -> cc1 ->
as, and collect2 -> ld for the links) and thousands of sed, grep and sh processes; its
ratio to qemu is theirs.  This runs loops of them, chrooted in the Debian riscv64 root
with the toolchain (tests/linux_user/debian_root.py), through binfmt_misc:

- ``gcc -c``: compiling a conftest.c (the driver, cc1, as);
- ``gcc -o``: compiling and linking it (also collect2 and ld), then running it;
- ``sed|grep, sh -c``: the shell plumbing between the compiles.

Columns: qemu-riscv64-static (flag F), pemu's binfmt server on an empty translation
cache (cold: one iteration, what a first build pays), and a server restarted on what
that left (warm: every later build).  Cells are seconds per iteration, wall and CPU
(every process of the workload: qemu's are this process's children, pemu's the server
and the programs it ran, counted from the end of the server's start), and pemu's CPU
ratio to qemu.  The load average is printed with them: on a shared host only the
ratios within one run mean something.

    python3 bench/bench_user_build.py --private-binfmt [--iterations N] [--only NAME]
(a binfmt_misc of its own, Linux 6.7+; or as root without --private-binfmt)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests" / "linux_user")]

from bench_user_distro import (  # noqa: E402
    cpu_of_tree,
    parse_binfmt_bench_args,
    pemu_registered,
    print_table,
    qemu_registered,
    timed,
)
from debian_root import cached_root, cached_toolchain_root  # noqa: E402
from pemu_bytecode import compile_pemu  # noqa: E402
from private_binfmt import enter_if_asked  # noqa: E402

CONFTEST = """#include <stdio.h>
#include <string.h>
int main(void) { char buf[16]; strcpy(buf, "conftest"); puts(buf); return 0; }
"""
# one iteration of each workload, run in the work directory (as configure's conftests)
WORKLOADS = {
    "gcc -c": "gcc -c conftest.c",
    "gcc -o": "gcc -o conftest conftest.c && ./conftest >/dev/null",
    "sed|grep, sh -c": "echo 'ac_cv_func_strcpy=yes' | sed -n 's/^ac_cv_\\(.*\\)=.*/\\1/p' "
                       "| grep -c func >/dev/null && sh -c 'test -f conftest.c'",
}


def loop(work: str, command: str, n: int) -> str:
    return f"cd {work} && i=0; while [ $i -lt {n} ]; do {command} || exit 1; i=$((i+1)); done"


def main() -> int:
    compile_pemu()  # pemu's starts read bytecode, as an installed pemu's do
    argv = enter_if_asked(sys.argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10, help="of each workload")
    parser.add_argument("--only", choices=list(WORKLOADS), action="append",
                        help="this workload only (repeatable)")
    parser.add_argument("--root", type=Path, help="a riscv64 root with gcc to use as it is")
    args = parse_binfmt_bench_args(parser, argv)
    if args is None:
        return 1
    name = f"pemu-bench-build-{os.getpid()}"
    n = args.iterations
    scratch = Path(tempfile.mkdtemp(prefix="pemu-bench-build-"))
    if args.root is None:
        with qemu_registered(name):  # the root is data: made the fast way
            root, _ = cached_toolchain_root(cached_root(builder="qemu")[0])
    else:
        root = args.root
    work = f"/tmp/pemu-bench-build-{os.getpid()}"  # in the root; removed at the end
    results: dict[str, dict[str, tuple[float, float]]] = {}
    try:
        (root / work[1:]).mkdir(parents=True)
        (root / work[1:] / "conftest.c").write_text(CONFTEST)
        chosen = {k: v for k, v in WORKLOADS.items() if not args.only or k in args.only}
        with qemu_registered(name):
            for label, command in chosen.items():
                wall, cpu = timed(root, loop(work, command, n), cpu_of_tree)
                results[label] = {"qemu": (wall / n, cpu / n)}
        for i, (label, command) in enumerate(chosen.items()):
            cache = scratch / f"tb-cache-{i}"  # empty for each workload's cold run
            cache.mkdir()
            for column, runs in (("pemu cold", 1), ("pemu warm", n)):
                with pemu_registered(name, scratch, cache) as server:
                    wall, cpu = timed(root, loop(work, command, runs),
                                      lambda: cpu_of_tree(server.pid))
                results[label][column] = (wall / runs, cpu / runs)
    finally:
        shutil.rmtree(root / work[1:], ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    load = os.getloadavg()
    print(f"seconds per iteration, wall / CPU (pemu's CPU ratio to qemu), {n} iterations "
          f"(cold: 1), root {root.name}, load average {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f} at the end")
    print_table(results, ratio_of=1, width=18, digits=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
