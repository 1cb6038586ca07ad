"""CPR migration modes (QEMU's checkpoint/restart): the guest moves to a new pemu
process on the same host without a copy of its RAM.

``migrate-set-parameters mode=cpr-transfer``, then ``migrate`` with a main and a cpr
channel:
  1. the cpr channel hands the RAM's memfds to the new pemu (pemu/migration/cpr.py)
     while the guest still runs, with the disk images' and TAP queues' descriptors
     (pemu/fdpass/handover.py); the new pemu builds its machine on them, its vCPUs
     wait;
  2. stop (finish-migrate): block requests drained, disk images flushed;
  3. the main channel carries the stream: an S record per block left in place,
     the other (small, private) blocks' pages, the devices, the CPUs;
  4. the source stays in ``postmigrate`` until it is told to quit (QEMU does the
     same; pemu-live-update quits it); it stops reading the TAP queues and
     sockets it handed over at once.
     It must not be continued: the new pemu runs the guest on the same RAM.

``mode=cpr-reboot`` with ``migrate file:PATH``: stop, then the stream goes to the
file with blocks in a ``memory-backend-file,share=on`` left in place (msync'd: the
file is the RAM) and any other block's pages copied; a new pemu started with the same
command line plus ``-incoming file:PATH`` (or ``defer`` + ``migrate-incoming``) maps
the file again.

CPR stops the guest before the state is saved, so it needs no dirty logging.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pemu.fdpass.handover import collect, release
from pemu.memory.shared_ram import FILE
from pemu.migration import MigrationError
from pemu.migration.channel import Channel, ChannelError, open_outgoing
from pemu.migration.cpr import CprError, send_ram
from pemu.migration.machine_state import blocked_reason, write_devices
from pemu.migration.ram import nonzero_pages, send_pages
from pemu.migration.stream import SHARED_BY_CHANNEL, SHARED_BY_PATH, StreamError, StreamWriter
from pemu.monitor.errors import QMPError
from pemu.monitor.machine import RUNNING, MonitoredMachine

if TYPE_CHECKING:
    from pemu.monitor.migrate import Migration

NORMAL, CPR_REBOOT, CPR_TRANSFER = "normal", "cpr-reboot", "cpr-transfer"
MODES = (NORMAL, CPR_REBOOT, CPR_TRANSFER)


def check_cpr_start(machine: MonitoredMachine, mode: str, uri: str,
                    cpr_uri: str | None) -> None:
    """Refuse a CPR migration that cannot work, before anything happens."""
    board = machine.migratable
    if mode == CPR_TRANSFER:
        if cpr_uri is None:
            raise QMPError("cpr-transfer mode requires setting a cpr channel")
        for block in board.ram_blocks():
            if not block.read_only and not block.ram_in_place:
                raise QMPError(f"Memory region {block.name} is not compatible with CPR. "
                               "share=on is required for memory-backend objects "
                               "(-object memory-backend-memfd, -machine memory-backend=)")
    elif mode == CPR_REBOOT:
        if not uri.startswith("file:"):
            raise QMPError("cpr-reboot mode requires a file: migration URI")
    if cpr_uri is not None and mode != CPR_TRANSFER:
        raise QMPError("a cpr channel needs migrate-set-parameters mode=cpr-transfer")


def run_cpr(mig: Migration, uri: str, cpr_uri: str | None) -> None:
    """The migration thread of a CPR mode (see the module docstring)."""
    machine = mig.machine
    board = machine.migratable
    stopped_here = False
    channel: Channel | None = None
    try:
        mig._set_status("active")
        _hand_translations_over(machine)  # the new pemu, on this host, starts warm
        handed = collect(machine) if cpr_uri is not None else []
        if cpr_uri is not None:  # the guest runs on while the new pemu maps its RAM
            send_ram(cpr_uri, [b for b in board.ram_blocks() if b.ram_in_place], handed)
        down_start = time.monotonic()
        if machine.run_state == RUNNING:
            machine.stop("finish-migrate")
            stopped_here = True
        mig._set_status("device")
        why = blocked_reason(board)
        if why is not None:
            raise MigrationError(why)
        _quiesce(machine)
        channel = open_outgoing(uri)
        writer = StreamWriter(channel.write)
        writer.header(board.migration_description())
        normal = 0
        for block in board.ram_blocks():
            if cpr_uri is not None and block.ram_in_place:
                writer.shared(block.name, SHARED_BY_CHANNEL, "", block.size)
            elif (cpr_uri is None and block.ram_in_place
                  and block.backing.kind == FILE):
                block.mem.flush()  # msync: the file must hold the RAM across a reboot
                writer.shared(block.name, SHARED_BY_PATH, block.backing.path, block.size)
            else:  # small private blocks (the boot ROM), or RAM copied into the file
                normal += send_pages(writer, block, list(nonzero_pages(block)), True)[0]
        write_devices(writer, board)
        writer.end()
        channel.close()
        channel = None
        mig.stats.update(transferred=writer.bytes_written, normal=normal, passes=1)
        mig.downtime_ms = int((time.monotonic() - down_start) * 1000)
        mig.total_time_ms = int((time.monotonic() - mig.started) * 1000)
        machine.set_run_state("postmigrate")
        if cpr_uri is not None:
            machine.ram_handed_over = True  # cont would run the guest twice on one RAM
            release(machine, handed)  # the new pemu reads them now
        mig._set_status("completed")
    except (ChannelError, CprError, OSError, MigrationError, StreamError) as e:
        mig._fail([], stopped_here, str(e))
    finally:
        if channel is not None:
            channel.close()


def detach_translations(machine: MonitoredMachine) -> Callable[[], None] | None:
    """With the vCPUs parked: the TCG translations not yet in the on-disk cache, as a
    writer to run afterwards (pemu/accel/tcg/system_cpu.py), or None (not TCG)."""
    harts = machine.migratable.harts
    if harts and hasattr(harts[0], "detach_new_translations"):
        return harts[0].detach_new_translations()
    return None


def _hand_translations_over(machine: MonitoredMachine) -> None:
    running = machine.run_state == RUNNING
    if running:
        machine._pause()
    try:
        save = detach_translations(machine)
    finally:
        if running:
            machine._resume()
    if save is not None:
        save()  # while the guest runs on


def _quiesce(machine: MonitoredMachine) -> None:
    """No request in flight, every disk image flushed: the new pemu opens them again."""
    machine.migratable.migration_pre_save()
    block_layer = getattr(machine, "block", None)
    for drive in (block_layer.drives.values() if block_layer is not None else ()):
        drive.backend.drain()
        drive.backend.flush()


__all__ = ["CPR_REBOOT", "CPR_TRANSFER", "MODES", "NORMAL", "check_cpr_start",
           "detach_translations", "run_cpr"]
