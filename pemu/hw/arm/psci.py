"""PSCI 1.1 over the HVC/SMC conduit, as QEMU implements it for its virt board without
EL2/EL3 firmware: the calls a Linux kernel makes to start, stop and power off CPUs and
the machine.

Function IDs are SMC32 (0x84...) or SMC64 (0xC4...); results go in x0.  The board gives
the power actions (``power_off``, ``reset``); CPUs are found by their MPIDR affinity.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.target.aarch64.system_cpu import Aarch64CPU

PSCI_VERSION = 0x8400_0000
CPU_SUSPEND = 0x01
CPU_OFF = 0x02
CPU_ON = 0x03
AFFINITY_INFO = 0x04
MIGRATE_INFO_TYPE = 0x06
SYSTEM_OFF = 0x08
SYSTEM_RESET = 0x09
PSCI_FEATURES = 0x0A
SUPPORTED = {0x00, CPU_SUSPEND, CPU_OFF, CPU_ON, AFFINITY_INFO, MIGRATE_INFO_TYPE,
             SYSTEM_OFF, SYSTEM_RESET, PSCI_FEATURES}

VERSION_1_1 = 0x0001_0001  # what QEMU 7.2 reports
SUCCESS, NOT_SUPPORTED, INVALID_PARAMS, ALREADY_ON = 0, -1, -2, -4
AFFINITY_ON, AFFINITY_OFF = 0, 1
MIGRATE_NOT_REQUIRED = 2  # no Trusted OS
MASK64 = 0xFFFF_FFFF_FFFF_FFFF


class Psci:
    """The PSCI firmware of one machine."""

    def __init__(self, cpus: list[Aarch64CPU], power_off: Callable[[], None],
                 reset: Callable[[], None]) -> None:
        self.cpus = cpus
        self.power_off = power_off
        self.reset = reset

    def handle(self, cpu: Aarch64CPU, imm: int) -> bool:
        """The conduit (HVC/SMC #imm): True when the call was PSCI's (x0 written).  Other
        SMCCC calls answer NOT_SUPPORTED, as QEMU's do."""
        fid = cpu.state.x(0)
        if imm != 0:
            return False
        result = self.call(cpu, fid, cpu.state.x(1), cpu.state.x(2), cpu.state.x(3))
        if result is not None:
            cpu.state.set_x(0, result & MASK64)
        return True

    def _find(self, mpidr: int) -> Aarch64CPU | None:
        aff = mpidr & 0xFF_00FF_FFFF
        for c in self.cpus:
            if c.mpidr & 0xFF_00FF_FFFF == aff:
                return c
        return None

    def call(self, cpu: Aarch64CPU, fid: int, a1: int, a2: int, a3: int) -> int | None:
        fid &= 0xFFFF_FFFF
        is64 = fid & 0x4000_0000
        if fid & 0xBFFF_FF00 != 0x8400_0000:
            return NOT_SUPPORTED  # not PSCI: an unknown SMCCC service
        if not is64:
            a1, a2, a3 = a1 & 0xFFFF_FFFF, a2 & 0xFFFF_FFFF, a3 & 0xFFFF_FFFF
        func = fid & 0xFF
        if func == 0x00:
            return VERSION_1_1
        if func == CPU_SUSPEND:
            cpu.wait_for_interrupt()  # a standby state: WFI
            return SUCCESS
        if func == CPU_OFF:
            cpu.power_off()
            return None
        if func == CPU_ON:
            target = self._find(a1)
            if target is None:
                return INVALID_PARAMS
            if not target.powered_off:
                return ALREADY_ON
            target.power_on(a2, a3)
            return SUCCESS
        if func == AFFINITY_INFO:
            target = self._find(a1)
            if target is None or a2 != 0:
                return INVALID_PARAMS
            return AFFINITY_OFF if target.powered_off else AFFINITY_ON
        if func == MIGRATE_INFO_TYPE:
            return MIGRATE_NOT_REQUIRED
        if func == SYSTEM_OFF:
            self.power_off()
            return None
        if func == SYSTEM_RESET:
            self.reset()
            return None
        if func == PSCI_FEATURES:
            wanted = a1 & 0xFFFF_FFFF
            ok = wanted & 0xBFFF_FF00 == 0x8400_0000 and wanted & 0xFF in SUPPORTED
            return SUCCESS if ok else NOT_SUPPORTED
        return NOT_SUPPORTED


__all__ = ["Psci"]
