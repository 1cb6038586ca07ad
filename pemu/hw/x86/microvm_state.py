"""The microvm board as a ``MigratableMachine`` (pemu/migration/machine_state.py).

What the stream carries, in load order:
  kvm-chips    in-kernel PIC pair, IOAPIC, PIT and kvmclock (pemu/hw/x86/kvm_chips.py)
  serial16550  the COM1 UART
  virtio-mmio  each used slot's transport, then its device
  x86-cpu      every vCPU last (pemu/hw/x86/vcpu_vmstate.py): its LAPIC and
               pending events go in after the chips they talk to
The i8042 and the POST port keep no state.

Dirty pages: KVM's dirty log (pemu/accel/kvm/dirty_log.py) feeds the blocks' ``dirty``
sets that device writes already go to; the monitor's pre-copy loop calls
``start_dirty_log``, ``sync_dirty_log`` before each harvest and ``stop_dirty_log``.
"""

from __future__ import annotations

from pemu.accel.kvm.dirty_log import DirtyLog, LoggedSlot
from pemu.hw.core import BlockerMessage, Device
from pemu.hw.x86.kvm_chips import KVMChipsState
from pemu.hw.x86.vcpu_vmstate import X86VCPUState


class MigratableMicrovm:
    """Mixed into ``Microvm``; needs its ``vm``, ``vcpus``, ``ram_slots`` (RAM block,
    KVM slot), ``serial`` and ``virtio`` slots.  ``init_migration`` once they exist."""

    # The softmmu's TLBs that a TCG board flushes around dirty-log harvests: none here
    # (guest stores are logged by KVM, not by TLB fills).
    harts: tuple = ()

    def init_migration(self) -> None:
        supported = set(self.system.msr_index_list())  # type: ignore[attr-defined]
        self.kvm_chips = KVMChipsState(self.vm)  # type: ignore[attr-defined]
        self.vcpu_states = [X86VCPUState(v, supported)
                            for v in self.vcpus]  # type: ignore[attr-defined]
        self.dirty_log = DirtyLog(self.vm, [LoggedSlot(slot, block) for block, slot  # type: ignore[attr-defined]
                                            in self.ram_slots])  # type: ignore[attr-defined]

    # -- MigratableMachine ------------------------------------------------------------------
    def migration_description(self) -> str:
        blocks = ",".join(f"{b.name}:0x{b.size:x}" for b in self.ram_blocks())
        return f"x86_64 microvm vcpus={len(self.vcpus)} ram={blocks}"  # type: ignore[attr-defined]

    def vm_clock_ns(self) -> int:
        """kvmclock: what a snapshot records as VM CLOCK."""
        return self.vm.get_clock()  # type: ignore[attr-defined]

    def ram_blocks(self) -> list:
        return [block for block, _ in self.ram_slots]  # type: ignore[attr-defined]

    def _virtio_devices(self) -> list[Device]:
        return [s.transport.device for s in self.virtio  # type: ignore[attr-defined]
                if getattr(s.transport, "device", None) is not None]

    def migratable_devices(self) -> list:
        devices: list = [self.kvm_chips, self.serial]  # type: ignore[attr-defined]
        for slot in self.virtio:  # type: ignore[attr-defined]
            devices.append(slot.transport)
            if getattr(slot.transport, "device", None) is not None:
                devices.append(slot.transport.device)
        return [*devices, *self.vcpu_states]

    def migration_blockers(self) -> list[str]:
        blockers: list[str] = []
        for dev in self._virtio_devices():
            if getattr(dev, "blocks_migration", False):
                blockers.append(BlockerMessage(dev.migration_blocker))  # type: ignore[attr-defined]
            elif not getattr(dev, "migratable", True):
                blockers.append(dev.id or dev.type_name)
        return blockers

    def migration_pre_save(self) -> None:
        for dev in self._virtio_devices():  # in-flight block requests land in RAM first
            drain = getattr(dev, "drain", None)
            if drain is not None:
                drain()

    def migration_post_load(self) -> None:
        for dev in self._virtio_devices():
            reset = getattr(dev, "transport_reset", None)  # vsock: the host side is gone
            if reset is not None:
                reset()

    def announce_nics(self) -> None:
        for dev in self._virtio_devices():
            announce = getattr(dev, "announce", None)
            if announce is not None:
                announce()

    # -- dirty pages under KVM (the monitor's pre-copy loop) -----------------------------------
    def start_dirty_log(self) -> None:
        self.dirty_log.start()

    def sync_dirty_log(self) -> None:
        self.dirty_log.harvest()

    def stop_dirty_log(self) -> None:
        self.dirty_log.stop()


__all__ = ["MigratableMicrovm"]
