"""The RISC-V CPU models ``-cpu`` accepts: one hart (RV64GC, Sstc, Sv39/48/57, 16 PMP
entries: see docs/RISCV.md) whose optional extensions each model sets, and which
``-cpu MODEL,ext=on|off`` properties change (target/riscv/isa.py)."""

from __future__ import annotations

from pemu.qom.registry import CPU, TypeInfo, register
from pemu.target.riscv.isa import DEFAULT_ISA, MAX_ISA, parse_cpu

register(TypeInfo("rv64", CPU, f"generic {DEFAULT_ISA.isa_string} hart", arch="riscv64",
                  is_default=True))
register(TypeInfo("max", CPU, f"every extension pemu implements: {MAX_ISA.isa_string}",
                  arch="riscv64"))
register(TypeInfo("rva22s64", CPU, "the RVA22S64 profile: " + parse_cpu("rva22s64").isa_string,
                  arch="riscv64"))
register(TypeInfo("rva23s64", CPU, "the RVA23S64 profile: " + parse_cpu("rva23s64").isa_string,
                  arch="riscv64"))
