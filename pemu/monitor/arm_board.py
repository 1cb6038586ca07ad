"""The monitor's view of the Arm ``virt`` board under TCG.

Everything that does not depend on the architecture (the pause gate in front of each
vCPU's ``should_stop``, drives, PCI hot-plug, -no-shutdown, the SHUTDOWN events) is
the TCG board adapter's (riscv_board.RiscvBoardMonitor, which only names the
architecture for its CPU registers and page walks); this class gives the AArch64
side: CPU identity, ``info registers`` and virtual-address reads through the
stage 1 tables.  Migration and savevm use the board's own declarations
(hw/arm/cpu_vmstate.py and the devices').
"""

from __future__ import annotations

from pemu.accel.tcg.softmmu import ACCESS_READ
from pemu.monitor.errors import QMPError
from pemu.monitor.machine import CPUInfo
from pemu.monitor.riscv_board import RiscvBoardMonitor
from pemu.target.aarch64.exceptions import Aarch64Trap

SHOWN_SYSREGS = ("SCTLR_EL1", "TCR_EL1", "TTBR0_EL1", "TTBR1_EL1", "MAIR_EL1", "VBAR_EL1",
                 "ESR_EL1", "FAR_EL1", "ELR_EL1", "SPSR_EL1")


class ArmBoardMonitor(RiscvBoardMonitor):
    target = "aarch64"

    def __init__(self, board, cfg) -> None:  # noqa: ANN001 - ArmVirtBoard, SystemConfig
        super().__init__(board, cfg)
        self.cpu_type = f"{board.model.name}-arm-cpu"  # QEMU's QOM type of the CPU

    @staticmethod
    def kick_cpu(hart) -> None:  # noqa: ANN001 - an Aarch64CPU
        hart.request_exit()
        hart.wakeup.set()

    def cpus(self) -> list[CPUInfo]:
        return [CPUInfo(i, c.state.pc, thread_id=self.main_thread_id, halted=c.waiting,
                        props={"core-id": i})
                for i, c in enumerate(self.board.harts)]

    def cpu_registers(self, index: int) -> str:
        """As QEMU's ``info registers`` lays them out (X00..X30 three to a line, SP,
        PSTATE with its flags and EL), then the EL1 system registers that place the
        guest: translation, vectors, the last exception."""
        c = self._hart(index)
        state = c.state
        out = f" PC={state.pc:016x} "
        for i in range(32):
            out += f" SP={state.sp:016x}\n" if i == 31 else \
                f"X{i:02d}={state.x(i):016x}" + (" " if (i + 2) % 3 else "\n")
        pstate = c.pstate()
        flags = "".join(ch if pstate >> bit & 1 else "-"
                        for ch, bit in (("N", 31), ("Z", 30), ("C", 29), ("V", 28)))
        out += f"PSTATE={pstate:08x} {flags} EL{c.el}{'h' if c.spsel else 't'}\n"
        for name in SHOWN_SYSREGS:
            out += f"{name}={c.regs.get(name, 0):016x}\n"
        return out

    @staticmethod
    def _virt_to_phys(hart, vaddr: int) -> int:  # noqa: ANN001 - an Aarch64CPU
        """A debugger's walk of the current EL's stage 1 tables (AT's probe: no TLB
        fill, no guest fault)."""
        result = hart.regime.probe(vaddr, ACCESS_READ, hart.el)
        if isinstance(result, Aarch64Trap):
            raise ValueError(f"virtual address 0x{vaddr:x} is not mapped")
        return result[0]

    def info_tlb(self, cpu_index: int) -> str:
        raise QMPError("info tlb is not implemented for AArch64")


__all__ = ["ArmBoardMonitor"]
