"""Start-up from saved state, shared by the system emulators: ``-incoming`` and ``-loadvm``.

Both run after the board and its monitor exist and before the guest runs: -incoming
starts listening (the vCPUs wait in ``inmigrate`` until the state has arrived), -loadvm
loads a savevm snapshot of the qcow2 disks into the machine.
"""

from __future__ import annotations

from pemu.monitor.errors import QMPError
from pemu.monitor.machine import MonitoredMachine
from pemu.monitor.migrate import fail_incoming, migration_of
from pemu.monitor.vm_snapshots import load_vm
from pemu.qemuopts.config import SystemConfig


class StartupError(Exception):
    """A start-up step after the board was built failed (-loadvm, -incoming)."""


def start_from_snapshot(machine: MonitoredMachine, name: str) -> None:
    """-loadvm NAME: the machine starts from the snapshot (paused with -S)."""
    try:
        load_vm(machine, name)
    except QMPError as e:
        raise StartupError(f"-loadvm {name}: {e}") from None


def start_incoming(machine: MonitoredMachine, cfg: SystemConfig, autostart: bool,
                   prog: str) -> None:
    """-incoming URI|defer: wait in inmigrate for the state (pemu/monitor/migrate.py);
    with a cpr channel, for the RAM's descriptors first (cpr-transfer).  A stream that
    fails ends the process with status 1 and the reason."""
    uri, cpr_uri = cfg.incoming, cfg.incoming_cpr
    if cpr_uri and not uri:
        raise StartupError("-incoming: a cpr channel needs a main channel too")
    on_failure = fail_incoming(machine.board, prog)  # type: ignore[attr-defined]
    if uri == "defer":
        if cpr_uri is not None:
            raise StartupError("-incoming defer: name the cpr channel in migrate-incoming")
        machine.set_run_state("inmigrate")
        machine.incoming_deferred = (autostart, on_failure)  # migrate-incoming
        return
    try:
        migration_of(machine).listen(uri, autostart, on_failure, cpr_uri)
    except QMPError as e:
        raise StartupError(f"-incoming {uri}: {e}") from None


__all__ = ["StartupError", "start_from_snapshot", "start_incoming"]
