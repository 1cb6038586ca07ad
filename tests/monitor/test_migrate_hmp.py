"""HMP migrate_set_parameter / migrate_set_capability / info migrate_parameters /
info migrate_capabilities, against QEMU 7.2's HMP (human-monitor-command) for the
same command lines.

QEMU lists settings pemu has not got (compress-*, multifd-*, x-colo ...) and 7.2 has
no ``mode``: the comparison keeps QEMU's lines for the names pemu prints, and pemu
must print every such line exactly as QEMU does, in the same order.
"""

from __future__ import annotations

import shutil

import pytest

from pemu.monitor.hmp import HMPInterpreter
from pemu.monitor.machine import MonitoredMachine
from pemu.monitor.migrate import migration_of
from pemu.monitor.migrate_hmp import parse_size
from tests.monitor.qemu_oracle import qemu_execute

# accepted and refused settings; each answer (empty, an error, a syntax hint) compared
COMMANDS = [
    "migrate_set_parameter max-bandwidth 10M",
    "migrate_set_parameter downtime-limit 1k",
    "migrate_set_parameter tls-creds creds0",
    'migrate_set_parameter tls-hostname "host name"',
    "migrate_set_capability events on",
    "migrate_set_capability return-path on",
    "migrate_set_capability  return-path   off",
    "migrate_set_parameter max_bandwidth 1000",
    "migrate_set_parameter max-bandwidth abc",
    "migrate_set_parameter max-bandwidth 10MB",
    "migrate_set_parameter downtime-limit 1.5",
    "migrate_set_parameter downtime-limit 3000000",
    "migrate_set_parameter tls-creds a b",
    "migrate_set_parameter tls-hostname",
    "migrate_set_capability bogus on",
    "migrate_set_capability events maybe",
    "migrate_set_capability events",
    "migrate_set_capability",
    "help migrate_set_parameter",
    "help migrate_set_capability",
]
AFTER = ["migrate_set_parameter max-bandwidth 1.5", "info migrate_parameters",
         "info migrate_capabilities"]


def _pemu_hmp(lines: list[str]) -> tuple[list[str], MonitoredMachine]:
    machine = MonitoredMachine()
    hmp = HMPInterpreter(machine)
    return [hmp.execute(line) for line in lines], machine


def _keys(text: str) -> list[str]:
    return [line.split(":", 1)[0] for line in text.splitlines()]


@pytest.mark.skipif(shutil.which("qemu-system-riscv64") is None,
                    reason="qemu-system-riscv64 (the oracle) is not installed")
def test_hmp_migration_settings_match_qemu(tmp_path):
    lines = COMMANDS + AFTER
    # QEMU's human-monitor-command ends lines with \r\n; pemu's HMP does that only
    # on the interactive monitor (HMPSession)
    qemu = [text.replace("\r\n", "\n") for text in qemu_execute(
        [], tmp_path, *[("human-monitor-command", {"command-line": c}) for c in lines])]
    pemu, machine = _pemu_hmp(lines)
    for line, ours, theirs in zip(lines[:len(COMMANDS) + 1], pemu, qemu, strict=False):
        assert ours == theirs, line
    for ours, theirs in zip(pemu[-2:], qemu[-2:], strict=True):
        printed = set(_keys(ours))
        kept = [x for x in theirs.splitlines() if x.split(":", 1)[0] in printed]
        assert kept, theirs
        assert [x for x in ours.splitlines() if x.split(":", 1)[0] in set(_keys(theirs))] \
            == kept
    # and the settings reached what QMP reports and a migration uses
    mig = migration_of(machine)
    assert mig.parameters["max-bandwidth"] == 3 << 19
    assert mig.parameters["downtime-limit"] == 1024
    assert mig.parameters["tls-hostname"] == "host name"
    assert mig.capabilities == {"events": True, "return-path": False}


def test_hmp_mode_and_what_pemu_refuses():
    out, machine = _pemu_hmp(["migrate_set_parameter mode cpr-transfer",
                              "migrate_set_parameter mode sideways",
                              "migrate_set_capability xbzrle on",
                              "migrate_set_capability xbzrle off",
                              "migrate_set_parameter downtime-limit 0x10",
                              "info migrate_parameters"])
    assert out[:5] == ["", "Error: Parameter 'mode' does not accept value 'sideways'\n",
                       "Error: Migration capability 'xbzrle' is not supported by pemu\n",
                       "", ""]
    assert out[5].endswith("downtime-limit: 16 ms\ntls-authz: ''\nmode: cpr-transfer\n")
    assert migration_of(machine).parameters["mode"] == "cpr-transfer"


@pytest.mark.parametrize("text,unit,value", [
    ("100", "m", 100 << 20), ("0x10", "m", 16 << 20), ("1.5G", "m", 3 << 29),
    ("3b", "m", 3), ("2k", "b", 2048), ("1.5", "b", None), ("-1", "m", None),
    ("1e3", "m", None), ("16E", "b", None)])
def test_hmp_sizes_read_as_qemu_reads_them(text, unit, value):
    assert parse_size(text, unit) == value
