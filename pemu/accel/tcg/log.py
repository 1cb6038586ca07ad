"""``-d`` logging for the translator, with QEMU's item names.

  in_asm   guest code of each translated block, disassembled
  op       the IR as the frontend emitted it
  op_opt   the IR after the optimizer
  out_asm  the host code of each block (the python backend's generated source)
  exec     one line per block executed
  cpu      the guest registers before each block executed (implies exec's loop)
  int      one line per interrupt and exception taken (system mode)
"""

from __future__ import annotations

import sys
from typing import TextIO

LOG_ITEMS = {
    "in_asm": "show target assembly code for each compiled TB",
    "op": "show micro ops for each compiled TB",
    "op_opt": "show micro ops after optimization",
    "out_asm": "show generated host code for each compiled TB",
    "exec": "show trace before each executed TB",
    "cpu": "show CPU registers before entering a TB",
    "int": "show interrupts/exceptions in short format",
    "strace": "log every system call (user mode)",
    "stats": "print translation and execution counters when the guest exits",
    "guest_errors": "log when the guest accesses invalid devices or memory",
    "unimp": "log unimplemented functionality",
}


class LogError(ValueError):
    pass


class TCGLog:
    def __init__(self, items: list[str] | None = None, out: TextIO | None = None) -> None:
        items = list(items or [])
        unknown = [i for i in items if i not in LOG_ITEMS]
        if unknown:
            raise LogError(f"unknown -d log item '{unknown[0]}' (try -d help)")
        self.items = set(items)
        self.out = out or sys.stderr
        self.wants_exec = bool(self.items & {"exec", "cpu"})

    @staticmethod
    def help_text() -> str:
        return "Log items (comma separated):\n" + "\n".join(
            f"{k:<13}{v}" for k, v in LOG_ITEMS.items())

    def enabled(self, item: str) -> bool:
        return item in self.items

    def write(self, text: str) -> None:
        self.out.write(text if text.endswith("\n") else text + "\n")
        self.out.flush()

    def block_translated_ir(self, block: object, item: str) -> None:
        if item in self.items:
            self.write(("OP:\n" if item == "op" else "OP after optimization:\n")
                       + block.dump() + "\n")

    def block_translated(self, tb: object, mem: object) -> None:
        if "in_asm" in self.items:
            self.write(self._in_asm(tb, mem))
        if "out_asm" in self.items:
            self.write(f"OUT: [size={len(tb.source)}]\n{tb.source}")

    def guest_code(self, pc: int, code: bytes) -> None:
        """``in_asm`` for a block whose guest bytes the caller fetched (system mode)."""
        if "in_asm" in self.items:
            self.write(self._disassemble(pc, code))

    @staticmethod
    def _in_asm(tb: object, mem: object) -> str:
        return TCGLog._disassemble(tb.pc, bytes(mem.mem[tb.pc : tb.pc + tb.size]))

    @staticmethod
    def _disassemble(pc: int, code: bytes) -> str:
        try:
            from pemu.target.riscv.disas import disassemble

            lines = disassemble(code, pc)
        except ImportError:
            lines = [f"0x{pc:016x}:  {code.hex()}"]
        return "IN: \n" + "\n".join(lines) + "\n"

    def engine_stats(self, prog: str, stats: dict[str, float]) -> None:
        """The ``-d stats`` line: one ``key=value`` per counter, for people and scripts."""
        if "stats" in self.items:
            pairs = " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in sorted(stats.items()))
            self.write(f"{prog}: stats: {pairs}")

    def block_executed(self, tb: object, state: object) -> None:
        if "cpu" in self.items:
            from pemu.target.riscv.cpu_state import ABI_NAMES

            regs = [f" {ABI_NAMES[i]:>4} {state.x(i):016x}" for i in range(32)]
            rows = ["".join(regs[i : i + 4]) for i in range(0, 32, 4)]
            self.write(f" pc       {state.pc:016x}\n" + "\n".join(rows))
        if "exec" in self.items:
            self.write(f"Trace 0: [{tb.flags:08x}/{tb.pc:016x}/00000000/00000000]")
