"""Migration parameters and capabilities: the one place that checks and stores them.

QMP's ``migrate-set-parameters`` / ``migrate-set-capabilities`` and HMP's
``migrate_set_parameter`` / ``migrate_set_capability`` (pemu/monitor/migrate_hmp.py)
both come here, so a value refused by one is refused by the other with the same words.
"""

from __future__ import annotations

from collections.abc import Mapping

from pemu.monitor.errors import QMPError
from pemu.monitor.migrate import Migration
from pemu.monitor.migrate_cpr import MODES

MAX_DOWNTIME_MS = 2_000_000
TLS_NAMES = ("tls-creds", "tls-authz", "tls-hostname")
# every parameter pemu keeps, with its QMP type
PARAMETER_TYPES = {"max-bandwidth": "int", "downtime-limit": "int", "tls-creds": "str",
                   "tls-authz": "str", "tls-hostname": "str", "mode": "str"}

MIGRATION_CAPABILITIES = ("xbzrle", "auto-converge", "zero-blocks", "events",
                          "postcopy-ram", "multifd", "return-path", "pause-before-switchover",
                          "mapped-ram")
# what pemu does (return-path: the destination confirms the load, pemu/migration/tls.py)
SUPPORTED_CAPABILITIES = {"events", "zero-blocks", "mapped-ram", "return-path"}


def set_parameters(mig: Migration, values: Mapping[str, object]) -> None:
    """Check every value first, then store them all: a refused one changes nothing."""
    checked: dict[str, int | str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if name in TLS_NAMES:
            checked[name] = str(value)  # looked up when the channel opens (tls.py)
        elif name == "mode":
            if value not in MODES:
                raise QMPError(f"Parameter 'mode' does not accept value '{value}'")
            checked[name] = str(value)
        elif name == "max-bandwidth":
            if int(value) < 0:
                raise QMPError("Parameter 'max_bandwidth' expects a non-negative size")
            checked[name] = int(value)
        elif name == "downtime-limit":
            if not 0 <= int(value) <= MAX_DOWNTIME_MS:
                raise QMPError("Parameter 'downtime_limit' expects an integer in the range "
                               "of 0 to (2000 * 1000) ms")  # QEMU's words
            checked[name] = int(value)
        else:
            raise QMPError(f"Parameter '{name}' is unexpected")
    mig.parameters.update(checked)


def set_capabilities(mig: Migration, states: Mapping[str, bool]) -> None:
    for name, state in states.items():
        if name not in MIGRATION_CAPABILITIES:
            raise QMPError(f"Invalid parameter '{name}'")
        if state and name not in SUPPORTED_CAPABILITIES:
            raise QMPError(f"Migration capability '{name}' is not supported by pemu")
    mig.capabilities.update(states)


def query_capabilities(mig: Migration) -> list[dict[str, object]]:
    # Only what pemu does: libvirt turns on every listed capability it knows to be
    # useful (return-path on both sides, pause-before-switchover on the source) and
    # fails the migration when that is refused; unlisted ones it leaves alone.
    return [{"capability": c, "state": mig.capabilities.get(c, False)}
            for c in MIGRATION_CAPABILITIES if c in SUPPORTED_CAPABILITIES]


__all__ = ["MIGRATION_CAPABILITIES", "PARAMETER_TYPES", "SUPPORTED_CAPABILITIES",
           "query_capabilities", "set_capabilities", "set_parameters"]
