"""The system call's round trip on a bare-metal RISC-V hart: pemu against QEMU.

    python3 bench/bench_syscall.py [--count N] [--backends native,python]

A program of ours (assembled at run time with riscv64-linux-gnu-as/ld) drops to
U-mode, which makes N ``ecall``s delegated to S (medeleg bit 8); the S handler adds
a0, steps sepc past the ecall and returns with ``sret``: the shape of a Linux system
call without the kernel's work.  Each emulator runs it with N and with 0 round trips
(start-up and translation); the difference over N is the cost of one round trip.
Prints it for Debian's qemu-system-riscv64 and pemu's backends, and the ratio.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pemu_bytecode import compile_pemu

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ROOT / "tests" / "system" / "programs"
AS, LD = "riscv64-linux-gnu-as", "riscv64-linux-gnu-ld"
QEMU = "qemu-system-riscv64"

PROGRAM = """
.include "common.inc"
.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    li t0, -1                   # PMP: S and U may use all memory
    csrw pmpaddr0, t0
    li t0, 0x1f
    csrw pmpcfg0, t0
    li t0, (1 << 8)             # ecall from U goes to S
    csrw medeleg, t0
    ENTER_S s_code, strap
s_code:
    li s9, 0
    li t0, (1 << 8)             # sret to U at u_loop
    csrc sstatus, t0
    la t0, u_loop
    csrw sepc, t0
    sret
u_loop:
    li a0, {count}
1:  beqz a0, 2f
    ecall
    addi a0, a0, -1
    j 1b
2:  li a0, -1
    ecall
.balign 4
strap:
    bltz a0, done
    add s9, s9, a0
    csrr t0, sepc
    addi t0, t0, 4
    csrw sepc, t0
    sret
done:
    li t0, {total}              # every round trip ran: the sum of the a0 seen
    EXPECT_EQ s9, t0, 2
    PASS
.balign 4
mtrap:
    li a0, (1 << 16) | 0x3333
    j finish
FINISH_ROUTINE
"""


def build(count: int, out_dir: Path) -> Path:
    src, obj, elf = (out_dir / f"syscall{count}{ext}" for ext in (".S", ".o", ".elf"))
    src.write_text(PROGRAM.format(count=count, total=count * (count + 1) // 2))
    subprocess.run([AS, "-march=rv64gc", "-I", str(PROGRAMS), "-o", str(obj), str(src)],
                   check=True, capture_output=True)
    subprocess.run([LD, "-N", "-Ttext=0x80000000", "--no-warn-rwx-segments", "-o",
                    str(elf), str(obj)], check=True, capture_output=True)
    return elf


def timed(cmd: list[str]) -> float:
    start = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL, timeout=900)
    if r.returncode != 0 or b"DONE" not in r.stdout:
        sys.exit(f"{cmd[0]} failed ({r.returncode}): {r.stderr.decode()[-400:]}")
    return time.monotonic() - start


def main() -> None:
    compile_pemu()  # pemu's starts read bytecode, as an installed pemu's do
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=200_000)
    ap.add_argument("--backends", default="native")
    args = ap.parse_args()
    if not (shutil.which(AS) and shutil.which(LD)):
        sys.exit(f"needs {AS} and {LD} (Debian binutils-riscv64-linux-gnu)")
    with tempfile.TemporaryDirectory() as tmp:
        elfs = [build(n, Path(tmp)) for n in (0, args.count)]
        board = ["-M", "virt", "-bios", "none", "-nographic"]
        runs: list[tuple[str, list[str]]] = []
        if shutil.which(QEMU):
            runs.append(("qemu-system-riscv64", [QEMU, *board]))
        for backend in filter(None, args.backends.split(",")):
            runs.append((f"pemu ({backend})",
                         [sys.executable, "-m", "pemu.cli.system_riscv64", *board,
                          "-accel", f"tcg,backend={backend}"]))
        base = None
        for name, cmd in runs:
            empty, full = (timed([*cmd, "-kernel", str(elf)]) for elf in elfs)
            per_trip = max(full - empty, 0.0) / args.count
            ratio = f"  ratio {per_trip / base:6.2f}x" if base else ""
            base = base or per_trip or None
            print(f"{name:24} {args.count} round trips: {full - empty:7.2f} s, "
                  f"{per_trip * 1e9:8.0f} ns each{ratio}")


if __name__ == "__main__":
    main()
