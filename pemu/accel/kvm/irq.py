"""Interrupt sinks for ``IRQLine``: KVM_IRQ_LINE (level) and irqfd (edge, no syscall
into the VM fd, the way Firecracker signals virtio interrupts)."""

from __future__ import annotations

import os

from pemu.accel.kvm.vm import KVMVM


class IrqLineSink:
    """Follows the device's level on a GSI of the in-kernel PIC/IOAPIC."""

    def __init__(self, vm: KVMVM, gsi: int) -> None:
        self.vm, self.gsi = vm, gsi

    def __call__(self, level: bool) -> None:
        self.vm.irq_line(self.gsi, level)


class IrqfdSink:
    """Injects an edge on GSI ``gsi`` at every rising edge of the line, via an eventfd."""

    def __init__(self, vm: KVMVM, gsi: int) -> None:
        self.gsi = gsi
        self.fd, _ = vm.irqfd(gsi)
        self.injected = 0

    def __call__(self, level: bool) -> None:
        if level:
            self.injected += 1
            os.eventfd_write(self.fd, 1)
