"""The accelerators as QOM types (``tcg-accel``, ``kvm-accel``): how a management tool
learns which ``-accel`` an emulator has.  libvirt offers a ``<domain type='qemu'>``
only when ``qom-list-types`` shows ``tcg-accel``; ``kvm`` it learns from query-kvm.

pemu runs RISC-V guests under TCG and x86-64 guests under KVM only, so each target
lists the one it has.  The properties are the ``-accel`` keys the CLIs accept.
"""

from __future__ import annotations

from pemu.qom.registry import OBJECT, Property, TypeInfo, register

TCG_ACCEL = register(TypeInfo(
    "tcg-accel", OBJECT, "the TCG translator", arch="riscv64",
    properties=(Property("tb-size", "uint32", description="translation cache size (MiB)"),
                Property("backend", "str", description="pemu's code generator: python or "
                                                       "native")),
))
KVM_ACCEL = register(TypeInfo("kvm-accel", OBJECT, "the Linux KVM hypervisor",
                              arch="x86_64"))
