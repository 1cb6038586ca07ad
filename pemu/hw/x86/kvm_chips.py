"""The in-kernel devices of a KVM VM as one migratable device: PIC pair, IOAPIC, PIT,
kvmclock (QEMU has kvm-i8259, kvm-ioapic, kvm-pit and kvmclock for them).

Their state lives in the kernel: each field is a property whose read is a KVM_GET_*
ioctl on the VM and whose write stages the value; ``vmstate_post_load`` hands the
staged state to KVM.  The kernel's struct layouts (pemu/accel/kvm/abi.py) are the wire
format.  kvmclock is saved at the moment the machine stopped and set to that value on
load, so the guest's clock continues where it stopped: the downtime does not show as a
jump (QEMU's kvmclock does the same).  The PIT's channel load times are host
CLOCK_MONOTONIC stamps; both ends of a migration on one host share that clock.
"""

from __future__ import annotations

import ctypes
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
    vmstate = VMState("kvm-chips", 1, (
        *(VMStateField(name, "bytes", max=CHIP_SIZE) for name in _CHIPS),
        VMStateField("pit", "bytes", max=PIT_SIZE),
        VMStateField("clock_ns", "u64"),
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
            self.vm.set_pit(abi.KvmPitState2.from_buffer_copy(staged["pit"]))  # type: ignore[arg-type]
        if "clock_ns" in staged:
            self.vm.set_clock(int(staged["clock_ns"]))  # type: ignore[call-overload]


def _chip_property(name: str, chip: int) -> property:
    def get(self: KVMChipsState) -> bytes:
        return bytes(self.vm.get_irqchip(chip).chip)

    def set_(self: KVMChipsState, value: bytes) -> None:
        self._staged[name] = value

    return property(get, set_)


for _name, _chip in _CHIPS.items():
    setattr(KVMChipsState, _name, _chip_property(_name, _chip))

__all__ = ["KVMChipsState"]
