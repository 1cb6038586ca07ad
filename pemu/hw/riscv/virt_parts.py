"""The virt board's built-in parts, as QOM types: ``virtio-mmio`` (its eight virtio
transports) and ``gpex-pcihost`` (its PCIe host bridge).

They are part of the board, not user-creatable (``-device`` refuses them, as QEMU
does); they are listed because management tools decide from ``qom-list-types`` how
to address devices on the board: libvirt puts virtio devices on PCI when it sees
``gpex-pcihost`` and on virtio-mmio when it sees only ``virtio-mmio``.
"""

from __future__ import annotations

from pemu.qom.registry import OBJECT, TypeInfo, register

VIRT_PARTS = (
    register(TypeInfo("virtio-mmio", OBJECT, "the virt board's virtio-mmio transports "
                      "(built in)", arch="riscv64")),
    register(TypeInfo("gpex-pcihost", OBJECT, "the virt board's PCIe host bridge "
                      "(built in)", arch="riscv64")),
)
