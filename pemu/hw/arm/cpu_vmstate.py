"""An AArch64 CPU's state and the system counter as the migration layer sees them: one
``VMState`` declaration each, as hw/riscv/hart_vmstate.py does for a RISC-V hart.

The CPU is not a ``Device`` (it is the vCPU loop's ``env``), so its declaration lives
on this view: the state slots that are architectural (X0-X30, SP, PC, NZCV, FPCR,
FPSR, TPIDR_EL0, the exclusive monitor, SP_EL0, V0-V31), PSTATE's EL, SPSel and DAIF,
the banked SP_EL1, WFI and PSCI power, the EL1 system registers (by name: the table
that holds them is a dict), and the two EL1 timers.

What is not state: the exit request, the block flags and the native jump-cache and TLB
addresses (host pointers of this process), the IRQ/FIQ input levels (the GIC drives
them again from its own loaded state), the TLBs and translated code (flushed on load).

The counter is state of the board: its tick count travels, and the receiving counter
continues from it (the guest never sees its counter jump back or leap forward).
"""

from __future__ import annotations

import json

from pemu.hw.core import Device, VMState, VMStateField, VMStateInvalid
from pemu.target.aarch64 import cpu_state as a64
from pemu.target.aarch64.generic_timer import NS_PER_TICK, Counter

# slots that are architectural state, in stream order
STATE_SLOTS = (*range(a64.X0, a64.EXCL_VALUE + 1), a64.EXCL_VALUE_HI, a64.SP_EL0,
               *range(a64.V0, a64.V0 + 64))
SYSREGS_MAX_BYTES = 4096


class Aarch64CpuState(Device):
    type_name = "aarch64-cpu"
    vmstate = VMState("aarch64-cpu", 1, (
        VMStateField("mpidr", "u64", equal=True),
        VMStateField("slots", "u64[]"),
        VMStateField("el", "u8", max=1), VMStateField("spsel", "u8", max=1),
        VMStateField("daif", "u16", max=0x3C0), VMStateField("sp_el1", "u64"),
        VMStateField("wfi", "bool"), VMStateField("powered_off", "bool"),
        VMStateField("sysregs", "bytes", max=SYSREGS_MAX_BYTES),
        VMStateField("timers", "u64[]"),
    ))

    def __init__(self, cpu) -> None:  # noqa: ANN001 - an Aarch64CPU (it imports us not)
        super().__init__(f"cpu{cpu.index}")
        self.cpu = cpu

    @property
    def mpidr(self) -> int:
        return self.cpu.mpidr

    @property
    def slots(self) -> list[int]:
        s = self.cpu.slots
        return [s[i] for i in STATE_SLOTS]

    @slots.setter
    def slots(self, values: list[int]) -> None:
        s = self.cpu.slots
        for i, v in zip(STATE_SLOTS, values, strict=True):
            s[i] = v

    def _attr(name: str) -> property:  # noqa: N805 - a property factory in the body
        return property(lambda self: getattr(self.cpu, name),
                        lambda self, v: setattr(self.cpu, name, v))

    el = _attr("el")
    spsel = _attr("spsel")
    daif = _attr("daif")
    sp_el1 = _attr("sp_el1")
    wfi = _attr("_wfi")
    powered_off = _attr("powered_off")
    del _attr

    @property
    def sysregs(self) -> bytes:
        return json.dumps(self.cpu.regs, sort_keys=True).encode()

    @sysregs.setter
    def sysregs(self, value: bytes) -> None:
        self.cpu.regs = {str(k): int(v) for k, v in json.loads(value).items()}

    @property
    def timers(self) -> list[int]:
        t = self.cpu.timer
        return [t.phys.ctl, t.phys.cval, t.virt.ctl, t.virt.cval]

    @timers.setter
    def timers(self, values: list[int]) -> None:
        t = self.cpu.timer
        t.phys.ctl, t.phys.cval, t.virt.ctl, t.virt.cval = values

    def vmstate_check(self, state) -> None:  # noqa: ANN001 - the loaded field values
        try:
            regs = json.loads(state["sysregs"])
            ok = isinstance(regs, dict) and all(isinstance(v, int) for v in regs.values())
        except ValueError:
            ok = False
        if not ok:
            raise VMStateInvalid("sysregs", "not a table of system registers")
        if len(state["timers"]) != 4:
            raise VMStateInvalid("timers", "want CTL and CVAL of two timers")

    def vmstate_post_load(self) -> None:
        cpu = self.cpu
        cpu._regime = None  # the translation regime follows the loaded registers
        cpu.translation_changed()
        cpu.timer.update()
        cpu.request_exit()


class CounterState(Device):
    """The system counter's tick count (CNTPCT/CNTVCT)."""

    type_name = "arm-system-counter"
    vmstate = VMState("arm-system-counter", 1, (VMStateField("ticks", "u64"),))

    def __init__(self, counter: Counter) -> None:
        super().__init__("counter")
        self.counter = counter

    @property
    def ticks(self) -> int:
        return self.counter.ticks()

    @ticks.setter
    def ticks(self, value: int) -> None:
        self.counter.continue_from(value)


__all__ = ["Aarch64CpuState", "CounterState", "NS_PER_TICK"]
