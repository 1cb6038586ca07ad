"""Start-up from saved state, shared by the system emulators: ``-incoming`` and ``-loadvm``.

Both run after the board and its monitor exist and before the guest runs: -incoming
starts listening (the vCPUs wait in ``inmigrate`` until the state has arrived), -loadvm
loads a savevm snapshot of the qcow2 disks into the machine.  A cpr channel is read
first of all (``receive_cpr_early``): the descriptors the old pemu hands over must be
there when the disks and network backends open.
"""

from __future__ import annotations

import sys

from pemu.fdpass.handover import close_untaken
from pemu.migration.cpr import CprError, CprListener
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


def receive_cpr_early(cfg: SystemConfig) -> CprListener | None:
    """-incoming with a cpr channel (cpr-transfer): before anything is built, wait
    for the old pemu and take the descriptors it hands over (QEMU's cpr_state_load).
    The caller passes the listener to ``start_incoming``, or closes it on failure
    (the old pemu then keeps its guest)."""
    if not cfg.incoming_cpr or cfg.incoming in (None, "defer"):
        return None  # start_incoming explains what is missing
    cpr = CprListener(cfg.incoming_cpr)
    try:
        cpr.listen()
        cpr.accept_early()
    except CprError as e:
        cpr.close()
        raise StartupError(f"-incoming: {e}") from None
    return cpr


def start_incoming(machine: MonitoredMachine, cfg: SystemConfig, autostart: bool,
                   prog: str, cpr: CprListener | None = None) -> None:
    """-incoming URI|defer: wait in inmigrate for the state (pemu/monitor/migrate.py);
    with a cpr channel, for the RAM's descriptors first (cpr-transfer), or with
    ``cpr`` from ``receive_cpr_early``.  A stream that fails ends the process with
    status 1 and the reason."""
    for name in close_untaken():  # the machine is built: nobody else will take them
        print(f"{prog}: warning: the old pemu handed over {name}, which this command "
              "line does not have", file=sys.stderr)
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
        migration_of(machine).listen(uri, autostart, on_failure, cpr_uri, cpr)
    except QMPError as e:
        raise StartupError(f"-incoming {uri}: {e}") from None


__all__ = ["StartupError", "receive_cpr_early", "start_from_snapshot", "start_incoming"]
