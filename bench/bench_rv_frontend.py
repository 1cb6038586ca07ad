"""RISC-V frontend speed: ``python3 bench/bench_rv_frontend.py [--mib N] [--repeat R]``.

Translates (guest instructions -> IR, no backend) every block of a linear sweep over
real code with the max ISA: the .text of the riscv64 busybox as user-mode code and the
start of the riscv64 kernel Image with M-mode flags and inline atomics, and prints the
CPU microseconds per block and per instruction.  That is the decode + IR generation
part of a boot's translation time (a kernel boot translates ~40k blocks).  Each sweep
runs in a fresh process, so nothing the frontend remembers from an earlier sweep helps
it: the best of R such cold sweeps is printed.  A frontend has no QEMU counterpart to
compare with: compare trees instead (``--baseline DIR``: also sweep with the pemu tree
in DIR, alternating with this one), on one machine in one run.  Not run by the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

from pemu.guests import guest_file
from pemu.target.riscv.insn_hyp import register_hyp_instructions
from pemu.target.riscv.insn_priv import register_privileged_instructions
from pemu.target.riscv.isa import parse_cpu
from pemu.target.riscv.translate import translate_block


def _elf_text(data: bytes) -> tuple[int, bytes]:
    """(address, bytes) of an ELF64 file's .text section."""
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    def section(i: int) -> tuple[int, int, int, int]:
        name, _, _, addr, off, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        return name, addr, off, size
    strtab_off = section(shstrndx)[2]
    for i in range(shnum):
        name, addr, off, size = section(i)
        if data[strtab_off + name:].split(b"\0", 1)[0] == b".text":
            return addr, data[off:off + size]
    raise SystemExit("no .text")


def sweep(base: int, code: bytes, isa: object, flags: int) -> tuple[int, int, float]:
    """Translate block after block from ``base``; (blocks, instructions, seconds)."""
    end = base + len(code)

    def fetch(addr: int, size: int) -> int:
        if addr + size > end:
            raise IndexError(addr)
        return int.from_bytes(code[addr - base:addr - base + size], "little")
    pc, blocks, insns = base, 0, 0
    t0 = time.process_time()  # CPU time: the shared hosts are loaded
    while pc < end - 4:
        block = translate_block(pc, flags, fetch, isa=isa, inline_atomics=True)
        blocks += 1
        insns += block.n_insns
        pc += block.guest_size
    return blocks, insns, time.process_time() - t0


def one_sweep(mib: float) -> dict[str, tuple[int, int, float]]:
    register_privileged_instructions()
    register_hyp_instructions()
    isa = parse_cpu("max")
    limit = int(mib * (1 << 20))
    text_addr, text = _elf_text(guest_file("riscv64/busybox").read_bytes())
    image = guest_file("riscv64/Image").read_bytes()
    return {name: sweep(base, code, isa, flags)
            for name, base, code, flags in (("busybox .text", text_addr, text[:limit], 0),
                                            ("kernel Image", 0x8020_0000, image[:limit], 3))}


def _sweep_in(tree: Path, mib: float) -> dict[str, list]:
    # the guests of this tree, whichever tree runs
    env = dict(os.environ, PYTHONPATH=str(tree), PEMU_GUESTS=str(guest_file("")))
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--one",
                          "--mib", str(mib)], env=env, cwd=tree, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=float, default=1.0, help="bytes of each to sweep")
    parser.add_argument("--repeat", type=int, default=3, help="best of R sweeps")
    parser.add_argument("--baseline", type=Path, help="a pemu tree to compare with")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_sweep(args.mib)))
        return
    trees = {"this tree": Path(__file__).resolve().parents[1]}
    if args.baseline:
        trees["baseline"] = args.baseline.resolve()
    best: dict[tuple[str, str], list] = {}
    for _ in range(args.repeat):
        for label, tree in trees.items():  # alternate: load changes hit both alike
            for name, result in _sweep_in(tree, args.mib).items():
                if (label, name) not in best or result[2] < best[(label, name)][2]:
                    best[(label, name)] = result
    for (label, name), (blocks, insns, secs) in sorted(best.items()):
        print(f"{label:10s} {name:14s} {blocks:7d} blocks {insns:8d} insns  "
              f"{secs * 1e6 / blocks:7.1f} us/block  {secs * 1e6 / insns:6.2f} us/insn")


if __name__ == "__main__":
    main()
