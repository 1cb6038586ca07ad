"""The RISC-V vector unit in user mode: pemu-riscv64 against qemu-riscv64.

    python3 bench/bench_vector.py [--mib N] [--rounds R] [--backends native,python]

A static program of ours (assembled at run time) copies an N MiB buffer R times with the
loop Linux's kernel uses for copy_to_user/copy_from_user with V (``vsetvli t0, a2, e8,
m8; vle8.v; vse8.v``: 128 bytes per instruction at VLEN 128), at a page-aligned and a
misaligned source (runs that cross pages), then writes the last 256 bytes copied; and
a second loop ``vsetvli e32, m1`` + vle32/vadd.vx/vse32.  Prints each time and the
pemu/QEMU ratio; the outputs must match.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pemu_bytecode import compile_pemu
from user_loops import compare, parse_args

CPU = "rv64,v=true,vlen=128,elen=64,vext_spec=v1.0"

COPY = """
.option norvc
.globl _start
_start:
    la a0, src
    li t0, {size}
    li t1, 0
1:  sd t1, 0(a0)
    addi t1, t1, 0x35
    addi a0, a0, 8
    addi t0, t0, -8
    bnez t0, 1b
    li s0, {rounds}
outer:
    la a0, dst
    la a1, src
    addi a1, a1, {skew}
    li a2, {count}
loop:
    vsetvli t0, a2, {vtype}, ta, ma
    {load} v0, (a1)
    {op}
    add a1, a1, {step}
    sub a2, a2, t0
    {store} v0, (a0)
    add a0, a0, {step}
    bnez a2, loop
    addi s0, s0, -1
    bnez s0, outer
    li a0, 1
    la a1, dst
    li t0, {size} - 64 - 256
    add a1, a1, t0
    li a2, 256
    li a7, 64
    ecall
    li a0, 0
    li a7, 93
    ecall
.bss
.balign 4096
src: .space {size}
dst: .space {size}
"""

WORKLOADS = {
    # name: (vtype, load, op, store, step register, skew)
    "copy e8,m8 page-aligned": ("e8, m8", "vle8.v", "", "vse8.v", "t0", 0),
    "copy e8,m8 skew 40": ("e8, m8", "vle8.v", "", "vse8.v", "t0", 40),
    "vle32/vadd.vx/vse32 m1": ("e32, m1", "vle32.v", "vadd.vx v0, v0, t0", "vse32.v", "t1",
                               0),
}


def build(tmp: Path, name: str, rounds: int, size: int) -> Path:
    vtype, load, op, store, step, skew = WORKLOADS[name]
    src = tmp / "prog.S"
    # the e32 loop advances the pointers by vl * 4 bytes: t1 = t0 << 2
    op = op if step == "t0" else f"{op}\n    slli t1, t0, 2"
    count = (size - 64) // (1 if step == "t0" else 4)  # AVL in elements
    src.write_text(COPY.format(size=size, count=count, rounds=rounds, skew=skew, vtype=vtype,
                               load=load,
                               op=op, store=store, step=step))
    prog = tmp / name.replace(" ", "_").replace(",", "").replace("/", "_")
    subprocess.run(["riscv64-linux-gnu-gcc", "-march=rv64gcv", "-nostdlib", "-static",
                    "-o", str(prog), str(src)], check=True)
    return prog


def main() -> int:
    compile_pemu()  # pemu's starts read bytecode, as an installed pemu's do
    args = parse_args(__doc__)
    compare(args, f"{args.rounds} x {args.mib} MiB, VLEN 128",
            {name: True for name in WORKLOADS}, build, CPU, CPU)
    return 0


if __name__ == "__main__":
    sys.exit(main())
