"""A whole machine to a stream and back: RAM, devices, CPUs (stream.py's records).

A board offers what the stream needs through ``MigratableMachine``; nothing here knows
a device.  Devices are named in the stream as QEMU names its sections: the VMState
name plus an instance id, the n-th device of that name in the board's order (eight
virtio-mmio slots are ``virtio-mmio`` 0..7).  Every device the machine declares must
be in the stream exactly once, and the stream must name no other.

The caller pauses the machine around both directions (QEMU's save-vm/restore-vm
states): nothing may run guest code while RAM and CPU state are read or replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from pemu.hw.core import BlockerMessage, Device
from pemu.memory.address_space import RAMBlock
from pemu.memory.shared_ram import FILE, RamBacking
from pemu.migration.errors import MigrationError
from pemu.migration.ram import apply_ram, nonzero_pages, send_pages, zero_ram
from pemu.migration.stream import (
    SHARED_BY_CHANNEL,
    DeviceRecord,
    EndRecord,
    RamRecord,
    SharedRamRecord,
    StreamError,
    StreamReader,
    StreamWriter,
)
from pemu.migration.vmstate import load_device, save_device


class MigratableMachine(Protocol):
    def migration_description(self) -> str:
        """What must be equal on both sides: board, RAM layout, harts."""

    def ram_blocks(self) -> list[RAMBlock]: ...

    def migratable_devices(self) -> list[Device]:
        """Every device with declared state, in load order (CPUs last)."""

    def migration_blockers(self) -> list[str]:
        """Devices whose state cannot be carried: nothing is saved while there are any."""

    def migration_pre_save(self) -> None:
        """Quiesce what the stream cannot carry (in-flight block requests)."""

    def migration_post_load(self) -> None:
        """After a complete load: drop what was derived from the old RAM (translated
        code) and make the devices act on their new state."""


def device_keys(devices: Iterable[Device]) -> list[tuple[str, int, Device]]:
    """(section id, instance id, device) for the devices that declare state."""
    seen: dict[str, int] = {}
    out = []
    for dev in devices:
        if dev.vmstate is None:
            continue  # stateless (sifive_test, virtio-rng): nothing to carry
        name = dev.vmstate.name
        out.append((name, seen.get(name, 0), dev))
        seen[name] = seen.get(name, 0) + 1
    return out


def blocked_reason(machine: MigratableMachine) -> str | None:
    """Why the machine's state cannot be saved or loaded (QEMU's words), or None."""
    blockers = machine.migration_blockers()
    if not blockers:
        return None
    more = f" (and {len(blockers) - 1} more)" if len(blockers) > 1 else ""
    if isinstance(blockers[0], BlockerMessage):
        return f"{blockers[0]}{more}"
    return f"State blocked by non-migratable device '{blockers[0]}'{more}"


def write_devices(writer: StreamWriter, machine: MigratableMachine) -> None:
    for name, instance, dev in device_keys(machine.migratable_devices()):
        writer.device(name, instance, save_device(dev))


def save_machine(machine: MigratableMachine, writer: StreamWriter) -> dict[str, int]:
    """The complete state (machine paused): header, non-zero RAM, devices, end.
    Returns statistics: pages sent and zero pages skipped."""
    machine.migration_pre_save()
    writer.header(machine.migration_description())
    sent = zeros = 0
    for block in machine.ram_blocks():
        pages = list(nonzero_pages(block))
        zeros += block.size // 4096 - len(pages)
        s, _ = send_pages(writer, block, pages, skip_zero=True)
        sent += s
    write_devices(writer, machine)
    writer.end()
    return {"normal": sent, "duplicate": zeros}


class MachineLoader:
    """Applies records to a paused machine; ``finish`` checks that all devices came.

    RAM starts zeroed (``begin``), except a block whose shared memory backend is not
    mapped yet (a pemu started with ``-incoming``): its first record decides.  An S
    record (CPR) maps the shared memory with the guest's RAM in it as it is; an R or
    Z record, or the end of the stream, zeroes it first.  ``received`` are the
    memfds the cpr channel handed over, by block name."""

    def __init__(self, machine: MigratableMachine,
                 received: dict[str, RamBacking] | None = None) -> None:
        self.machine = machine
        self.blocks = {b.name: b for b in machine.ram_blocks()}
        self.devices = {(n, i): d for n, i, d in device_keys(machine.migratable_devices())}
        self.loaded: set[tuple[str, int]] = set()
        self.received = received or {}
        self._unsettled: set[str] = set()  # blocks whose RAM is not decided yet
        self._written: set[str] = set()  # blocks with RAM records applied

    def begin(self, reader: StreamReader) -> None:
        why = blocked_reason(self.machine)
        if why is not None:
            raise StreamError(why)
        description = reader.header()
        ours = self.machine.migration_description()
        if description != ours:
            raise StreamError(f"the state is of another machine ({description}), "
                              f"this one is {ours}")
        for block in self.blocks.values():
            if block.backing is not None and not block.backing_attached:
                self._unsettled.add(block.name)
            else:
                zero_ram(block)

    def settle_ram(self) -> None:
        """Every block not decided yet starts from zero (in its own shared memory)."""
        for name in sorted(self._unsettled):
            zero_ram(self.blocks[name])
        self._unsettled.clear()

    def _keep_shared(self, rec: SharedRamRecord) -> None:
        block = self.blocks.get(rec.block)
        if block is None or block.size != rec.size:
            raise StreamError(f"RAM block {rec.block!r} of {rec.size} bytes left in "
                              "place: this machine has no such block")
        if rec.block in self._written:
            raise StreamError(f"RAM block {rec.block!r}: left in place after RAM records")
        if rec.how == SHARED_BY_CHANNEL:
            backing = self.received.pop(rec.block, None)
            if backing is None:
                raise StreamError(f"RAM block {rec.block!r} stays in a memfd, but none "
                                  "came on the cpr channel")
            block.attach_backing(backing)
        else:
            own = block.backing
            if own is None or own.kind != FILE or not own.shared or own.path != rec.path:
                raise StreamError(f"RAM block {rec.block!r} stays in the file {rec.path}: "
                                  "start this pemu with the same memory-backend-file "
                                  "(mem-path, share=on)")
            block.attach_backing()  # the file's contents are the guest's RAM
        self._unsettled.discard(rec.block)

    def apply(self, rec: RamRecord | DeviceRecord | SharedRamRecord) -> None:
        if isinstance(rec, SharedRamRecord):
            self._keep_shared(rec)
            return
        if isinstance(rec, RamRecord):
            if rec.block in self._unsettled:
                zero_ram(self.blocks[rec.block])
                self._unsettled.discard(rec.block)
            self._written.add(rec.block)
            apply_ram(self.blocks, rec)
            return
        key = (rec.idstr, rec.instance_id)
        dev = self.devices.get(key)
        if dev is None:
            raise StreamError(f"state of unknown device {rec.idstr!r} instance "
                              f"{rec.instance_id}")
        if key in self.loaded:
            raise StreamError(f"device {rec.idstr!r} instance {rec.instance_id} twice")
        load_device(dev, rec.section)
        self.loaded.add(key)

    def apply_all(self, reader: StreamReader,
                  on_record: Callable[[], None] | None = None) -> None:
        """Every record up to the end record, then ``finish``."""
        while True:
            rec = reader.record()
            if isinstance(rec, EndRecord):
                break
            self.apply(rec)
            if on_record is not None:
                on_record()
        self.finish()

    def finish(self) -> None:
        self.settle_ram()
        missing = sorted(set(self.devices) - self.loaded)
        if missing:
            name, inst = missing[0]
            raise StreamError(f"the stream ends without the state of {name!r} instance "
                              f"{inst}")
        self.machine.migration_post_load()


def load_machine(machine: MigratableMachine, reader: StreamReader,
                 on_record: Callable[[], None] | None = None) -> None:
    """Read a whole stream into the (paused) machine.  ``StreamError`` or
    ``MigrationError`` if it is refused; the machine is then in no useful state (the
    caller reverts it, as loadvm does, or exits, as an incoming migration does)."""
    loader = MachineLoader(machine)
    loader.begin(reader)
    loader.apply_all(reader, on_record)


__all__ = ["MachineLoader", "MigratableMachine", "MigrationError", "device_keys",
           "load_machine", "save_machine", "write_devices"]
