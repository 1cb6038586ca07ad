"""A minimal AHCI host driver, written from the AHCI 1.3.1 spec, for tests.

It reaches the HBA only as a guest does: ABAR through the PCI window after BAR
assignment, the command list, received-FIS area and command tables in guest RAM.
"""

from __future__ import annotations

import struct

from pci_driver import PCIMachine

from pemu.hw.ahci import regs as R

SECTOR = 512


def h2d(command: int, lba: int = 0, count: int = 0, features: int = 0,
        device: int = 0x40, control: int = 0, is_command: bool = True) -> bytes:
    fis = bytearray(R.CFIS_SIZE)
    fis[0], fis[1], fis[2], fis[3] = R.FIS_H2D, 0x80 if is_command else 0, command, \
        features & 0xFF
    fis[4:7] = (lba & 0xFFFFFF).to_bytes(3, "little")
    fis[7] = device
    fis[8:11] = (lba >> 24 & 0xFFFFFF).to_bytes(3, "little")
    fis[11] = features >> 8 & 0xFF
    fis[12:14] = (count & 0xFFFF).to_bytes(2, "little")
    fis[15] = control
    return bytes(fis)


class AhciDriver:
    def __init__(self, machine: PCIMachine, devfn: int) -> None:
        self.m = machine
        self.space = machine.space
        self.cfg = machine.cfg(devfn)
        self.abar = machine.assign_bars(self.cfg)[5]
        self.ports: dict[int, tuple[int, int]] = {}

    def r(self, off: int) -> int:
        return self.space.load(self.abar + off, 4)

    def w(self, off: int, value: int) -> None:
        self.space.store(self.abar + off, 4, value)

    def pr(self, port: int, off: int) -> int:
        return self.r(R.PORTS_BASE + port * R.PORT_STRIDE + off)

    def pw(self, port: int, off: int, value: int) -> None:
        self.w(R.PORTS_BASE + port * R.PORT_STRIDE + off, value)

    def start_port(self, port: int) -> None:
        """Command list and FIS area in RAM, FRE and ST on, every interrupt enabled."""
        clb = self.m.ram.alloc(R.NUM_SLOTS * R.HEADER_SIZE, 1024)
        fb = self.m.ram.alloc(R.RX_FIS_SIZE, 256)
        self.ports[port] = (clb, fb)
        self.pw(port, R.PX_CLB, clb & 0xFFFFFFFF)
        self.pw(port, R.PX_CLBU, clb >> 32)
        self.pw(port, R.PX_FB, fb & 0xFFFFFFFF)
        self.pw(port, R.PX_FBU, fb >> 32)
        self.pw(port, R.PX_CMD, R.CMD_FRE | R.CMD_SUD | R.CMD_POD)
        self.pw(port, R.PX_CMD, R.CMD_FRE | R.CMD_SUD | R.CMD_POD | R.CMD_ST)
        self.pw(port, R.PX_IE, 0xFFFFFFFF)

    def fis(self, port: int, offset: int, size: int) -> bytes:
        return self.space.read(self.ports[port][1] + offset, size)

    def issue(self, port: int, slot: int, cfis: bytes, prds: list[tuple[int, int]] = (),
              write: bool = False, atapi: bytes = b"", ncq: bool = False,
              raw_prds: bytes | None = None) -> int:
        """Build the slot's header and table, set PxSACT for NCQ, write PxCI."""
        clb, _ = self.ports[port]
        table = self.m.ram.alloc(R.CT_PRDT + R.PRD_SIZE * max(len(prds), 1), 128)
        self.space.write(table, cfis)
        if atapi:
            self.space.write(table + R.CT_ACMD, atapi.ljust(R.ACMD_SIZE, b"\0"))
        entries = raw_prds if raw_prds is not None else b"".join(
            struct.pack("<QII", addr, 0, size - 1) for addr, size in prds)
        self.space.write(table + R.CT_PRDT, entries)
        n = len(entries) // R.PRD_SIZE
        dw0 = 5 | (R.HEADER_WRITE if write else 0) | (R.HEADER_ATAPI if atapi else 0) | n << 16
        self.space.write(clb + slot * R.HEADER_SIZE, struct.pack("<IIQ", dw0, 0, table)
                         + bytes(16))
        if ncq:
            self.pw(port, R.PX_SACT, 1 << slot)
        self.pw(port, R.PX_CI, 1 << slot)
        return table

    def prdbc(self, port: int, slot: int) -> int:
        return struct.unpack("<I", self.space.read(self.ports[port][0] + slot * 32 + 4, 4))[0]
