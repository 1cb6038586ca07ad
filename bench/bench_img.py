"""Benchmark: pemu-img convert against Debian's qemu-img in one run.

    python3 bench/bench_img.py [--size 1G] [--dir /tmp]

Builds a raw image of --size, half of it allocated (alternating 1 MiB runs of
mixed text/random data and holes), then times qcow2->raw, raw->qcow2 and a
compressed raw->qcow2 convert with both tools and prints pemu/qemu time ratios.
Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pemu_bytecode import compile_pemu

ROOT = Path(__file__).resolve().parents[1]


def parse_size(text: str) -> int:
    units = {"k": 10, "m": 20, "g": 30}
    if text[-1].lower() in units:
        return int(float(text[:-1]) * (1 << units[text[-1].lower()]))
    return int(text)


def make_source(path: str, size: int) -> None:
    r = random.Random(42)
    mib = 1 << 20
    text = b"".join(f"line {i} of some fairly compressible text\n".encode()
                    for i in range(30000))
    with open(path, "wb") as f:
        f.truncate(size)
        for off in range(0, size, 2 * mib):
            f.seek(off)
            # half random (incompressible), half text, so -c has work to do
            f.write(r.randbytes(mib // 2) + text[:mib // 2])


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return time.perf_counter() - t


def main() -> int:
    compile_pemu()  # pemu's starts read bytecode, as an installed pemu's do
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="1G")
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    qemu = shutil.which("qemu-img")
    if qemu is None:
        print("qemu-img not found (install qemu-utils)")
        return 1
    pemu = [sys.executable, "-m", "pemu.block.img.main"]
    size = parse_size(args.size)
    work = tempfile.mkdtemp(dir=args.dir, prefix="bench-img-")
    try:
        src = os.path.join(work, "src.raw")
        make_source(src, size)
        qc = os.path.join(work, "q.qcow2")
        subprocess.run([qemu, "convert", "-f", "raw", "-O", "qcow2", src, qc], check=True)
        cases = [
            ("qcow2->raw", ["convert", "-f", "qcow2", "-O", "raw", qc], "raw"),
            ("raw->qcow2", ["convert", "-f", "raw", "-O", "qcow2", src], "qcow2"),
            ("raw->qcow2 -c", ["convert", "-c", "-f", "raw", "-O", "qcow2", src], "qcow2"),
        ]
        print(f"image: {size >> 20} MiB, half allocated")
        print(f"{'case':<16}{'qemu-img s':>12}{'pemu-img s':>12}{'ratio':>9}")
        for name, cmd, ext in cases:
            out_q = os.path.join(work, f"out-q.{ext}")
            out_p = os.path.join(work, f"out-p.{ext}")
            tq = timed([qemu, *cmd, out_q])
            tp = timed([*pemu, *cmd, out_p])
            same = subprocess.run([qemu, "compare", out_q, out_p],
                                  stdout=subprocess.DEVNULL).returncode == 0
            print(f"{name:<16}{tq:>12.2f}{tp:>12.2f}{tp / tq:>8.1f}x"
                  + ("" if same else "  (OUTPUTS DIFFER)"))
            os.unlink(out_q)
            os.unlink(out_p)
    finally:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
