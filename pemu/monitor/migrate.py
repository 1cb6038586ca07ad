"""Live migration (pre-copy) and incoming migration, as the monitor drives them.

Outgoing (QMP ``migrate``), on its own thread:

  setup    RAM dirty logging on (RAMBlock.dirty; the softmmu marks a page when it
           installs a write TLB entry for it, devices when they take a view of it;
           under KVM the board adds KVM's dirty log before each harvest)
  active   pass 1 sends every non-zero page while the guest runs; then, while the
           pages dirtied meanwhile would take longer than ``downtime-limit`` at the
           measured bandwidth, harvest and resend them (at most MAX_PASSES passes)
  device   stop-and-copy: the guest stops (finish-migrate), block requests drain,
           the last dirty pages, the devices and the CPUs go, then the end record
  completed  the source stays stopped in ``postmigrate``

A harvest swaps the dirty set for an empty one and flushes every hart's TLBs while the
vCPUs are parked for a moment, so the next store to any page installs a write entry
again and marks it.  ``max-bandwidth`` throttles the sending.  Any failure (the
destination died, a write failed, ``migrate_cancel``) stops logging and, if the guest
was stopped for the final copy, resumes it: the source keeps running.

Incoming (``-incoming URI`` or ``migrate-incoming``): the machine waits in
``inmigrate``, accepts one connection and loads records as they arrive; at the end it
runs (or stays paused with -S).  A bad stream ends the process with an error.  With a
cpr channel (cpr-transfer) the RAM's memfds come over it first.

``mode=cpr-reboot`` / ``cpr-transfer`` (live update of pemu itself): migrate_cpr.py.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from pemu import threads
from pemu.block.errors import BlockError
from pemu.migration import MigrationError
from pemu.migration.channel import Channel, ChannelError, IncomingListener, open_outgoing
from pemu.migration.cpr import CprError, CprListener
from pemu.migration.machine_state import MachineLoader, blocked_reason, write_devices
from pemu.migration.mapped_ram import is_mapped_ram_file, restore, save_mapped
from pemu.migration.ram import nonzero_pages, send_pages
from pemu.migration.stream import StreamError, StreamReader, StreamWriter
from pemu.migration.tls import (
    acknowledge,
    confirm_delivery,
    default_tls_parameters,
    secure_incoming,
    secure_outgoing,
)
from pemu.monitor.errors import QMPError
from pemu.monitor.machine import RUNNING, MonitoredMachine
from pemu.monitor.migrate_cpr import NORMAL, check_cpr_start, detach_translations, run_cpr

PAGE = 4096
MAX_PASSES = 30
ACTIVE = ("setup", "active", "device", "cancelling")


class _Cancelled(Exception):
    pass


class Migration:
    """Per machine: parameters, capabilities and the current (or last) migration."""

    def __init__(self, machine: MonitoredMachine) -> None:
        self.machine = machine
        self.parameters: dict[str, int | str] = {"max-bandwidth": 128 << 20,
                                                 "downtime-limit": 300, "mode": NORMAL,
                                                 **default_tls_parameters()}
        self.capabilities: dict[str, bool] = {}
        self.status = "none"
        self.error: str | None = None
        self.stats: dict[str, int] = {}
        self.started = 0.0
        self.total_time_ms = 0
        self.downtime_ms = 0
        self._cancel = threading.Event()
        self._lock = threading.Lock()

    # -- reporting ------------------------------------------------------------------------
    def _set_status(self, status: str) -> None:
        self.status = status
        self.machine.events.emit("MIGRATION", {"status": status})

    def query(self) -> dict[str, object]:
        if self.status == "none":
            return {}
        out: dict[str, object] = {"status": self.status}
        ram_total = sum(b.size for b in self.machine.migratable.ram_blocks())
        elapsed = self.total_time_ms if self.status not in ACTIVE else \
            int((time.monotonic() - self.started) * 1000)
        st = self.stats
        out["total-time"] = elapsed
        if self.status == "completed":
            out["downtime"] = self.downtime_ms
        out["ram"] = {"transferred": st.get("transferred", 0),
                      "remaining": st.get("remaining", 0) * PAGE, "total": ram_total,
                      "duplicate": st.get("duplicate", 0), "normal": st.get("normal", 0),
                      "normal-bytes": st.get("normal", 0) * PAGE,
                      "dirty-sync-count": st.get("passes", 0),
                      "mbps": round(st.get("transferred", 0) * 8 / 1e6
                                    / max(elapsed / 1000, 1e-3), 3)}
        if self.error is not None:
            out["error-desc"] = self.error
        return out

    # -- outgoing ---------------------------------------------------------------------------
    def start(self, uri: str, cpr_uri: str | None = None) -> None:
        with self._lock:
            if self.status in ACTIVE:
                raise QMPError("There's a migration process in progress")
            if self.machine.migratable is None:
                raise QMPError("this machine cannot be migrated")
            why = blocked_reason(self.machine.migratable)
            if why is not None:
                raise QMPError(why)
            mode = str(self.parameters["mode"])
            check_cpr_start(self.machine, mode, uri, cpr_uri)
            self._cancel.clear()
            self.error = None
            self.stats = {}
            self.started = time.monotonic()
            if mode != NORMAL:
                self._set_status("setup")
                threads.start_daemon(run_cpr, self, uri, cpr_uri, name="pemu-migration")
                return
            if self.capabilities.get("mapped-ram"):
                if not uri.startswith("file:"):
                    raise QMPError("mapped-ram requires a file: migration URI")
                self._set_status("setup")
                threads.start_daemon(self._run_mapped, uri[len("file:"):],
                                     name="pemu-migration")
                return
            self._set_status("setup")
        threads.start_daemon(self._run, uri, name="pemu-migration")

    def cancel(self) -> None:
        if self.status in ACTIVE:
            self._set_status("cancelling")
            self._cancel.set()

    def _run(self, uri: str) -> None:
        machine = self.machine
        board = machine.migratable
        blocks = board.ram_blocks()
        stopped_here = False
        channel: Channel | None = None
        try:
            channel = secure_outgoing(open_outgoing(uri), uri, self.parameters)
            self._start_logging(blocks)
            self._set_status("active")
            writer = StreamWriter(self._throttled(channel.write))
            writer.header(board.migration_description())
            for block in blocks:  # pass 1: everything that is not zero
                self._send(writer, block, list(nonzero_pages(block)), skip_zero=True)
            passes = 1
            while True:
                dirty = self._harvest(blocks, keep_paused=False)
                pending = sum(len(p) for p in dirty.values())
                self.stats["remaining"] = pending
                if self._fits_downtime(pending) or passes >= MAX_PASSES:
                    break
                for block in blocks:
                    self._send(writer, block, sorted(dirty[block.name]), skip_zero=False)
                passes += 1
                machine.events.emit("MIGRATION_PASS", {"pass": passes})
            self.stats["passes"] = passes
            # stop-and-copy
            was_running = machine.run_state == RUNNING
            down_start = time.monotonic()
            if was_running:
                machine.stop("finish-migrate")
                stopped_here = True
            self._set_status("device")
            board.migration_pre_save()
            for drive in machine.block.drives.values():  # shared storage: on disk now
                drive.backend.flush()
            final = self._harvest(blocks, keep_paused=True)
            for block in blocks:
                pages = sorted(final[block.name] | dirty[block.name])
                send_pages(writer, block, pages, skip_zero=False)
                block.dirty = None
            _board_hook(board, "stop_dirty_log")
            write_devices(writer, board)
            writer.end()
            # TLS: an authz refusal may show only now; return-path: the destination
            # loaded it all, so the source may stop for good
            confirm_delivery(channel, bool(self.capabilities.get("return-path")))
            channel.close()
            channel = None
            self.stats["transferred"] = writer.bytes_written
            self.stats["remaining"] = 0
            self.downtime_ms = int((time.monotonic() - down_start) * 1000)
            self.total_time_ms = int((time.monotonic() - self.started) * 1000)
            machine.set_run_state("postmigrate")
            self._set_status("completed")
        except _Cancelled:
            self._fail(blocks, stopped_here, None)
        except (ChannelError, OSError, MigrationError, StreamError) as e:
            self._fail(blocks, stopped_here, str(e))
        finally:
            if channel is not None:
                channel.close()

    def _run_mapped(self, path: str) -> None:
        """mapped-ram: stop-and-copy into a file whose RAM a restore maps
        (pemu/migration/mapped_ram.py); the guest is stopped for the whole write."""
        machine = self.machine
        stopped_here = machine.run_state == RUNNING
        down_start = time.monotonic()
        try:
            if stopped_here:
                machine.stop("finish-migrate")
            self._set_status("device")
            self.stats.update(save_mapped(machine.migratable, path))
            self.stats["passes"] = 1
            self.downtime_ms = int((time.monotonic() - down_start) * 1000)
            self.total_time_ms = int((time.monotonic() - self.started) * 1000)
            machine.set_run_state("postmigrate")
            self._set_status("completed")
        except (OSError, MigrationError, StreamError) as e:
            self._fail([], stopped_here, str(e))

    def _fail(self, blocks, stopped_here: bool, error: str | None) -> None:
        for block in blocks:
            block.dirty = None
        if blocks:
            _board_hook(self.machine.migratable, "stop_dirty_log")
        self.total_time_ms = int((time.monotonic() - self.started) * 1000)
        if stopped_here:
            self.machine.cont()  # the source keeps running
        if error is None:
            self._set_status("cancelled")
        else:
            self.error = error
            self._set_status("failed")

    def _fits_downtime(self, pages: int) -> bool:
        elapsed = max(time.monotonic() - self.started, 1e-3)
        rate = max(self.stats.get("transferred", 0) / elapsed, 1.0)  # bytes/s so far
        return pages * PAGE / rate * 1000 <= self.parameters["downtime-limit"]

    def _throttled(self, write: Callable[[bytes], object]) -> Callable[[bytes], None]:
        start = time.monotonic()

        def out(data: bytes) -> None:
            if self._cancel.is_set():
                raise _Cancelled
            write(data)
            sent = self.stats["transferred"] = self.stats.get("transferred", 0) + len(data)
            limit = self.parameters["max-bandwidth"]
            if limit > 0:
                ahead = sent / limit - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)

        return out

    def _send(self, writer: StreamWriter, block, pages: list[int], skip_zero: bool) -> None:
        normal, zeros = send_pages(writer, block, pages, skip_zero)
        self.stats["normal"] = self.stats.get("normal", 0) + normal
        self.stats["duplicate"] = self.stats.get("duplicate", 0) + zeros

    def _start_logging(self, blocks) -> None:
        """Dirty logging on, with no block request in flight (a device writes through a
        view of guest RAM it took when the request started, and a view taken before
        logging was on is never marked) and no write TLB entry left from before."""
        machine = self.machine
        running = machine.run_state == RUNNING
        save_translations = None
        if running:
            machine._pause()
        try:
            machine.migratable.migration_pre_save()
            for block in blocks:
                block.dirty = set()
            _board_hook(machine.migratable, "start_dirty_log")  # KVM: its dirty log
            # A write TLB entry installed before logging began would let stores go
            # unmarked until the first harvest: flush them, so every store from now on
            # passes the fill that marks its page.
            for hart in machine.migratable.harts:
                hart.tlb_flush_all()
            save_translations = detach_translations(machine)
        finally:
            if running:
                machine._resume()
        if save_translations is not None:
            # the harts share one translator: a destination on this host starts warm
            save_translations()

    def _harvest(self, blocks, keep_paused: bool) -> dict[str, set[int]]:
        """Swap every block's dirty set for an empty one, TLBs flushed in between while
        no vCPU runs guest code (see the module docstring)."""
        machine = self.machine
        running = machine.run_state == RUNNING
        if running:
            machine._pause()
        try:
            _board_hook(machine.migratable, "sync_dirty_log")  # KVM's log into the sets
            out = {}
            for block in blocks:
                out[block.name] = block.dirty if block.dirty is not None else set()
                block.dirty = set()
            for hart in machine.migratable.harts:
                hart.tlb_flush_all()
        finally:
            if running and not keep_paused:
                machine._resume()
        return out

    # -- incoming ------------------------------------------------------------------------------
    def listen(self, uri: str, autostart: bool, on_failure: Callable[[str], None],
               cpr_uri: str | None = None, cpr: CprListener | None = None) -> None:
        """Start waiting for the stream (``-incoming`` or ``migrate-incoming``), and
        before it for the RAM's descriptors on ``cpr_uri`` (cpr-transfer); ``cpr``: the
        CLI's listener, which read the cpr channel before the machine was built."""
        if cpr_uri is not None and not uri.startswith(("unix:", "tcp:", "fd:", "exec:")):
            raise QMPError(f"{uri}: cpr-transfer needs a main channel that streams")
        if uri.startswith("file:") and is_mapped_ram_file(uri[len("file:"):]):
            # the file says what it is: a mapped-ram snapshot maps, whatever the
            # capability (which -incoming file: gives no chance to set)
            self.machine.set_run_state("inmigrate")
            threads.start_daemon(self._incoming_mapped, uri[len("file:"):], autostart,
                                 on_failure, name="pemu-incoming")
            return
        if self.capabilities.get("mapped-ram") and uri.startswith("file:"):
            raise QMPError(f"{uri}: not a mapped-ram snapshot")
        listener = IncomingListener(uri)
        fresh = cpr is None and cpr_uri is not None
        if fresh:
            cpr = CprListener(str(cpr_uri))
        try:
            if fresh:
                cpr.listen()
            listener.listen()
        except (ChannelError, CprError) as e:
            if cpr is not None:
                cpr.close()
            raise QMPError(str(e)) from None
        self.machine.set_run_state("inmigrate")
        threads.start_daemon(self._incoming, listener, autostart, on_failure, cpr,
                             name="pemu-incoming")

    def _incoming(self, listener: IncomingListener, autostart: bool,
                  on_failure: Callable[[str], None], cpr: CprListener | None) -> None:
        machine = self.machine
        channel = None
        self.started = time.monotonic()
        try:
            received = {}
            if cpr is not None:  # the RAM first: the main stream's S records use it
                received = cpr.receive(machine.migratable.ram_blocks())
                self._set_status("setup")
            channel = secure_incoming(listener.accept(), listener.uri, self.parameters)
            self._set_status("active")
            self.started = time.monotonic()  # a live update's switch-over starts here
            reader = StreamReader(channel.read)
            loader = MachineLoader(machine.migratable, received)
            loader.begin(reader)
            loader.apply_all(reader)
            # on TLS or with return-path the source waits for it (pemu/migration/tls.py)
            acknowledge(channel, bool(self.capabilities.get("return-path")))
            self._finish_incoming(autostart)
        except (ChannelError, CprError, OSError, StreamError, MigrationError,
                BlockError) as e:
            self.error = str(e)
            self._set_status("failed")
            on_failure(f"load of migration failed: {e}")
        finally:
            if channel is not None:
                channel.close()
            listener.close()
            if cpr is not None:
                cpr.close()

    def _incoming_mapped(self, path: str, autostart: bool,
                         on_failure: Callable[[str], None]) -> None:
        machine = self.machine
        self.started = time.monotonic()
        try:
            self._set_status("active")
            self.stats.update(restore(machine.migratable, path))
            self._finish_incoming(autostart)
        except (OSError, StreamError, MigrationError, BlockError) as e:
            self.error = str(e)
            self._set_status("failed")
            on_failure(f"load of migration failed: {e}")

    def _finish_incoming(self, autostart: bool) -> None:
        machine = self.machine
        _reread_disks(machine)
        announce = getattr(machine.migratable, "announce_nics", None)
        if announce is not None:
            announce()
        self.total_time_ms = int((time.monotonic() - self.started) * 1000)
        self._set_status("completed")
        if autostart:
            machine.cont()
        else:
            machine.set_run_state("paused")


