"""Zbb orc.b and Zicboz cbo.zero in user mode: pemu-riscv64 against qemu-riscv64.

    python3 bench/bench_zbb_cbo.py [--mib N] [--rounds R] [--backends native,python]

Two loops the Linux kernel runs a lot with ``-cpu rva23s64``: its strlen_zbb (one
``ld; orc.b; bne`` per 8 bytes, over an N MiB string) and its page clearing (one
``cbo.zero`` per 64-byte block of N MiB), each R times, then the program writes a
checksum of the cleared buffer.  QEMU 7.2 has Zbb but no Zicboz: it runs the strlen
loop only (the cbo.zero row has no ratio).  The outputs must match where both run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pemu_bytecode import compile_pemu
from user_loops import compare, parse_args

CPU = "rv64,zbb=true"
PEMU_CPU = "rv64,zbb=true,zicboz=true"

PROGRAM = """
.option norvc
.option arch, +zbb, +zicboz
.globl _start
_start:
    la a0, buf                   # the buffer: nonzero bytes, then a terminating 0
    li t0, {size}
    li t1, 0x0101010101010101
1:  sd t1, 0(a0)
    addi a0, a0, 8
    addi t0, t0, -8
    bnez t0, 1b
    sd zero, 0(a0)
    li s0, {rounds}
outer:
    la a0, buf
    {body}
    addi s0, s0, -1
    bnez s0, outer
    la a0, buf                   # a checksum of the buffer: its doublewords xored
    li t0, {size}
    li a2, 0
3:  ld t1, 0(a0)
    xor a2, a2, t1
    addi a0, a0, 8
    addi t0, t0, -8
    bnez t0, 3b
    la a1, sum
    sd a2, 0(a1)
    li a0, 1
    li a2, 8
    li a7, 64
    ecall
    li a0, 0
    li a7, 93
    ecall
.data
sum: .dword 0
.bss
.balign 4096
buf: .space {size} + 8
"""

WORKLOADS = {
    # name: (the loop body over a0 = buf, runs under qemu-riscv64 7.2)
    "strlen: ld/orc.b/bne": ("""li t2, -1
2:  ld t1, 0(a0)
    orc.b t1, t1
    addi a0, a0, 8
    beq t1, t2, 2b""", True),
    "page clear: cbo.zero": ("""li t0, {size}
2:  cbo.zero (a0)
    addi a0, a0, 64
    addi t0, t0, -64
    bnez t0, 2b""", False),
}


def build(tmp: Path, name: str, rounds: int, size: int) -> Path:
    body, _ = WORKLOADS[name]
    src = tmp / "prog.S"
    src.write_text(PROGRAM.format(size=size, rounds=rounds, body=body.format(size=size)))
    prog = tmp / name.split(":")[0].replace(" ", "_")
    subprocess.run(["riscv64-linux-gnu-gcc", "-nostdlib", "-static", "-o", str(prog),
                    str(src)], check=True)
    return prog


def main() -> int:
    compile_pemu()  # pemu's starts read bytecode, as an installed pemu's do
    args = parse_args(__doc__)
    runs_on_qemu = {name: on_qemu for name, (_, on_qemu) in WORKLOADS.items()}
    compare(args, f"{args.rounds} x {args.mib} MiB", runs_on_qemu, build, CPU, PEMU_CPU)
    return 0


if __name__ == "__main__":
    sys.exit(main())
