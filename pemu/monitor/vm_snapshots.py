"""savevm / loadvm / delvm: machine state in the qcow2 images' internal snapshots.

As QEMU does it: every writable disk gets a disk snapshot of the same name, and one of
them (the first, or ``vmstate=`` in QMP) also stores the machine state stream in its
VM state area (qcow2/snapshots.py), so ``qemu-img snapshot -l`` shows its VM SIZE.
The machine is paused while saving or loading (run states save-vm and restore-vm),
block requests in flight are drained and the images flushed first.

loadvm reads and checks the whole state before it changes anything: a damaged or
foreign state leaves the disks and the machine as they were.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

from pemu.block.errors import BlockError
from pemu.block.img.info import snapshot_table_lines  # the qemu-img table layout
from pemu.block.qcow2.driver import Qcow2Node
from pemu.block.qcow2.snapshots import (
    apply_snapshot,
    create_snapshot,
    delete_snapshot,
    read_vm_state,
)
from pemu.migration import MigrationError
from pemu.migration.machine_state import MachineLoader, blocked_reason, save_machine
from pemu.migration.stream import EndRecord, StreamError, StreamReader, StreamWriter, bytes_source
from pemu.monitor.errors import QMPError
from pemu.monitor.machine import RUNNING, MonitoredMachine


def _board(machine: MonitoredMachine):
    board = getattr(machine, "migratable", None)
    if board is None:
        raise QMPError("this machine cannot save its state (no migratable board)")
    return board


def snapshot_disks(machine: MonitoredMachine, only: list[str] | None = None
                   ) -> list[tuple[str, Qcow2Node]]:
    """(drive id, qcow2 node) of the writable disks that take part, in -drive order."""
    out = []
    for drive_id, drive in machine.block.drives.items():
        if only is not None and drive_id not in only and drive.node_name not in only:
            continue
        node = drive.top
        if getattr(node, "read_only", False):
            continue
        if not isinstance(node, Qcow2Node):
            raise QMPError(f"Device '{drive_id}' is writable but does not support snapshots")
        out.append((drive_id, node))
    if only is not None:
        found = {d for d, _ in out} | {machine.block.drives[d].node_name for d, _ in out}
        missing = [n for n in only if n not in found]
        if missing:
            raise QMPError(f"No block device node '{missing[0]}'")
    return out


def _state_disk(disks: list[tuple[str, Qcow2Node]], vmstate: str | None, machine
                ) -> tuple[str, Qcow2Node]:
    if not disks:
        raise QMPError("No block device can accept snapshots")
    if vmstate is None:
        return disks[0]
    for drive_id, node in disks:
        if vmstate in (drive_id, machine.block.drives[drive_id].node_name):
            return drive_id, node
    raise QMPError(f"Cannot find device='{vmstate}' for saving the VM state")


@contextmanager
def _paused(machine: MonitoredMachine, state: str) -> Iterator[dict[str, bool]]:
    """QEMU's vm_stop(RUN_STATE_SAVE_VM / RESTORE_VM) ... vm_start().  The body sets
    ``broken`` when the machine must not run again (a load that failed half-way)."""
    was_running = machine.run_state == RUNNING
    if was_running:
        machine.stop(state)
    flags = {"broken": False}
    try:
        yield flags
    finally:
        if flags["broken"]:
            machine.mark_internal_error()
        elif was_running:
            machine.cont()


def _quiesce(machine: MonitoredMachine, board) -> None:
    board.migration_pre_save()
    for drive in machine.block.drives.values():
        drive.backend.drain()
        drive.backend.flush()


def _refuse_blocked(board) -> None:
    why = blocked_reason(board)
    if why is not None:
        raise QMPError(why)


def save_vm(machine: MonitoredMachine, name: str, vmstate: str | None = None,
            devices: list[str] | None = None, overwrite: bool = True) -> None:
    board = _board(machine)
    _refuse_blocked(board)
    disks = snapshot_disks(machine, devices)
    _, state_node = _state_disk(disks, vmstate, machine)
    existing = [d for d, n in disks if any(s.name == name for s in n.snapshots)]
    if existing and not overwrite:
        raise QMPError(f"Snapshot '{name}' already exists in one or more devices")
    with _paused(machine, "save-vm"):
        _quiesce(machine, board)
        out = io.BytesIO()
        save_machine(board, StreamWriter(out.write))
        clock_ns = board.vm_clock_ns()
        try:
            for drive_id, node in disks:
                if drive_id in existing:
                    delete_snapshot(node, name)  # HMP savevm replaces a same-named one
                create_snapshot(node, name, vm_state=out.getvalue() if node is state_node
                                else b"", vm_clock_nsec=clock_ns if node is state_node else 0)
        except BlockError as e:
            raise QMPError(f"Error while creating snapshot on '{drive_id}': {e}") from None


def _parse_state(data: bytes) -> tuple[StreamReader, list]:
    """Every record of a saved state, checked (CRC, framing) before any is applied."""
    reader = StreamReader(bytes_source(data))
    records = []
    reader.header()
    while True:
        rec = reader.record()
        if isinstance(rec, EndRecord):
            return reader, records
        records.append(rec)


def load_vm(machine: MonitoredMachine, name: str, vmstate: str | None = None,
            devices: list[str] | None = None) -> None:
    board = _board(machine)
    _refuse_blocked(board)
    disks = snapshot_disks(machine, devices)
    _, state_node = _state_disk(disks, vmstate, machine)
    for drive_id, node in disks:
        if not any(s.name == name for s in node.snapshots):
            raise QMPError(f"Device '{drive_id}' does not have the requested snapshot "
                           f"'{name}'")
    try:
        data = read_vm_state(state_node, name)
        if not data:
            raise QMPError("This is a disk-only snapshot. Revert to it offline using "
                           "qemu-img")
        _parse_state(data)  # refuse a damaged state before anything changes
    except (StreamError, BlockError) as e:
        raise QMPError(f"Error while loading snapshot '{name}': {e}") from None
    with _paused(machine, "restore-vm") as flags:
        _quiesce(machine, board)
        loader = MachineLoader(board)
        try:
            reader = StreamReader(bytes_source(data))
            loader.begin(reader)  # checks the machine description before RAM is zeroed
        except StreamError as e:
            raise QMPError(f"Error while loading snapshot '{name}': {e}") from None
        for _, node in disks:
            apply_snapshot(node, name)
        for dev in board.migratable_devices():
            dev.reset()  # state an older stream lacks is at its reset value
        try:
            loader.apply_all(reader)
        except (StreamError, MigrationError) as e:
            # checked above: only a device refusing its section gets here
            flags["broken"] = True
            raise QMPError(f"Error while loading snapshot '{name}': {e}") from None


def delete_vm(machine: MonitoredMachine, name: str, devices: list[str] | None = None) -> None:
    disks = snapshot_disks(machine, devices)
    for drive_id, node in disks:
        if any(s.name == name for s in node.snapshots):
            try:
                delete_snapshot(node, name)
            except BlockError as e:
                raise QMPError(f"Error while deleting snapshot on '{drive_id}': {e}") from None


def info_snapshots(machine: MonitoredMachine) -> str:
    """HMP ``info snapshots``: the snapshots with machine state present on all disks."""

    disks = snapshot_disks(machine)
    if not disks:
        return "No available block device supports snapshots\n"
    state_node = disks[0][1]
    common = [s for s in state_node.snapshots if s.vm_state_size
              and all(any(o.name == s.name for o in n.snapshots) for _, n in disks)]
    if not common:
        return "There is no snapshot available.\n"
    rows = [{"id": "--", "name": s.name, "vm-state-size": s.vm_state_size,
             "date-sec": s.date_sec, "vm-clock-sec": s.vm_clock_nsec // 10**9,
             "vm-clock-nsec": s.vm_clock_nsec % 10**9} for s in common]
    lines = snapshot_table_lines(rows)
    lines[0] = "List of snapshots present on all disks:"
    return "\n".join(lines) + "\n"


__all__ = ["delete_vm", "info_snapshots", "load_vm", "save_vm", "snapshot_disks"]
