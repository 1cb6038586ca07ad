"""Boot-to-poweroff time of the shared guests: pemu's backends against QEMU.

    python3 bench/bench_boot.py [--guest lean|debian|aarch64-debian] [--smp N] [--cpu MODEL]
                                [--timeout S] [--skip-qemu] [--backends native,python]
                                [--append "..."]

Every run uses the same command line (virt, kernel + initramfs,
``console=<the board's UART> pemu.test=poweroff``): Debian's qemu-system-<arch>, then
pemu with each TCG backend.  ``--guest lean`` (the default) is the small riscv64 6.1
kernel with busybox (256 MiB, OpenSBI); ``--guest debian`` is Debian 13's own riscv64
kernel and initramfs (512 MiB); ``--guest aarch64-debian`` is Debian 13's arm64 kernel
and the same initramfs services (``-cpu max``, 1 GiB, as its README's QEMU line).
It prints wall time, CPU time (user+sys of the child: the steadier
number on a shared host) and the pemu/QEMU ratio of both, and pemu's ``-d stats``
line: blocks translated, how many came from the translation cache of earlier runs
(``--no-tb-cache``: none) and the time spent translating, and for the python backend
the guest instruction count, for the native one its exits to Python and helper calls;
and for every run the self-test's steps timed by the guest clock (boot to userland, the
sha256 of 4 MiB of ``yes``, the sha256 of 4 MiB of /dev/urandom: the kernel-heavy pipes).
The python backend takes about 16 minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pemu_bytecode import compile_pemu

from pemu.guests import guest_file

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Guest:
    folder: Path
    ram: str
    arch: str  # qemu-system-<arch>, pemu.cli.system_<arch>
    kernel: str = "Image"
    console: str = "ttyS0"
    extra: tuple[str, ...] = ()
    stats: bool = True  # pemu takes -d stats


GUESTS = {"lean": Guest(guest_file("riscv64"), "256M", "riscv64"),
          "debian": Guest(guest_file("riscv64-debian"), "512M", "riscv64"),
          "aarch64-debian": Guest(guest_file("aarch64-debian"), "1G", "aarch64",
                                  kernel="vmlinuz", console="ttyAMA0",
                                  extra=("-cpu", "max"), stats=False)}
DONE = b"PEMU-GUEST-TEST-DONE"


def guest_args(guest: str, smp: int, append: str, cpu: str | None = None) -> list[str]:
    g = GUESTS[guest]
    return ["-M", "virt", *g.extra, *(("-cpu", cpu) if cpu else ()), "-m", g.ram,
            "-smp", str(smp), "-nographic", "-no-reboot", "-kernel", str(g.folder / g.kernel),
            "-initrd", str(g.folder / "initramfs.cpio.gz"), "-append", append]


def guest_steps(out: bytes) -> str:
    """The self-test's steps by the guest's own clock: its ``PEMU-TEST ... t=S`` lines
    (the lean guest's /init: boot to userland, the 4 MiB ``yes`` and /dev/urandom
    pipes through sha256sum), as the seconds each step took."""
    marks = [(line.split(b"t=")[0].split()[1].decode(), float(line.rsplit(b"t=", 1)[1]))
             for line in out.splitlines()
             if line.startswith(b"PEMU-TEST") and re.search(rb"t=[0-9.]+\s*$", line)]
    steps, last = [], 0.0
    for i, (name, t) in enumerate(marks):
        # the first line reports the CPUs and memory: it marks reaching userland
        steps.append(f"{'userland' if i == 0 else name} {t - last:.2f} s")
        last = t
    return ("guest clock per step: " + ", ".join(steps)) if steps else ""


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], timeout: float, env: dict[str, str] | None = None
          ) -> tuple[float, float, int, bytes, bytes]:
    """(wall seconds, CPU seconds, exit status, stdout, stderr) of one run."""
    start, cpu = time.monotonic(), _child_cpu()
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env,
                           stdin=subprocess.DEVNULL)
        rc, out, err = r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = 124, e.stdout or b"", e.stderr or b""
    return time.monotonic() - start, _child_cpu() - cpu, rc, out, err


def main() -> int:
    compile_pemu()  # pemu's starts read bytecode, as an installed pemu's do
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--guest", choices=sorted(GUESTS), default="lean")
    ap.add_argument("--smp", type=int, default=1)
    ap.add_argument("--cpu", default=None,
                    help="-cpu for every run (e.g. rva23s64 with --skip-qemu: QEMU 7.2 "
                         "lacks that model)")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--skip-qemu", action="store_true")
    ap.add_argument("--backends", default="native,python",
                    help="pemu TCG backends to run, comma-separated")
    ap.add_argument("--append", default=None,
                    help="the kernel command line (console=<UART> pemu.test=poweroff)")
    ap.add_argument("--no-tb-cache", action="store_true",
                    help="translate everything (PEMU_TB_CACHE=off): a first boot's cost")
    args = ap.parse_args()
    g = GUESTS[args.guest]
    if not (g.folder / g.kernel).exists():
        print(f"no guest at {g.folder}", file=sys.stderr)
        return 1
    append = args.append or f"console={g.console} pemu.test=poweroff"
    guest = guest_args(args.guest, args.smp, append, args.cpu)
    results = []
    qemu = shutil.which(f"qemu-system-{g.arch}")
    if qemu and not args.skip_qemu:
        wall, cpu, rc, out, _ = timed([qemu, *guest], args.timeout)
        results.append((f"qemu-system-{g.arch} (TCG)", wall, cpu, rc, DONE in out,
                        guest_steps(out)))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if args.no_tb_cache:
        env["PEMU_TB_CACHE"] = "off"
    for backend in filter(None, args.backends.split(",")):
        cmd = [sys.executable, "-m", f"pemu.cli.system_{g.arch}", *guest,
               "-accel", f"tcg,backend={backend}", *(("-d", "stats") if g.stats else ())]
        wall, cpu, rc, out, err = timed(cmd, args.timeout, env)
        m = re.search(rb"stats: (.*)", err)
        extra = "\n    ".join(filter(None, [m.group(1).decode() if m else "",
                                             guest_steps(out)]))
        results.append((f"pemu-system-{g.arch} ({backend})", wall, cpu, rc, DONE in out,
                        extra))
    base = results[0] if results and results[0][0].startswith("qemu") else None
    for name, wall, cpu, rc, done, extra in results:
        ratio = ""
        if base is not None and base[1] > 0 and base[2] > 0:
            ratio = f"  ratio wall {wall / base[1]:6.1f}x cpu {cpu / base[2]:6.1f}x"
        print(f"{name:32} wall {wall:7.1f} s  cpu {cpu:7.1f} s  exit {rc:3}  "
              f"DONE: {done}{ratio}")
        if extra:
            print(f"    {extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
