"""The Arm virt devices are listed as QEMU names them, for the aarch64 target only."""

from __future__ import annotations

import pemu.hw.all_types  # noqa: F401 - every type registered
from pemu.qom import registry


def test_arm_device_types_listed_for_aarch64_only():
    aarch64 = {t.name for t in registry.types(registry.OBJECT, arch="aarch64")}
    assert {"arm-gicv3", "arm_gic", "pl011", "pl031"} <= aarch64
    assert {"arm-gicv2m", "virtio-mmio", "gpex-pcihost"} <= aarch64
    riscv = {t.name for t in registry.types(registry.OBJECT, arch="riscv64")}
    assert not {"arm-gicv3", "pl011"} & riscv
