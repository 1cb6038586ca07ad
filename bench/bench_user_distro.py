"""A Debian riscv64 root under pemu and under qemu-riscv64-static, through binfmt_misc.

What a foreign-architecture build costs is process starts and real programs: this runs,
chrooted in the same trixie root, N starts of /bin/true from a shell loop (every one an
execve through binfmt_misc), a `sh -c` loop of small pipelines, and with ``--build`` a
compile and GNU hello's ``./configure``, ``make`` and ``make check`` (the tests' package,
debian_root.HELLO_STEPS), under:

- qemu-riscv64-static, registered with flag F (no translation cache: one column);
- pemu's binfmt server with an empty translation cache (cold), then again with the
  cache that run filled (warm).  Each workload starts from an empty cache; the steps of
  the hello build run in order on one cache (make's "cold" run has what configure put
  there: cc1, as and ld among it).

Each cell is wall seconds and the CPU seconds of every process of the workload (qemu:
this process's children; pemu: those, the server and the programs it ran).  Root needed
(binfmt_misc, chroot).  The root is the tests' cached one (tests/linux_user/debian_root.py),
built under qemu first if missing; ``--build`` uses its cached copy with the toolchain
(apt-get under qemu).
A benchmark, not a test:
    sudo python3 bench/bench_user_distro.py [--starts N] [--loops N] [--build]
or, with a binfmt_misc of its own (private_binfmt.py; Linux 6.7+, no sudo needed):
    python3 bench/bench_user_distro.py --private-binfmt [--starts N] [--loops N] [--build]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "linux_user")]

from debian_root import (  # noqa: E402
    GUEST_ENV,
    HELLO_DIR,
    HELLO_STEPS,
    cached_root,
    cached_toolchain_root,
    hello_tarball,
    in_root,
)
from pemu_bytecode import compile_pemu  # noqa: E402
from private_binfmt import FLAG, enter_if_asked  # noqa: E402

from pemu.linux_user import binfmt  # noqa: E402

ENV = dict(os.environ, PYTHONPATH=str(ROOT))
HELLO = "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n"


def pemu_binfmt(*args: str, env: dict | None = None) -> None:
    subprocess.run([sys.executable, "-m", "pemu.linux_user.binfmt", *args],
                   env=env or ENV, check=True, capture_output=True)


@contextlib.contextmanager
def qemu_registered(name: str) -> Iterator[None]:
    qemu = shutil.which("qemu-riscv64-static")
    if qemu is None:
        raise SystemExit("qemu-riscv64-static is not installed (Debian qemu-user-static)")
    pemu_binfmt("--install", "--name", name, "--interpreter", qemu, "--flags", "F")
    try:
        yield
    finally:
        pemu_binfmt("--remove", "--name", name)


@contextlib.contextmanager
def pemu_registered(name: str, work: Path, tb_cache: Path) -> Iterator[subprocess.Popen]:
    """The resident server (its children's translation cache in ``tb_cache``)."""
    env = dict(ENV, PEMU_TB_CACHE=str(tb_cache))
    server = subprocess.Popen([sys.executable, "-m", "pemu.linux_user.binfmt", "--serve",
                               "--name", name], env=env, stderr=subprocess.PIPE)
    try:
        # the server installs the cache's blocks before it serves: a one-time cost of
        # its start, not of the programs measured (its "serving on" line ends it)
        for line in server.stderr:
            if b"serving on" in line:
                break
        # its later messages read and dropped: a full pipe would block it
        threading.Thread(target=server.stderr.read, daemon=True).start()
        for _ in range(600):
            if server.poll() is not None:
                raise SystemExit("the pemu binfmt server did not start")
            try:
                pemu_binfmt("--install", "--name", name, "--server", "--launcher",
                            str(work / "launcher"))
                break
            except subprocess.CalledProcessError:
                time.sleep(0.1)
        yield server
    finally:
        subprocess.run([sys.executable, "-m", "pemu.linux_user.binfmt", "--remove",
                        "--name", name], env=ENV, capture_output=True)
        server.terminate()
        server.wait()


def timed(root: Path, script: str, cpu) -> tuple[float, float]:
    """Wall and ``cpu()`` seconds of one script in the root."""
    start, used = time.perf_counter(), cpu()
    subprocess.run(in_root(root, "sh", "-c", script), env=GUEST_ENV, check=True,
                   capture_output=True, timeout=7200)
    return time.perf_counter() - start, cpu() - used


def cpu_of_tree(server: int | None = None) -> float:
    """CPU seconds of this process's children (waited for), and of process ``server``
    and the children it waited for (the pemu server: the programs are its children)."""
    t = os.times()
    seconds = t.children_user + t.children_system
    if server is not None:
        fields = Path(f"/proc/{server}/stat").read_text().rsplit(")", 1)[1].split()
        seconds += sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return seconds


def workloads(starts: int, loops: int, build: bool) -> list[dict[str, str]]:
    """Sequences of (label: script): each sequence's steps run in order on one cache."""
    jobs = [
        {f"{starts} x /bin/true": f"i=0; while [ $i -lt {starts} ]; do /bin/true; "
                                  "i=$((i+1)); done"},
        {f"sh -c loop ({loops} pipelines)": f"for i in $(seq 1 {loops}); do echo $i | "
                                            "sed s/1/x/ | wc -c >/dev/null; done"},
    ]
    if build:
        jobs.append({"gcc -O2 hello.c": "gcc -O2 -o /tmp/hello /tmp/hello.c && /tmp/hello"})
        source = f"/build/{HELLO_DIR}"
        unpack = (f"rm -rf /build && mkdir /build && tar -xzf /tmp/{hello_tarball().name} "
                  f"-C /build && cd {source} && ")
        steps = {f"hello {step}": f"cd {source} && {command}"
                 for step, command in HELLO_STEPS.items()}
        steps["hello configure"] = unpack + HELLO_STEPS["configure"]
        jobs.append(steps)
    return jobs


def main() -> int:
    compile_pemu()  # pemu's starts read bytecode, as an installed pemu's do
    argv = enter_if_asked(sys.argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=1000)
    parser.add_argument("--loops", type=int, default=100, help="pipelines of 3 processes")
    parser.add_argument("--build", action="store_true",
                        help="also a compile and GNU hello's configure, make, make check")
    parser.add_argument("--root", type=Path, help="a riscv64 root to use as it is")
    args = parse_binfmt_bench_args(parser, argv)
    if args is None:
        return 1
    name = f"pemu-bench-distro-{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="pemu-bench-distro-"))
    try:
        if args.root is None:
            with qemu_registered(name):  # the root is data: made the fast way
                root, _ = cached_root(builder="qemu")
                if args.build:
                    root, _ = cached_toolchain_root(root)
        else:
            root = args.root
        if args.build:
            (root / "tmp" / "hello.c").write_text(HELLO)
            shutil.copy(hello_tarball(), root / "tmp")
        jobs = workloads(args.starts, args.loops, args.build)
        results: dict[str, dict[str, tuple[float, float]]] = {}
        with qemu_registered(name):
            for sequence in jobs:
                for label, script in sequence.items():
                    results[label] = {"qemu": timed(root, script, cpu_of_tree)}
        for i, sequence in enumerate(jobs):
            cache = work / f"tb-cache-{i}"  # empty for each workload's first run
            cache.mkdir()
            for column in ("pemu cold", "pemu warm"):
                with pemu_registered(name, work, cache) as server:
                    for label, script in sequence.items():
                        results[label][column] = timed(
                            root, script, lambda: cpu_of_tree(server.pid))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if args.build:
            shutil.rmtree(root / "build", ignore_errors=True)
    load = os.getloadavg()
    print(f"wall s / CPU s (wall ratio to qemu-riscv64-static), root {root}, "
          f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print_table(results, ratio_of=0, width=30, digits=1)
    return 0


def parse_binfmt_bench_args(parser: argparse.ArgumentParser, argv: list[str]
                            ) -> argparse.Namespace | None:
    """The arguments, with the private-binfmt flag every binfmt bench takes, once
    binfmt_misc is there to register in; None (said why) where it cannot be."""
    parser.add_argument(FLAG, action="store_true",
                        help="a binfmt_misc of its own, in a user namespace (Linux 6.7+)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print(f"needs root (binfmt_misc, chroot), or {FLAG}")
        return None
    binfmt.ensure_mounted()
    return args


def print_table(results: dict[str, dict[str, tuple[float, float]]], ratio_of: int,
                width: int, digits: int) -> None:
    """One row per workload: qemu's and pemu's (cold, warm) wall / CPU seconds, and
    pemu's ratio to qemu of the wall (``ratio_of`` 0) or CPU (1) time."""
    print(f"{'':<{width}}{'qemu':>14}{'pemu cold':>26}{'pemu warm':>26}")
    for label, row in results.items():
        q = row["qemu"][ratio_of]
        cells = "".join(f"{row[c][0]:>9.{digits}f} /{row[c][1]:>6.{digits}f} "
                        f"({row[c][ratio_of] / q:5.2f}x)" for c in ("pemu cold", "pemu warm"))
        print(f"{label:<{width}}{row['qemu'][0]:>7.{digits}f} /{row['qemu'][1]:>5.{digits}f}"
              f"{cells}")


if __name__ == "__main__":
    sys.exit(main())
