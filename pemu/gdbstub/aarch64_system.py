"""Debugging the Arm ``virt`` board (``-s``, ``-S``, ``-gdb tcp::PORT``): one thread per
vCPU, the aarch64 target description (core and FPU features, gdbstub/aarch64.py).

Stopping, memory access, Ctrl-C, detach and kill are the TCG board stub's
(riscv_system.RiscvSystemTarget: the monitor's pause gate holds the vCPUs); this
class gives the AArch64 side: registers (CPSR is the whole PSTATE here: NZCV, DAIF,
EL and SPSel, as QEMU reports it in system mode; the EL1 system registers that place
the guest in a feature of their own, read-only), single steps (one instruction
translated and run on the stub's thread, then the interrupt GDB would see next), and
breakpoints.  The A64 translator has no breakpoint checks yet, so ``continue`` with
breakpoints set steps the stopped vCPU on the stub's thread until one is reached (the
other vCPUs stay stopped); without breakpoints it runs the machine at full speed.
Watchpoints are not offered (GDB then says so instead of missing them).
"""

from __future__ import annotations

import threading

from pemu import threads
from pemu.gdbstub.aarch64 import (
    CORE_BYTES,
    CPSR_REGNUM,
    FPCR_REGNUM,
    Aarch64Registers,
    target_xml,
)
from pemu.gdbstub.riscv_system import RiscvSystemTarget
from pemu.gdbstub.server import serve
from pemu.gdbstub.target import BP_HARDWARE, BP_SOFTWARE, SIGINT, TargetError
from pemu.target.aarch64 import cpu_state as a64
from pemu.target.aarch64.exceptions import Aarch64Trap

STEPS_BETWEEN_CHECKS = 256  # a stepped continue looks for Ctrl-C this often
# EL1 system registers GDB shows, by QEMU's names (``p $VBAR`` works on both: QEMU
# names the registers it shares with AArch32 without the _EL1), in a feature of their
# own after the FPU's registers; read-only here.  GDB name -> pemu's register name.
SYSREGS = {"SCTLR": "SCTLR_EL1", "TCR_EL1": "TCR_EL1", "TTBR0_EL1": "TTBR0_EL1",
           "TTBR1_EL1": "TTBR1_EL1", "MAIR_EL1": "MAIR_EL1", "VBAR": "VBAR_EL1",
           "ESR_EL1": "ESR_EL1", "FAR_EL1": "FAR_EL1", "ELR_EL1": "ELR_EL1",
           "SPSR_EL1": "SPSR_EL1", "SP_EL0": "SP_EL0", "SP_EL1": "SP_EL1"}
SYSREG_NAMES = tuple(SYSREGS)
FIRST_SYSREG = FPCR_REGNUM + 1
SP_BANKS = {"SP_EL0": 0, "SP_EL1": 1}


def sysregs_xml() -> str:
    regs = "".join(f'  <reg name="{name}" bitsize="64" type="uint64" '
                   f'regnum="{FIRST_SYSREG + i}" group="system"/>\n'
                   for i, name in enumerate(SYSREG_NAMES))
    return ('<?xml version="1.0"?>\n<!DOCTYPE feature SYSTEM "gdb-target.dtd">\n'
            f'<feature name="org.qemu.gdb.arm.sys.regs">\n{regs}</feature>\n')


def system_target_xml() -> dict[str, str]:
    """The user-mode description (core, FPU) plus the system registers."""
    files = target_xml()
    files["system-registers.xml"] = sysregs_xml()
    files["target.xml"] = files["target.xml"].replace(
        "</target>", '  <xi:include href="system-registers.xml"/>\n</target>')
    return files