def _reread_disks(machine: MonitoredMachine) -> None:
    """Before the guest runs here: the source (same image on shared storage, or the
    old pemu of a live update) wrote the disk images since this process opened them
    and flushed them at the switch-over; forget what was cached (QEMU: activating the
    block devices at the end of an incoming migration)."""
    block_layer = getattr(machine, "block", None)
    pending = [d.backend.node for d in
               (block_layer.drives.values() if block_layer is not None else ())]
    seen: set[int] = set()
    while pending:
        node = pending.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        invalidate = getattr(node, "invalidate_cache", None)
        if invalidate is not None:
            invalidate()
        # filters (accounting, blkdebug) hold the format node as ``child``
        pending += [getattr(node, "child", None), getattr(node, "backing", None)]


def _board_hook(board, name: str) -> None:
    """A board's optional dirty-log step: ``start_dirty_log``, ``sync_dirty_log`` (before
    each harvest) and ``stop_dirty_log``, for boards whose guest stores bypass the
    softmmu (KVM: pemu/hw/x86/microvm_state.py)."""
    hook = getattr(board, name, None)
    if hook is not None:
        hook()


def migration_of(machine: MonitoredMachine) -> Migration:
    mig = getattr(machine, "migration", None)
    if mig is None:
        mig = machine.migration = Migration(machine)  # type: ignore[attr-defined]
    return mig


def fail_incoming(board, prog: str) -> Callable[[str], None]:
    """What a failed incoming migration does in the CLI: report and exit non-zero."""
    def fail(why: str) -> None:
        print(f"{prog}: {why}", file=sys.stderr)
        board.request_exit(1, why)
    return fail


__all__ = ["Migration", "fail_incoming", "migration_of"]
