"""sfence.vma with an address, the way Linux issues it: pemu against QEMU, per fence.

    python3 bench/bench_sfence.py [--fences N] [--tree PATH]

A bare-metal S-mode program (Sv39) runs two loops of N fences each: ``sfence.vma``
of a page no TLB holds (Linux's ``update_mmu_cache`` after each fault installs a
PTE), and a load of a page followed by ``sfence.vma`` of it (the page is in the data
TLB: a text patch's fixmap page).  Each loop runs alone in its own boot, and a boot
with N = 0 is subtracted, so the CPU time per fence is the loop's alone.  ``--tree``
runs pemu from another checkout (a base tree, for before/after in one run).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pemu_bytecode import compile_pemu

ROOT = Path(__file__).resolve().parents[1]
AS, LD = "riscv64-linux-gnu-as", "riscv64-linux-gnu-ld"
QEMU = "qemu-system-riscv64"

PROGRAM = """
.equ FINISHER, 0x100000
.globl _start
_start:
    la t0, l2                    # l2[2]: 1 GiB identity leaf (code, data, finisher
    li t1, (0x80000000 >> 12) << 10 | 0xcf   # page), l2[0] -> l1 -> l0
    sd t1, 16(t0)
    la t1, l1
    srli t1, t1, 12
    slli t1, t1, 10
    ori t1, t1, 1
    sd t1, 0(t0)
    la t0, l1
    la t1, l0
    srli t1, t1, 12
    slli t1, t1, 10
    ori t1, t1, 1
    sd t1, 0(t0)
    la t0, l0                    # l0[1] (0x1000): a data page; l0[256]: the finisher
    la t1, page
    srli t1, t1, 12
    slli t1, t1, 10
    ori t1, t1, 0xc7
    sd t1, 8(t0)
    li t1, (FINISHER >> 12) << 10 | 0xc7
    addi t0, t0, 1024
    sd t1, 1024(t0)
    la t0, l2
    srli t0, t0, 12
    li t1, 8 << 60
    or t0, t0, t1
    csrw satp, t0
    sfence.vma
    li t0, -1
    csrw pmpaddr0, t0
    li t0, 0x1f
    csrw pmpcfg0, t0
    la t0, s_code
    csrw mepc, t0
    li t0, 1 << 11               # MPP = S
    csrs mstatus, t0
    mret
s_code:
    li s0, {fences}
    li a2, {address}
    beqz s0, 2f
1:  {load}
    sfence.vma a2
    addi s0, s0, -1
    bnez s0, 1b
2:  li t0, FINISHER
    li t1, 0x5555
    sw t1, 0(t0)
3:  j 3b
.data
.balign 4096
page: .dword 1
.balign 4096
l0: .zero 4096
l1: .zero 4096
l2: .zero 4096
"""

LOOPS = {  # name: (address fenced, the load before each fence)
    "a page no TLB holds": (0x2000, "nop"),
    "a page the data TLB holds": (0x1000, "ld t1, 0(a2)"),
}


def build(out: Path, name: str, fences: int, address: int, load: str) -> Path:
    src, obj, elf = out / f"{name}.S", out / f"{name}.o", out / f"{name}.elf"
    src.write_text(PROGRAM.format(fences=fences, address=address, load=load))
    subprocess.run([AS, "-march=rv64gc", "-o", str(obj), str(src)], check=True)
    subprocess.run([LD, "-N", "-Ttext=0x80000000", "--no-warn-rwx-segments", "-o", str(elf),
                    str(obj)], check=True)
    return elf


def cpu_seconds(cmd: list[str], env: dict[str, str] | None = None,
                cwd: Path | None = None) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(cmd, capture_output=True, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                       timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({r.returncode}): {r.stderr.decode()[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fences", type=int, default=1_000_000)
    ap.add_argument("--tree", type=Path, default=ROOT, help="the pemu checkout to run")
    args = ap.parse_args()
    compile_pemu(args.tree)  # pemu's starts read bytecode, as an installed pemu's do
    if not (shutil.which(AS) and shutil.which(LD)):
        print(f"needs {AS} and {LD} (Debian binutils-riscv64-linux-gnu)")
        return 1
    env = dict(os.environ, PYTHONPATH=str(args.tree), PEMU_TB_CACHE="off")
    machine = ["-M", "virt", "-bios", "none", "-nographic"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for name, (address, load) in LOOPS.items():
            row = [f"{name:28}"]
            for who in ("qemu", "pemu"):
                if who == "qemu" and shutil.which(QEMU) is None:
                    row.append("qemu: not installed")
                    continue
                times = []
                for fences in (0, args.fences):
                    elf = build(out, f"{who}{fences}", fences, address, load)
                    if who == "qemu":
                        cmd = [QEMU, *machine, "-kernel", str(elf)]
                        times.append(cpu_seconds(cmd))
                    else:
                        cmd = [sys.executable, "-m", "pemu.cli.system_riscv64", *machine,
                               "-accel", "tcg,backend=native", "-kernel", str(elf)]
                        times.append(cpu_seconds(cmd, env, args.tree))
                per = (times[1] - times[0]) / args.fences * 1e9
                row.append(f"{who} {per:7.0f} ns/fence")
            print("  ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
