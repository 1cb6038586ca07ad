"""The in-kernel devices of a KVM VM as one migratable device: PIC pair, IOAPIC, PIT,
kvmclock (QEMU has kvm-i8259, kvm-ioapic, kvm-pit and kvmclock for them).

Their state lives in the kernel: each field is a property whose read is a KVM_GET_*
ioctl on the VM and whose write stages the value; ``vmstate_post_load`` hands the
staged state to KVM.  The kernel's struct layouts (pemu/accel/kvm/abi.py) are the wire
format.  kvmclock is saved at the moment the machine stopped and set to that value on
load, so the guest's clock continues where it stopped: the downtime does not show as a
jump (QEMU's kvmclock does the same).  The PIT's channel load times are host
CLOCK_MONOTONIC stamps (the kernel's ktime_get): the state also carries that clock at
the save (``pit_clock_ns``, version 2), and the loader moves every load time by how
far the clock has gone since, so the stamps mean the same after a downtime, a savevm
loaded days later, or on another host whose clock has another origin (QEMU's kvm-pit
converts them the same way).  A version 1 state keeps its stamps.  KVM_SET_PIT2 itself
restarts the count of channels 1 and 2, and of channel 0 when it runs a timer mode,
from the load (a periodic tick shifts its phase by at most one period, as under
QEMU); only a stopped channel 0 keeps the stamp it is given.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Mapping

from pemu.accel.kvm import abi
from pemu.hw.core import Device, VMState, VMStateField, VMStateInvalid

CHIP_SIZE = ctypes.sizeof(abi.KvmIrqchip) - 8  # the union after chip_id and pad
_CHIPS = {"pic_master": abi.KVM_IRQCHIP_PIC_MASTER, "pic_slave": abi.KVM_IRQCHIP_PIC_SLAVE,
          "ioapic": abi.KVM_IRQCHIP_IOAPIC}
PIT_SIZE = ctypes.sizeof(abi.KvmPitState2)


class KVMChipsState(Device):
    """``KVMChipsState(vm)`` for a VM with KVM_CREATE_IRQCHIP and KVM_CREATE_PIT2."""

    type_name = "kvm-chips"
    vmstate = VMState("kvm-chips", 2, (
        *(VMStateField(name, "bytes", max=CHIP_SIZE) for name in _CHIPS),
        VMStateField("pit", "bytes", max=PIT_SIZE),
        VMStateField("clock_ns", "u64"),
        VMStateField("pit_clock_ns", "u64", since=2),
    ))

    def __init__(self, vm) -> None:  # vm: KVMVM
        super().__init__(id="kvm-chips")
        self.vm = vm
        self._staged: dict[str, object] = {}

    @property
    def pit(self) -> bytes:
        return bytes(self.vm.get_pit())

    @pit.setter
    def pit(self, value: bytes) -> None:
        self._staged["pit"] = value

    @property
    def pit_clock_ns(self) -> int:
        return time.clock_gettime_ns(time.CLOCK_MONOTONIC)

    @pit_clock_ns.setter
    def pit_clock_ns(self, value: int) -> None:
        self._staged["pit_clock_ns"] = value

    @property
    def clock_ns(self) -> int:
        return self.vm.get_clock()

    @clock_ns.setter
    def clock_ns(self, value: int) -> None:
        self._staged["clock_ns"] = value

    def vmstate_check(self, state: Mapping[str, object]) -> None:
        for name in _CHIPS:
            if len(state.get(name, b"")) != CHIP_SIZE:  # type: ignore[arg-type]
                raise VMStateInvalid(name, f"not a {CHIP_SIZE}-byte irqchip state")
        if len(state.get("pit", b"")) != PIT_SIZE:  # type: ignore[arg-type]
            raise VMStateInvalid("pit", f"not a {PIT_SIZE}-byte kvm_pit_state2")

    def vmstate_post_load(self) -> None:
        staged, self._staged = self._staged, {}
        for name, chip in _CHIPS.items():
            data = staged.get(name)
            if data:
                state = abi.KvmIrqchip(chip_id=chip)
                ctypes.memmove(ctypes.addressof(state.chip), data, CHIP_SIZE)
                self.vm.set_irqchip(state)
        if staged.get("pit"):
            pit = abi.KvmPitState2.from_buffer_copy(staged["pit"])  # type: ignore[arg-type]
            saved_at = int(staged.get("pit_clock_ns", 0))  # type: ignore[call-overload]
            if saved_at:
                rebase_pit(pit, time.clock_gettime_ns(time.CLOCK_MONOTONIC) - saved_at)
            self.vm.set_pit(pit)
        if "clock_ns" in staged:
            self.vm.set_clock(int(staged["clock_ns"]))  # type: ignore[call-overload]


def rebase_pit(pit: abi.KvmPitState2, shift_ns: int) -> None:
    """Move every channel's load time by ``shift_ns`` (the host clock's advance since
    the state was saved): the counters read as they did at the save."""
    for channel in pit.channels:
        channel.count_load_time += shift_ns


def _chip_property(name: str, chip: int) -> property:
    def get(self: KVMChipsState) -> bytes:
        return bytes(self.vm.get_irqchip(chip).chip)

    def set_(self: KVMChipsState, value: bytes) -> None:
        self._staged[name] = value

    return property(get, set_)


for _name, _chip in _CHIPS.items():
    setattr(KVMChipsState, _name, _chip_property(_name, _chip))

__all__ = ["KVMChipsState", "rebase_pit"]
