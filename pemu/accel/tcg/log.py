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
from collections.abc import Callable
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
        # the guest's in_asm and cpu formatters; the engine installs its target's
        self.disassemble: Callable[[bytes, int], list[str]] = _hex_dump
        self.dump_registers: Callable[[object], str] = _no_registers

    def use_target(self, disassemble: Callable[[bytes, int], list[str]],
                   dump_registers: Callable[[object], str]) -> None:
        """The guest architecture's formatters (``TCGTarget.disassemble`` and
        ``dump_registers``), installed by the engine that logs here."""
        self.disassemble = disassemble
        self.dump_registers = dump_registers

    @staticmethod
    def help_text() -> str:
        return "Log items (comma separated):\n" + "\n".join(
            f"{k:<13}{v}" for k, v in LOG_ITEMS.items())

    def enabled(self, item: str) -> bool:
        return item in self.items

    def write(self, text: str) -> None:
        """One log record.  In user mode the log shares the guest's descriptor 2, which
        the program may have closed (GNU programs close stdout and stderr as they exit,
        just before ``-d stats`` prints): the record is then lost, as QEMU's would be,
        and the guest's exit status must not be (a failed write would end the emulator
        with an exception instead)."""
        try:
            self.out.write(text if text.endswith("\n") else text + "\n")
            self.out.flush()
        except (OSError, ValueError):  # closed or broken descriptor; closed file object
            pass

    def block_translated_ir(self, block: object, item: str) -> None:
        if item in self.items:
            self.write(("OP:\n" if item == "op" else "OP after optimization:\n")
                       + block.dump() + "\n")

    def guest_code(self, pc: int, code: bytes) -> None:
        """``in_asm``: the guest code of a block just translated."""
        if "in_asm" in self.items:
            self.write("IN: \n" + "\n".join(self.disassemble(code, pc)) + "\n")

    def host_code(self, source: str) -> None:
        """``out_asm``: what the backend made of it."""
        if "out_asm" in self.items:
            self.write(f"OUT: [size={len(source)}]\n{source}")

    def engine_stats(self, prog: str, stats: dict[str, float]) -> None:
        """The ``-d stats`` line: one ``key=value`` per counter, for people and scripts."""
        if "stats" in self.items:
            pairs = " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in sorted(stats.items()))
            self.write(f"{prog}: stats: {pairs}")

    def block_executed(self, tb: object, state: object) -> None:
        if "cpu" in self.items:
            self.write(self.dump_registers(state))
        if "exec" in self.items:
            self.write(f"Trace 0: [{tb.flags:08x}/{tb.pc:016x}/00000000/00000000]")


def _hex_dump(code: bytes, pc: int) -> list[str]:
    """in_asm without a disassembler: the block's bytes."""
    return [f"0x{pc:016x}:  {code.hex()}"]


def _no_registers(state: object) -> str:
    return f" pc       {state.pc:016x}"

