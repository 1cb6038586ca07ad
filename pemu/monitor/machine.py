"""What the monitor needs from a machine, and the run-state bookkeeping every board shares.

A board (riscv ``virt`` on TCG, x86 ``microvm`` on KVM) gives the monitor a
``MonitoredMachine``: usually a small adapter subclass that implements the
primitives at the bottom of this class (pause and resume the vCPUs, reset, read
memory, describe CPUs).  The public methods above them keep QEMU's run states and
emit the matching QMP events, so every board reports STOP/RESUME/RESET/SHUTDOWN/
POWERDOWN the same way, and the gdb stub and the monitor agree on whether the guest
runs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pemu.monitor.block_devices import BlockDevices
from pemu.monitor.errors import DEVICE_NOT_FOUND, QMPError
from pemu.monitor.events import EventBus
from pemu.monitor.jobs import JobRegistry

# QEMU's RunState values the monitor reports
RUNNING = "running"
PAUSED = "paused"
PRELAUNCH = "prelaunch"  # started with -S, never run yet
DEBUG = "debug"  # stopped by the gdb stub
SHUTDOWN = "shutdown"  # guest shut down and -no-shutdown kept us alive
INTERNAL_ERROR = "internal-error"
RUN_STATES = (RUNNING, PAUSED, PRELAUNCH, DEBUG, SHUTDOWN, INTERNAL_ERROR, "inmigrate",
              "postmigrate", "finish-migrate", "restore-vm", "save-vm", "suspended",
              "watchdog", "guest-panicked", "io-error", "colo")


@dataclass
class CPUInfo:
    """One vCPU as query-cpus-fast and ``info cpus`` show it."""

    index: int
    pc: int
    thread_id: int = 0
    halted: bool = False
    props: dict[str, int] = field(default_factory=dict)  # core-id, socket-id, ...


class MonitoredMachine:
    """Base of every machine adapter the monitor (and HMP) talks to."""

    machine_type = "none"
    machine_description = ""
    target = "riscv64"  # QEMU's SysEmuTarget name
    accel = "tcg"
    cpu_type = ""

    def __init__(self, name: str | None = None, start_stopped: bool = False,
                 events: EventBus | None = None) -> None:
        self.name = name
        self.events = events or EventBus()
        self.block = BlockDevices(self.events)
        self.chardevs = None  # a pemu.chardev.ChardevRegistry when the board has one
        self.network = None  # a pemu.net.network.Network when the board has devices
        self.pci_host = None  # a pemu.hw.pci.host.PCIHost when the board has PCI
        self.objects: dict[str, dict[str, str]] = {}  # -object id -> options
        self.memory_backend: str | None = None  # the object that is the guest's RAM
        self._state = PRELAUNCH if start_stopped else RUNNING
        self._state_lock = threading.RLock()
        self.quit_requested = threading.Event()
        # savevm/migration: the board as pemu/migration/machine_state.MigratableMachine
        self.migratable = None
        self.migration = None  # pemu/monitor/migrate.Migration, made on first use
        self.incoming_deferred = None  # -incoming defer: (autostart, on_failure)
        self.jobs = JobRegistry(self.events)

    # -- run state (any thread) -----------------------------------------------------
    @property
    def run_state(self) -> str:
        return self._state

    @property
    def running(self) -> bool:
        return self._state == RUNNING

    def stop(self, reason: str = PAUSED) -> None:
        """Pause every vCPU (QMP stop, HMP stop, gdb with reason=DEBUG)."""
        with self._state_lock:
            if self._state != RUNNING:
                if reason == DEBUG and self._state in (PAUSED, PRELAUNCH):
                    self._state = DEBUG
                return
            self._pause()
            self._state = reason
        self.events.emit("STOP")

    def cont(self) -> None:
        with self._state_lock:
            if self._state == RUNNING:
                return
            if self._state in (SHUTDOWN, INTERNAL_ERROR, "guest-panicked"):
                raise QMPError("Resetting the Virtual Machine is required")
            if getattr(self, "ram_handed_over", False):  # migrate_cpr.py
                raise QMPError("The guest runs in another pemu now (cpr-transfer): its "
                               "RAM is shared with it, quit this one")
            self._resume()
            self._state = RUNNING
        self.events.emit("RESUME")

    def mark_internal_error(self) -> None:
        """A load failed half-way: the machine stays stopped until a reset or a load."""
        with self._state_lock:
            if self._state == RUNNING:
                self._pause()
            self._state = INTERNAL_ERROR

    def set_run_state(self, state: str) -> None:
        """A paused machine's reason changes (postmigrate, inmigrate, paused)."""
        with self._state_lock:
            self._state = state

    def system_reset(self, guest: bool = False) -> None:
        with self._state_lock:
            self._reset()
            if self._state in (SHUTDOWN, INTERNAL_ERROR):
                self._state = PAUSED
        self.events.emit("RESET", {"guest": guest,
                                   "reason": "guest-reset" if guest else "host-qmp-system-reset"})

    def system_powerdown(self) -> None:
        """Ask the guest to power off (ACPI button, SBI, ...)."""
        self.events.emit("POWERDOWN")
        self._powerdown()

    def quit(self) -> None:
        """The user asked pemu to exit (QMP/HMP quit)."""
        self.events.emit("SHUTDOWN", {"guest": False, "reason": "host-qmp-quit"})
        self.quit_requested.set()
        self._quit()

    def device_del(self, dev_id: str) -> None:
        """Unplug a device; DEVICE_DELETED follows once the board has let go of it."""
        path = f"/machine/peripheral/{dev_id}"
        if dev_id not in self.qom_children():
            raise QMPError(f"Device '{dev_id}' not found", DEVICE_NOT_FOUND)
        if self._device_del(dev_id):
            return  # the guest is asked first (PCIe hot-plug): device_deleted follows
        self.events.emit("DEVICE_DELETED", {"device": dev_id, "path": path})

    def device_deleted(self, dev_id: str) -> None:
        """The board let go of a device whose removal the guest had to agree to."""
        self.events.emit("DEVICE_DELETED", {"device": dev_id,
                                            "path": f"/machine/peripheral/{dev_id}"})

    def device_add(self, options: dict[str, str]) -> None:
        """QMP device_add: hot-plug a device where the board allows it."""
        self._device_add(options)

    def _device_add(self, options: dict[str, str]) -> None:
        raise QMPError(f"Device '{options.get('driver', '')}' cannot be hot-plugged on "
                       "this machine")

    # -- called by the board -----------------------------------------------------------
    def guest_shutdown(self, reason: str = "guest-shutdown", stay_alive: bool = False) -> None:
        """The guest powered itself off; with -no-shutdown the machine only stops."""
        self.events.emit("SHUTDOWN", {"guest": True, "reason": reason})
        if stay_alive:
            with self._state_lock:
                if self._state == RUNNING:
                    self._pause()
                self._state = SHUTDOWN
            self.events.emit("STOP")

    def guest_reset(self) -> None:
        self.events.emit("RESET", {"guest": True, "reason": "guest-reset"})

    # -- primitives a board implements -------------------------------------------------
    def _pause(self) -> None:
        """Stop all vCPUs and return once none executes guest code."""
        raise QMPError("this machine cannot be paused")

    def _resume(self) -> None:
        raise QMPError("this machine cannot be resumed")

    def _reset(self) -> None:
        raise QMPError("this machine cannot be reset")

    def _powerdown(self) -> None:
        raise QMPError("this machine has no power button")

    def _quit(self) -> None:
        """Make the board's run loop return (the CLI then exits)."""

    def _device_del(self, dev_id: str) -> bool:
        """Unplug ``dev_id``; True: only requested, ``device_deleted`` comes later."""
        raise QMPError(f"Device '{dev_id}' does not support hotplugging")

    def cpus(self) -> list[CPUInfo]:
        return []

    def cpu_registers(self, index: int) -> str:
        """``info registers`` for one vCPU (the machine is paused or the view is racy)."""
        raise QMPError("register dump is not available on this machine")

    def read_memory(self, addr: int, size: int, physical: bool = True,
                    cpu_index: int = 0) -> bytes:
        """Guest memory; raises QMPError if any byte is not backed by RAM."""
        raise QMPError("memory access is not available on this machine")

    def info_mtree(self) -> str:
        return "(no memory tree)\n"

    def info_qtree(self) -> str:
        return "(no device tree)\n"

    def info_tlb(self, cpu_index: int) -> str:
        return "TLB information is not available on this machine\n"

    def qom_children(self) -> dict[str, str]:
        """Devices below /machine/peripheral: id -> QOM type."""
        return {}

    def device_models(self) -> dict[str, object]:
        """The device objects the command line (and device_add) made: id -> object
        (the balloon commands and qom-get/qom-set of device properties find them)."""
        return {}
