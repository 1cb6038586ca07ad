"""``ich9-ahci``: Intel's ICH9 SATA controller in AHCI mode (8086:2922, class 010601),
six ports, as a PCI function.

BAR5 (ABAR, 32-bit memory, 4 KiB) holds the generic host control registers (CAP, GHC,
IS, PI, VS) and the ports' registers from 0x100.  Interrupts: a port whose PxIS & PxIE
is not zero sets its bit in IS; with GHC.IE the HBA signals it by MSI (one vector, when
the host enabled it) or holds INTA# while IS is not zero.

``lock`` covers every register and port; the drives' I/O-thread completions take it.
"""

from __future__ import annotations

import threading

from pemu.hw.ahci import regs as R
from pemu.hw.ahci.hba_state import AHCI_FIELDS, AhciState
from pemu.hw.ahci.port import AhciPort, AtaDrive
from pemu.hw.core import VMState
from pemu.hw.pci.bar import BAR_MEM32
from pemu.hw.pci.device import PCIDevice
from pemu.memory.address_space import AddressSpace

ABAR = 5
ABAR_SIZE = 0x1000
NUM_PORTS = 6


class AhciController(AhciState, PCIDevice):
    vendor_id = 0x8086
    device_id = 0x2922
    revision = 0x02
    class_code = 0x010601  # mass storage, SATA, AHCI 1.0
    type_name = "ich9-ahci"
    vmstate = VMState("ich9-ahci", 1, AHCI_FIELDS)  # hba_state.py

    def __init__(self, space: AddressSpace, id: str | None = None,
                 num_ports: int = NUM_PORTS) -> None:
        super().__init__(id)
        self.space = space
        self.lock = threading.RLock()
        self.ports = [AhciPort(self, n) for n in range(num_ports)]
        self.cap = ((num_ports - 1) | (R.NUM_SLOTS - 1) << R.CAP_NCS_SHIFT | R.CAP_ISS_GEN1
                    | R.CAP_SAM | R.CAP_SCLO | R.CAP_SNCQ | R.CAP_S64A)
        self.ghc = R.GHC_AE
        self.is_ = 0
        self.set_interrupt_pin(1)
        self.add_msi(1)
        self.add_bar(ABAR, ABAR_SIZE, BAR_MEM32, _Abar(self))

    @property
    def bus_name(self) -> str:
        return f"{self.id or 'ahci'}.0"

    def attach(self, drive: AtaDrive, port: int | None = None) -> int:
        """Put ``drive`` on ``port`` (the first free one if None); returns the port."""
        with self.lock:
            if port is None:
                port = next((p.index for p in self.ports if p.drive is None), None)
                if port is None:
                    raise ValueError("no free AHCI port")
            if not 0 <= port < len(self.ports):
                raise ValueError(f"AHCI port {port} does not exist (0..{len(self.ports) - 1})")
            if self.ports[port].drive is not None:
                raise ValueError(f"AHCI port {port} is in use")
            self.ports[port].attach(drive)
            return port

    # -- registers ------------------------------------------------------------------------------
    def read_register(self, offset: int) -> int:
        with self.lock:
            if offset >= R.PORTS_BASE:
                n, off = divmod(offset - R.PORTS_BASE, R.PORT_STRIDE)
                return self.ports[n].read(off) if n < len(self.ports) else 0
            return {R.HBA_CAP: self.cap, R.HBA_GHC: self.ghc, R.HBA_IS: self.is_,
                    R.HBA_PI: (1 << len(self.ports)) - 1, R.HBA_VS: R.VERSION_1_0
                    }.get(offset, 0)

    def write_register(self, offset: int, value: int) -> None:
        with self.lock:
            if offset >= R.PORTS_BASE:
                n, off = divmod(offset - R.PORTS_BASE, R.PORT_STRIDE)
                if n < len(self.ports):
                    self.ports[n].write(off, value)
            elif offset == R.HBA_GHC:
                if value & R.GHC_HR:
                    self._hba_reset()
                    return
                self.ghc = R.GHC_AE | (value & R.GHC_IE)
                self._signal(self.is_ != 0)
            elif offset == R.HBA_IS:
                self.is_ &= ~value
                # a port that still has an enabled event keeps (or sets again) its bit
                again = self._collect()
                self._signal(again)

    def _hba_reset(self) -> None:
        for port in self.ports:
            port.reset()
        self.ghc = R.GHC_AE
        self.is_ = 0
        self._signal(False)

    # -- interrupts ----------------------------------------------------------------------------
    def _collect(self) -> bool:
        """Fold the ports' enabled events into IS; True if a bit was newly set."""
        before = self.is_
        for port in self.ports:
            if port.pending:
                self.is_ |= 1 << port.index
        return self.is_ != before

    def port_event(self, port: AhciPort) -> None:
        """A port's PxIS or PxIE changed (called with ``lock`` held)."""
        self._signal(self._collect())

    def _signal(self, new_event: bool) -> None:
        enabled = bool(self.ghc & R.GHC_IE)
        if self.msi is not None and self.msi.enabled:
            if self.intx_level:
                self.set_irq(False)
            if enabled and new_event:
                self.msi.notify(0)  # a message per new event: MSI is an edge
            return
        level = enabled and self.is_ != 0
        if level != self.intx_level:
            self.set_irq(level)

    def config_write(self, offset: int, size: int, value: int) -> None:
        with self.lock:
            super().config_write(offset, size, value)
            self._signal(False)  # MSI turned on or off: INTx follows

    def reset(self) -> None:
        with self.lock:
            super().reset()
            self._hba_reset()

    def describe(self) -> str:
        return self.type_name


class _Abar:
    """BAR5: dword registers; narrower accesses read or merge into the dword."""

    def __init__(self, hba: AhciController) -> None:
        self.hba = hba

    def mmio_read(self, offset: int, size: int) -> int:
        value = self.hba.read_register(offset & ~3)
        if size == 8:
            value |= self.hba.read_register((offset & ~3) + 4) << 32
        return (value >> 8 * (offset & 3)) & ((1 << 8 * size) - 1)

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        if size == 8:
            self.hba.write_register(offset, value & 0xFFFFFFFF)
            self.hba.write_register(offset + 4, value >> 32)
            return
        if size == 4 and not offset & 3:
            self.hba.write_register(offset, value)
            return
        # a byte or halfword write: registers whose bits act when written as 1 (W1C,
        # PxCI/PxSACT) see only those bits; the others keep their other bytes
        shift, mask = 8 * (offset & 3), ((1 << 8 * size) - 1)
        dword = offset & ~3
        bits = (value & mask) << shift
        if not _acts_on_ones(dword):
            bits |= self.hba.read_register(dword) & ~(mask << shift)
        self.hba.write_register(dword, bits)


def _acts_on_ones(offset: int) -> bool:
    if offset == R.HBA_IS:
        return True
    if offset < R.PORTS_BASE:
        return False
    return (offset - R.PORTS_BASE) % R.PORT_STRIDE in (R.PX_IS, R.PX_SERR, R.PX_SNTF,
                                                       R.PX_CI, R.PX_SACT)
