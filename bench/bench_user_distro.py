"""A Debian riscv64 root under pemu and under qemu-riscv64-static, through binfmt_misc.

What a foreign-architecture build costs is process starts and real programs: this runs,
chrooted in the same trixie root, N starts of /bin/true from a shell loop (every one an
execve through binfmt_misc), a `sh -c` loop of small pipelines, and (when the root has
gcc) a compile, under:

- qemu-riscv64-static, registered with flag F (no translation cache: one column);
- pemu's binfmt server with an empty translation cache (cold), then again with the
  cache that run filled (warm); each workload starts from an empty cache.

Root needed (binfmt_misc, chroot).  The root is the tests' cached one
(tests/linux_user/debian_root.py), built first if missing; ``--gcc`` uses one with gcc
and make (built with whatever is registered for riscv64 at the time, qemu if nothing).
Each workload's wall time and CPU time (every process of it: for pemu, the server's
children, which are the programs, and the launchers).  A benchmark, not a test:
    sudo python3 bench/bench_user_distro.py [--starts N] [--loops N] [--gcc]
or, with a binfmt_misc of its own (private_binfmt.py; Linux 6.7+, no sudo needed):
    python3 bench/bench_user_distro.py --private-binfmt [--starts N] [--loops N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "linux_user")]

from debian_root import cached_root, in_root  # noqa: E402
from private_binfmt import FLAG, enter_if_asked  # noqa: E402

from pemu.linux_user import binfmt  # noqa: E402

ENV = dict(os.environ, PYTHONPATH=str(ROOT))
GUEST_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root"}
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
def pemu_registered(name: str, work: Path, tb_cache: Path) -> Iterator[int]:
    """The resident server (its children's translation cache in ``tb_cache``)."""
    env = dict(ENV, PEMU_TB_CACHE=str(tb_cache))
    server = subprocess.Popen([sys.executable, "-m", "pemu.linux_user.binfmt", "--serve",
                               "--name", name], env=env, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        for _ in range(600):
            if server.poll() is not None:
                raise SystemExit("the pemu binfmt server did not start")
            try:
                pemu_binfmt("--install", "--name", name, "--server", "--launcher",
                            str(work / "launcher"))
                break
            except subprocess.CalledProcessError:
                time.sleep(0.1)
        yield server.pid
    finally:
        subprocess.run([sys.executable, "-m", "pemu.linux_user.binfmt", "--remove",
                        "--name", name], env=ENV, capture_output=True)
        server.terminate()
        server.wait()


def _cpu_of_tree(pid: int | None) -> float:
    """CPU seconds of this process's children (waited for), and of process ``pid`` and
    the children it waited for (the pemu server: the programs are its children)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = r.ru_utime + r.ru_stime
    if pid is not None:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        seconds += sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return seconds


def timed(root: Path, script: str, server: int | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of ``script`` in the root."""
    cpu = _cpu_of_tree(server)
    start = time.perf_counter()
    subprocess.run(in_root(root, "sh", "-c", script), env=GUEST_ENV, check=True,
                   capture_output=True, timeout=7200)
    return time.perf_counter() - start, _cpu_of_tree(server) - cpu


def workloads(starts: int, loops: int, gcc: bool) -> dict[str, str]:
    jobs = {
        f"{starts} x /bin/true": f"i=0; while [ $i -lt {starts} ]; do /bin/true; "
                                 "i=$((i+1)); done",
        f"sh -c loop ({loops} pipelines)": f"for i in $(seq 1 {loops}); do echo $i | "
                                           "sed s/1/x/ | wc -c >/dev/null; done",
    }
    if gcc:
        jobs["gcc -O2 hello.c"] = "gcc -O2 -o /tmp/hello /tmp/hello.c && /tmp/hello"
    return jobs


def main() -> int:
    argv = enter_if_asked(sys.argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=1000)
    parser.add_argument("--loops", type=int, default=100, help="pipelines of 3 processes")
    parser.add_argument("--gcc", action="store_true", help="also a compile (root with gcc)")
    parser.add_argument("--root", type=Path, help="a riscv64 root to use as it is")
    parser.add_argument(FLAG, action="store_true",
                        help="a binfmt_misc of its own, in a user namespace (Linux 6.7+)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print(f"needs root (binfmt_misc, chroot), or {FLAG}")
        return 1
    binfmt.ensure_mounted()
    name = f"pemu-bench-distro-{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="pemu-bench-distro-"))
    try:
        if args.root is None:
            with qemu_registered(name):  # the root is data: made the fast way
                packages = ("gcc", "make", "libc6-dev") if args.gcc else ()
                root, _ = cached_root(packages, builder="qemu")
        else:
            root = args.root
        if args.gcc:
            (root / "tmp" / "hello.c").write_text(HELLO)
        jobs = workloads(args.starts, args.loops, args.gcc)
        results: dict[str, dict[str, tuple[float, float]]] = {label: {} for label in jobs}
        with qemu_registered(name):
            for label, script in jobs.items():
                results[label]["qemu"] = timed(root, script)
        for i, (label, script) in enumerate(jobs.items()):
            cache = work / f"tb-cache-{i}"  # empty for each workload's first run
            cache.mkdir()
            for column in ("pemu cold", "pemu warm"):
                with pemu_registered(name, work, cache) as server:
                    results[label][column] = timed(root, script, server)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"seconds (ratio to qemu-riscv64-static), root {root}")
    for kind, index in (("wall", 0), ("CPU", 1)):
        print(f"{kind:<30}{'qemu':>10}{'pemu cold':>20}{'pemu warm':>20}")
        for label, row in results.items():
            q = row["qemu"][index]
            cells = "".join(f"{row[c][index]:>10.2f} ({row[c][index] / q:5.1f}x)"
                            for c in ("pemu cold", "pemu warm"))
            print(f"{label:<30}{q:>10.2f}{cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
