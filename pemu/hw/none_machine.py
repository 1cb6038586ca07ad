"""The ``none`` machine: no CPU, no RAM, no device; only the monitor.

QEMU has it on every target, and management tools start it to ask an emulator what
it can do (libvirt: ``-machine none -qmp ...`` then query-qmp-schema,
device-list-properties, ...).  pemu/cli/none_machine.py runs it.
"""

from __future__ import annotations

from pemu.qom.registry import MACHINE, TypeInfo, register

NONE_MACHINES = tuple(
    register(TypeInfo("none", MACHINE, "empty machine (no CPU, no RAM): the monitor only",
                      arch=arch))
    for arch in ("riscv64", "x86_64"))
