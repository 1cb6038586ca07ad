"""The Intel MultiProcessor Specification 1.4 table: CPUs, the IOAPIC and ISA IRQ wiring.

Without ACPI, Linux finds the IOAPIC and the other CPUs only here.  The floating
pointer lives in the EBDA page at 0x9fc00 (e820-reserved), as QEMU's qboot puts it.
"""

from __future__ import annotations

import struct

MPTABLE_ADDR = 0x9FC00
APIC_DEFAULT_ADDR = 0xFEE00000
IOAPIC_ADDR = 0xFEC00000
APIC_VERSION = 0x14
IOAPIC_VERSION = 0x11
IOAPIC_PINS = 24
CPU_ENABLED, CPU_BSP = 1, 2


def _checksum(data: bytes) -> int:
    return (-sum(data)) & 0xFF


def isa_irq_to_pin(irq: int) -> int:
    """The PC's one override: the timer (ISA IRQ 0) is IOAPIC pin 2."""
    return 2 if irq == 0 else irq


def build_mptable(ncpus: int, base: int = MPTABLE_ADDR, cpu_signature: int = 0x600,
                  cpu_features: int = 0x201) -> bytes:
    ioapic_id = ncpus
    entries = []
    for cpu in range(ncpus):
        flags = CPU_ENABLED | (CPU_BSP if cpu == 0 else 0)
        entries.append(struct.pack("<BBBBII8x", 0, cpu, APIC_VERSION, flags, cpu_signature,
                                   cpu_features))
    entries.append(struct.pack("<BB6s", 1, 0, b"ISA   "))
    entries.append(struct.pack("<BBBBI", 2, ioapic_id, IOAPIC_VERSION, 1, IOAPIC_ADDR))
    for irq in range(16):
        if irq == 2:
            continue  # the cascade has no IOAPIC pin
        # type 3 (I/O interrupt), INT, conforming polarity/trigger, ISA bus 0
        entries.append(struct.pack("<BBHBBBB", 3, 0, 0, 0, irq, ioapic_id, isa_irq_to_pin(irq)))
    # type 4 (local interrupt): ExtINT to LINT0 and NMI to LINT1 of every local APIC
    entries.append(struct.pack("<BBHBBBB", 4, 3, 0, 0, 0, 0xFF, 0))
    entries.append(struct.pack("<BBHBBBB", 4, 1, 0, 0, 0, 0xFF, 1))
    body = b"".join(entries)
    header_len = 44
    table_addr = base + 16
    header = bytearray(struct.pack("<4sHBB8s12sIHHIHBB", b"PCMP", header_len + len(body), 4, 0,
                                   b"PEMU    ", b"MICROVM     ", 0, 0, len(entries),
                                   APIC_DEFAULT_ADDR, 0, 0, 0))
    header[7] = _checksum(bytes(header) + body)
    floating = bytearray(struct.pack("<4sIBBBB4s", b"_MP_", table_addr, 1, 4, 0, 0, bytes(4)))
    floating[10] = _checksum(bytes(floating))
    return bytes(floating) + bytes(header) + body
