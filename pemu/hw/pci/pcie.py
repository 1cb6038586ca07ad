"""The PCI Express capability (PCIe 4.0 7.5.3), version 2, and its slot registers.

Endpoints behind a root port carry it (a device on the host's root bus is a plain PCI
device, as on QEMU's virt); a root port adds the slot registers that hot-plug uses.
Config space is 4 KiB whenever the capability is present.
"""

from __future__ import annotations

from pemu.hw.pci.capability import CAP_ID_EXP, CapabilityAllocator
from pemu.hw.pci.config import ConfigSpace

FLAGS = 0x02
DEVCAP = 0x04
DEVCTL = 0x08
DEVSTA = 0x0A
LNKCAP = 0x0C
LNKCTL = 0x10
LNKSTA = 0x12
SLTCAP = 0x14
SLTCTL = 0x18
SLTSTA = 0x1A
RTCTL = 0x1C
RTSTA = 0x20
DEVCAP2 = 0x24
DEVCTL2 = 0x28
LNKCAP2 = 0x2C
LNKCTL2 = 0x30
SIZE = 0x3C

PORT_TYPES = {"endpoint": 0x0, "root-port": 0x4, "rc-endpoint": 0x9}
FLAGS_VERSION_2 = 0x2
FLAGS_SLOT = 0x100
FLAGS_IRQ_SHIFT = 9  # interrupt message number (MSI/MSI-X vector of hot-plug events)

LNKCAP_DLLLARC = 1 << 20  # data link layer link active reporting capable
LNK_SPEED_2_5 = 0x1
LNK_WIDTH_X1 = 0x1 << 4
LNKSTA_DLLLA = 1 << 13  # data link layer link active

SLTCAP_ABP = 0x01  # attention button present
SLTCAP_PCP = 0x02  # power controller present
SLTCAP_AIP = 0x08  # attention indicator present
SLTCAP_PIP = 0x10  # power indicator present
SLTCAP_HPS = 0x20  # hot-plug surprise
SLTCAP_HPC = 0x40  # hot-plug capable
SLTCAP_NCCS = 1 << 18  # no command completed support
SLTCAP_PSN_SHIFT = 19  # physical slot number

SLTCTL_ABPE = 0x01  # attention button pressed enable
SLTCTL_PDCE = 0x08  # presence detect changed enable
SLTCTL_CCIE = 0x10  # command completed interrupt enable
SLTCTL_HPIE = 0x20  # hot-plug interrupt enable
SLTCTL_AIC = 0x00C0  # attention indicator control
SLTCTL_PIC = 0x0300  # power indicator control
SLTCTL_PIC_ON = 0x0100
SLTCTL_PIC_BLINK = 0x0200
SLTCTL_PIC_OFF = 0x0300
SLTCTL_AIC_OFF = 0x00C0
SLTCTL_PCC = 0x0400  # power controller control (1: off)
SLTCTL_DLLSCE = 0x1000  # data link layer state changed enable

SLTSTA_ABP = 0x01  # attention button pressed
SLTSTA_PDC = 0x08  # presence detect changed
SLTSTA_CC = 0x10  # command completed
SLTSTA_PDS = 0x40  # presence detect state
SLTSTA_DLLSC = 0x100  # data link layer state changed
SLTSTA_EVENTS = SLTSTA_ABP | SLTSTA_PDC | SLTSTA_CC | SLTSTA_DLLSC


def add_pcie_capability(config: ConfigSpace, caps: CapabilityAllocator, port_type: str,
                        slot: int | None = None) -> int:
    """Add the capability; ``slot`` (a root port's physical slot number) adds a
    hot-plug capable slot.  Returns its offset."""
    off = caps.add(CAP_ID_EXP, SIZE)
    flags = FLAGS_VERSION_2 | (PORT_TYPES[port_type] << 4)
    config.set(off + DEVCAP, 4, 1 << 15)  # role-based error reporting, 128-byte payload
    config.set_wmask(off + DEVCTL, 2, 0x7CFF)
    config.set_w1c(off + DEVSTA, 2, 0x000F)
    link = LNK_SPEED_2_5 | LNK_WIDTH_X1
    config.set(off + LNKCAP, 4, link | (LNKCAP_DLLLARC if port_type == "root-port" else 0))
    config.set_wmask(off + LNKCTL, 2, 0x0FFB)
    config.set(off + LNKSTA, 2, LNK_SPEED_2_5 | LNK_WIDTH_X1)
    config.set_wmask(off + DEVCTL2, 2, 0xFFFF)
    config.set(off + LNKCAP2, 4, 0x2)  # 2.5 GT/s supported
    config.set_wmask(off + LNKCTL2, 2, 0xF)
    if slot is not None:
        flags |= FLAGS_SLOT
        # QEMU 7.2's slot less its electromechanical interlock: commands complete
        # at once and say so (Command Completed), a card may go without warning
        config.set(off + SLTCAP, 4, SLTCAP_ABP | SLTCAP_PCP | SLTCAP_AIP | SLTCAP_PIP
                   | SLTCAP_HPS | SLTCAP_HPC | (slot << SLTCAP_PSN_SHIFT))
        config.set_wmask(off + SLTCTL, 2, SLTCTL_ABPE | SLTCTL_PDCE | SLTCTL_CCIE
                         | SLTCTL_HPIE | SLTCTL_AIC | SLTCTL_PIC | SLTCTL_PCC | SLTCTL_DLLSCE)
        config.set_w1c(off + SLTSTA, 2, SLTSTA_EVENTS)
        config.set_wmask(off + RTCTL, 2, 0x1F)
    config.set(off + FLAGS, 2, flags)
    return off