class Aarch64SystemTarget(RiscvSystemTarget):
    arch = "aarch64"

    def __init__(self, monitor_machine) -> None:  # noqa: ANN001 - ArmBoardMonitor
        super().__init__(monitor_machine)
        self._xml = system_target_xml()
        self._cancel = threading.Event()
        self._stepping = False

    def _cpu(self, thread: int):
        return self._hart(thread)

    def thread_description(self, thread: int) -> str:
        c = self._cpu(thread)
        return f"CPU#{c.index} [{'halted' if c.waiting else 'running'}]"

    # -- registers --------------------------------------------------------------------------
    def read_registers(self, thread: int) -> bytes:
        c = self._cpu(thread)
        core = Aarch64Registers.read_core(c.state)
        return core[:CORE_BYTES - 4] + c.pstate().to_bytes(4, "little")

    def write_registers(self, thread: int, data: bytes) -> None:
        Aarch64Registers.write_core(self._cpu(thread).state, data[:CORE_BYTES])

    def read_register(self, thread: int, regno: int) -> bytes:
        c = self._cpu(thread)
        if regno == CPSR_REGNUM:
            return c.pstate().to_bytes(4, "little")
        if FIRST_SYSREG <= regno < FIRST_SYSREG + len(SYSREG_NAMES):
            name = SYSREGS[SYSREG_NAMES[regno - FIRST_SYSREG]]
            value = c.read_sp(SP_BANKS[name]) if name in SP_BANKS else c.regs.get(name, 0)
            return value.to_bytes(8, "little")
        return Aarch64Registers.read(c.state, regno)

    def write_register(self, thread: int, regno: int, value: bytes) -> None:
        c = self._cpu(thread)
        if regno >= FIRST_SYSREG:
            raise TargetError("the system registers are read-only here", 22)
        if regno == CPSR_REGNUM:  # the flags; EL and the masks change by exceptions only
            c.state.nzcv = int.from_bytes(value, "little") & 0xF000_0000
            return
        Aarch64Registers.write(c.state, regno, value)

    # -- points -----------------------------------------------------------------------------
    def insert_point(self, kind: int, addr: int, length: int) -> bool:
        if kind not in (BP_SOFTWARE, BP_HARDWARE):
            return False
        self.breakpoints.add(addr)
        return True

    def _install_points(self) -> None:
        """Breakpoints are checked by the stepping loop: nothing goes into the CPUs."""

    # -- execution --------------------------------------------------------------------------
    def _step_one(self, hart) -> None:  # noqa: ANN001 - an Aarch64CPU
        """Execute one instruction of ``hart`` on this thread, then take the interrupt
        that is pending and unmasked, as the CPU would before the next one."""
        S = hart.slots
        translator = self.board.translator
        try:
            flags = hart.block_flags()
            page = hart.mmu.exec_page(S[a64.PC], translator.fetch_index(flags))
            tb = translator.translate(hart, S[a64.PC], flags, page, max_insns=1)
            S[a64.PC] = tb.fn(S, hart)
        except Aarch64Trap as trap:
            hart.do_exception(trap)
        hart.cpu_exec_interrupt()
        return None

    def resume(self, step_thread: int | None) -> None:
        if step_thread is not None:
            self._step_one(self._cpu(step_thread))
            self._report_stop(step_thread, None)
            return
        if not self.breakpoints:
            with self._hit_lock:
                self._hit_reported = False
            self.vm.cont()  # full speed; Ctrl-C closes the gate again
            return
        self._cancel.clear()
        self._stepping = True
        threads.start_daemon(self._step_to_breakpoint, self.stopped_hart + 1,
                             name="pemu-gdb-steps")

    def _step_to_breakpoint(self, thread: int) -> None:
        cpu = self._cpu(thread)
        try:
            while True:
                for _ in range(STEPS_BETWEEN_CHECKS):
                    self._step_one(cpu)
                    if cpu.slots[a64.PC] in self.breakpoints:
                        self._stepping = False
                        self._report_stop(thread, None)
                        return
                if self._cancel.is_set():
                    self._stepping = False
                    self._report_stop(thread, None, SIGINT)
                    return
        except Exception as e:  # noqa: BLE001 - an emulator bug: stop, do not hang GDB
            self._stepping = False
            self._report_stop(thread, None, SIGINT)
            raise TargetError(f"stepping failed: {e}") from e

    def interrupt(self) -> None:
        if self._stepping:
            self._cancel.set()  # the stepping thread reports the stop
            return
        super().interrupt()

    def detach(self) -> None:
        self._cancel.set()
        super().detach()


def start_aarch64_gdbstub(monitor_machine, spec: str, wait: bool = False):  # noqa: ANN001
    """``-gdb SPEC`` / ``-s`` for the Arm virt board."""
    target = Aarch64SystemTarget(monitor_machine)
    return target, serve(target, spec, wait)


__all__ = ["Aarch64SystemTarget", "start_aarch64_gdbstub"]
