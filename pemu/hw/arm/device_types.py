"""The Arm virt board's built-in devices as QOM types: ``arm-gicv3``, ``arm_gic``
(GICv2), ``arm-gicv2m``, ``pl011``, ``pl031``, ``virtio-mmio`` and ``gpex-pcihost``,
named as QEMU names them.

The board creates them (``-device`` cannot add them on virt, as in QEMU); they are
listed so that ``qom-list-types`` answers as QEMU's does for management tools.
"""

from __future__ import annotations

from pemu.qom.registry import OBJECT, TypeInfo, register

ARM_VIRT_DEVICE_TYPES = (
    register(TypeInfo("arm-gicv3", OBJECT, "the virt board's GICv3 (built in)",
                      arch="aarch64")),
    register(TypeInfo("arm_gic", OBJECT, "the virt board's GICv2, gic-version=2 "
                      "(built in)", arch="aarch64")),
    register(TypeInfo("pl011", OBJECT, "the virt board's PL011 UART (built in)",
                      arch="aarch64")),
    register(TypeInfo("pl031", OBJECT, "the virt board's PL031 RTC (built in)",
                      arch="aarch64")),
    register(TypeInfo("arm-gicv2m", OBJECT, "the virt board's GICv2m MSI frame "
                      "(built in, gic-version=2)", arch="aarch64")),
    # as on RISC-V's virt (hw/riscv/virt_parts.py): libvirt puts virtio devices on PCI
    # when it sees gpex-pcihost
    register(TypeInfo("virtio-mmio", OBJECT, "the virt board's virtio-mmio transports "
                      "(built in)", arch="aarch64")),
    register(TypeInfo("gpex-pcihost", OBJECT, "the virt board's PCIe host bridge "
                      "(built in)", arch="aarch64")),
)
