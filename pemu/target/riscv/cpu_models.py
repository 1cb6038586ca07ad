"""The RISC-V CPU models ``-cpu`` accepts.  Both are the same hart today: RV64GC with
Zba/Zbb/Zbs, Sstc, Sv39/48/57 and 16 PMP entries (see docs/RISCV.md)."""

from __future__ import annotations

from pemu.qom.registry import CPU, TypeInfo, register

ISA_SUMMARY = "RV64IMAFDC_Zicsr_Zifencei_Zihintpause_Zba_Zbb_Zbs_Sstc"

register(TypeInfo("rv64", CPU, f"generic {ISA_SUMMARY} hart", arch="riscv64",
                  is_default=True))
register(TypeInfo("max", CPU, "every extension pemu implements (the same hart as rv64)",
                  arch="riscv64"))
