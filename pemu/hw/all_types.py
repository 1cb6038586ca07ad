"""Every module that declares types in the registry (pemu/qom), imported once.

QEMU registers its types from its build's module list; this is ours.  Whoever lists
or looks up types for the user (the command lines' ``help``, the monitor's
``qom-list-types``, ``device-list-properties``, ``query-machines``) imports this
first, so the answer does not depend on what happened to be imported before.
A new device, machine, CPU model or chardev backend file adds one line here.
"""

from __future__ import annotations

import pemu.hw.arm.device_types  # noqa: F401 - arm-gicv3, arm_gic, pl011, pl031
from pemu.accel import accel_types  # noqa: F401 - tcg-accel, kvm-accel
from pemu.block import drivers  # noqa: F401 - block drivers (listed in that module)
from pemu.chardev import pty, simple, socket, stdio  # noqa: F401 - chardev backends
from pemu.hw import none_machine  # noqa: F401 - the none machine (every target)
from pemu.hw.ahci import types as ahci_types  # noqa: F401 - ich9-ahci, ide-hd, ide-cd
from pemu.hw.arm import virt as arm_virt  # noqa: F401 - the AArch64 virt machine
from pemu.hw.nvme import types  # noqa: F401 - nvme, nvme-ns
from pemu.hw.pci import root_port  # noqa: F401 - pcie-root-port
from pemu.hw.riscv import (  # noqa: F401 - machines
    spike,
    virt,
    virt_parts,  # noqa: F401 - virtio-mmio, gpex-pcihost
)
from pemu.hw.scsi import types as scsi_types  # noqa: F401 - scsi-hd, scsi-cd
from pemu.hw.virtio import (  # noqa: F401 - virtio devices
    balloon,
    blk,
    console,
    net,
    pci_types,
    rng,
    virtio_9p,
    vsock,
)
from pemu.hw.x86 import microvm  # noqa: F401 - machine
from pemu.memory import backends  # noqa: F401 - memory-backend-ram, memory-backend-file
from pemu.net import all_backends  # noqa: F401 - netdev backends
from pemu.target.aarch64 import cpu_types  # noqa: F401 - AArch64 CPU models
from pemu.target.riscv import cpu_models  # noqa: F401 - CPU models
from pemu.target.x86 import cpuid  # noqa: F401 - CPU models
