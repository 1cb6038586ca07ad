"""Boot-to-poweroff wall time of the shared riscv64 guest: pemu against Debian's QEMU.

    python3 bench/bench_boot.py [--timeout S] [--skip-qemu] [--append "..."]

Both run the same command line (virt, 256 MiB, OpenSBI, Image + initramfs,
``console=ttyS0 pemu.test=poweroff``).  For pemu it also reports the guest
instruction count, blocks translated and time spent translating (``-d stats``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from pemu.guests import guest_file

ROOT = Path(__file__).resolve().parents[1]
GUEST = guest_file("riscv64")
DONE = b"PEMU-GUEST-TEST-DONE"


def guest_args(append: str) -> list[str]:
    return ["-M", "virt", "-m", "256M", "-smp", "1", "-nographic", "-no-reboot",
            "-kernel", str(GUEST / "Image"), "-initrd", str(GUEST / "initramfs.cpio.gz"),
            "-append", append]


def timed(cmd: list[str], timeout: float, env: dict[str, str] | None = None
          ) -> tuple[float, int, bytes, bytes]:
    start = time.monotonic()
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env,
                           stdin=subprocess.DEVNULL)
        return time.monotonic() - start, r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired as e:
        return time.monotonic() - start, 124, e.stdout or b"", e.stderr or b""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--skip-qemu", action="store_true")
    ap.add_argument("--append", default="console=ttyS0 pemu.test=poweroff")
    args = ap.parse_args()
    if not (GUEST / "Image").exists():
        print(f"no guest at {GUEST}", file=sys.stderr)
        return 1
    results = []
    qemu = shutil.which("qemu-system-riscv64")
    if qemu and not args.skip_qemu:
        secs, rc, out, _ = timed([qemu, *guest_args(args.append)], args.timeout)
        results.append(("qemu-system-riscv64 (TCG)", secs, rc, DONE in out, ""))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "pemu.cli.system_riscv64", *guest_args(args.append),
           "-d", "stats"]
    secs, rc, out, err = timed(cmd, args.timeout, env)
    m = re.search(rb"stats: (.*)", err)
    results.append(("pemu-system-riscv64 (python)", secs, rc, DONE in out,
                    m.group(1).decode() if m else ""))
    for name, secs, rc, done, extra in results:
        print(f"{name:32} {secs:8.1f} s  exit {rc:3}  reached DONE: {done}  {extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
