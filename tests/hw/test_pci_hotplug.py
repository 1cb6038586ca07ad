"""pcie-root-port: the bridge header, the bus below it, and its hot-plug slot driven
through config space as Linux's pciehp drives it."""

from __future__ import annotations

import pytest
from pci_driver import RAM_BASE, PCIMachine, u32_at
from test_pci import ProbeDevice

from pemu.hw.pci import config as C
from pemu.hw.pci import pcie as X
from pemu.hw.pci.bus import PCIBusError
from pemu.hw.pci.capability import CAP_ID_EXP, CAP_ID_MSI
from pemu.hw.pci.root_port import PCIeRootPort

PORT_SLOT = 2


def machine_with_port():
    m = PCIMachine()
    port = PCIeRootPort("rp1", slot=5)
    m.host.root_bus.plug(port, PORT_SLOT << 3)
    cfg = m.cfg(PORT_SLOT << 3)
    cfg.w(C.PRIMARY_BUS, 4, 0x00010100)  # primary 0, secondary 1, subordinate 1
    cfg.w(C.COMMAND, 2, C.COMMAND_MEMORY | C.COMMAND_MASTER)
    exp = dict(cfg.capabilities())[CAP_ID_EXP]
    return m, port, cfg, exp


def test_bridge_header_and_pcie_root_port_capability():
    m, port, cfg, exp = machine_with_port()
    assert (cfg.r(C.VENDOR_ID, 2), cfg.r(C.DEVICE_ID, 2)) == (0x1B36, 0x000C)
    assert cfg.r(C.HEADER_TYPE, 1) == 1 and cfg.r(C.CLASS_DEVICE, 2) == 0x0604
    assert cfg.r(C.SECONDARY_BUS, 1) == 1 and cfg.r(C.SUBORDINATE_BUS, 1) == 1
    flags = cfg.r(exp + X.FLAGS, 2)
    assert (flags >> 4) & 0xF == 4 and flags & X.FLAGS_SLOT  # root port, slot
    sltcap = cfg.r(exp + X.SLTCAP, 4)
    assert sltcap & X.SLTCAP_HPC and sltcap & X.SLTCAP_ABP and sltcap >> 19 == 5
    cfg.w(C.MEMORY_BASE, 4, 0x40104010)  # window bits writable, low nibble not
    assert cfg.r(C.MEMORY_BASE, 4) == 0x40104010
    assert cfg.r(C.PREF_MEMORY_BASE, 2) & 0xF == 1  # 64-bit prefetchable window


def test_device_behind_the_port_is_pcie_and_reachable_on_its_bus():
    m, port, cfg, exp = machine_with_port()
    dev = ProbeDevice()
    port.secondary.plug(dev, 0)
    child = m.cfg(0, bus=1)
    assert child.r(C.DEVICE_ID, 2) == 0x0005
    assert CAP_ID_EXP in dict(child.capabilities())  # became an endpoint: 4 KiB space
    assert child.r(0x100, 4) == 0
    assert m.cfg(1 << 3, bus=1).r(C.VENDOR_ID, 2) == 0xFFFF  # a port has one slot
    # its BAR decodes only while the port forwards memory
    child.w(C.BAR0 + 8, 4, 0x40200000)
    child.w(C.COMMAND, 2, C.COMMAND_MEMORY)
    dev.mem.regs[0:4] = b"\x78\x56\x34\x12"
    assert m.space.load(0x40200000, 4) == 0x12345678
    cfg.w(C.COMMAND, 2, 0)
    assert m.space.load(0x40200000, 4) == 0xFFFFFFFF
    # INTx swizzle through the bridge: INTB# of 01:00.0, then the port's slot 2
    dev.set_irq(True)
    assert [i.level for i in m.intx] == [False, False, False, True]


# Slot Control as QEMU 7.2's pcie-root-port leaves it after reset (read from its ECAM)
QEMU_EMPTY_SLTCTL = X.SLTCTL_AIC_OFF | X.SLTCTL_PIC_OFF | X.SLTCTL_PCC  # 0x7c0
QEMU_OCCUPIED_SLTCTL = X.SLTCTL_AIC_OFF | X.SLTCTL_PIC_ON  # 0x1c0
EVENTS = X.SLTCTL_HPIE | X.SLTCTL_PDCE | X.SLTCTL_ABPE
POWER_ON = EVENTS | X.SLTCTL_AIC_OFF | X.SLTCTL_PIC_ON  # what pciehp writes to enable
POWER_OFF = EVENTS | X.SLTCTL_AIC_OFF | X.SLTCTL_PIC_OFF | X.SLTCTL_PCC


def test_reset_state_of_the_slot_is_qemus():
    m, port, cfg, exp = machine_with_port()
    port.reset()
    assert cfg.r(exp + X.SLTCTL, 2) == QEMU_EMPTY_SLTCTL
    assert cfg.r(exp + X.SLTSTA, 2) == 0 and not cfg.r(exp + X.LNKSTA, 2) & X.LNKSTA_DLLLA
    sltcap = cfg.r(exp + X.SLTCAP, 4)
    assert sltcap & 0xFF == 0x7B and sltcap >> 19 == 5  # ABP PCP AIP PIP HPS HPC, slot
    port.secondary.plug(ProbeDevice(), 0)
    port.reset()
    assert cfg.r(exp + X.SLTCTL, 2) == QEMU_OCCUPIED_SLTCTL
    assert cfg.r(exp + X.SLTSTA, 2) == X.SLTSTA_PDS
    assert cfg.r(exp + X.LNKSTA, 2) & X.LNKSTA_DLLLA


def test_hot_plug_powers_on_then_attention_button_unplug_with_intx():
    m, port, cfg, exp = machine_with_port()
    port.reset()
    cfg.w(C.PRIMARY_BUS, 4, 0x00010100)
    cfg.w(C.COMMAND, 2, C.COMMAND_MEMORY | C.COMMAND_MASTER)
    line = m.intx[PORT_SLOT % 4]  # the port's INTA#
    cfg.w(exp + X.SLTCTL, 2, EVENTS | X.SLTCTL_AIC_OFF | X.SLTCTL_PIC_OFF | X.SLTCTL_PCC)
    assert cfg.r(exp + X.SLTSTA, 2) & X.SLTSTA_CC  # every command completes at once
    cfg.w(exp + X.SLTSTA, 2, X.SLTSTA_CC)
    assert not cfg.r(exp + X.SLTSTA, 2) & X.SLTSTA_PDS and not line.level
    dev = ProbeDevice()
    port.hot_plug(dev)
    sta = cfg.r(exp + X.SLTSTA, 2)
    assert sta == X.SLTSTA_PDS | X.SLTSTA_PDC | X.SLTSTA_ABP  # QEMU's 0x49
    assert cfg.r(exp + X.LNKSTA, 2) & X.LNKSTA_DLLLA
    assert line.level
    cfg.w(exp + X.SLTSTA, 2, X.SLTSTA_PDC | X.SLTSTA_ABP)  # the guest acknowledges
    assert not line.level and cfg.r(exp + X.SLTSTA, 2) & X.SLTSTA_PDS
    # the slot is still off: the card is there but silent until the guest powers it
    assert m.cfg(0, bus=1).r(C.VENDOR_ID, 2) == 0xFFFF
    cfg.w(exp + X.SLTCTL, 2, POWER_ON)
    assert m.cfg(0, bus=1).r(C.DEVICE_ID, 2) == 0x0005
    removed = []
    port.on_removed = removed.append
    port.request_unplug()
    assert cfg.r(exp + X.SLTSTA, 2) & X.SLTSTA_ABP and line.level
    cfg.w(exp + X.SLTSTA, 2, X.SLTSTA_ABP | X.SLTSTA_CC)
    assert not line.level and not removed  # the device stays until power goes off
    cfg.w(exp + X.SLTCTL, 2, POWER_ON | X.SLTCTL_PCC)  # indicator still on: not yet
    assert not removed
    cfg.w(exp + X.SLTCTL, 2, POWER_OFF)
    assert removed == [dev] and port.occupant is None
    assert not cfg.r(exp + X.SLTSTA, 2) & X.SLTSTA_PDS
    assert not cfg.r(exp + X.LNKSTA, 2) & X.LNKSTA_DLLLA
    assert m.cfg(0, bus=1).r(C.VENDOR_ID, 2) == 0xFFFF
    assert line.level  # presence detect changed: the guest hears the card left


def test_powering_the_slot_off_hides_and_resets_the_card():
    m, port, cfg, exp = machine_with_port()
    dev = ProbeDevice()
    port.secondary.plug(dev, 0)
    port.reset()
    cfg.w(C.PRIMARY_BUS, 4, 0x00010100)
    cfg.w(C.COMMAND, 2, C.COMMAND_MEMORY)
    child = m.cfg(0, bus=1)
    child.w(C.BAR0 + 8, 4, 0x40200000)
    child.w(C.COMMAND, 2, C.COMMAND_MEMORY)
    dev.mem.regs[0:4] = b"\x78\x56\x34\x12"
    assert m.space.load(0x40200000, 4) == 0x12345678
    removed = []
    port.on_removed = removed.append
    cfg.w(exp + X.SLTCTL, 2, QEMU_OCCUPIED_SLTCTL | X.SLTCTL_PCC)  # off, indicator on
    assert not removed and port.occupant is dev  # not given up: it stays, unpowered
    assert child.r(C.VENDOR_ID, 2) == 0xFFFF and m.space.load(0x40200000, 4) == 0xFFFFFFFF
    cfg.w(exp + X.SLTCTL, 2, QEMU_OCCUPIED_SLTCTL)
    assert child.r(C.DEVICE_ID, 2) == 0x0005
    assert child.r(C.COMMAND, 2) == 0  # it went through reset


def test_device_del_of_a_powered_off_slot_is_at_once_and_refused_while_blinking():
    m, port, cfg, exp = machine_with_port()
    dev = ProbeDevice()
    port.secondary.plug(dev, 0)
    port.reset()
    removed = []
    port.on_removed = removed.append
    cfg.w(exp + X.SLTCTL, 2, X.SLTCTL_AIC_OFF | X.SLTCTL_PIC_BLINK)  # pciehp's 5 s
    with pytest.raises(PCIBusError, match="guest is busy"):
        port.request_unplug()
    assert not cfg.r(exp + X.SLTSTA, 2) & X.SLTSTA_ABP
    # the guest powers it off without being asked; a later device_del needs no guest
    port.on_removed = lambda d: None
    cfg.w(exp + X.SLTCTL, 2, X.SLTCTL_AIC_OFF | X.SLTCTL_PIC_OFF | X.SLTCTL_PCC)
    assert port.occupant is None  # the power-off took the card (QEMU does the same)
    port.hot_plug(dev2 := ProbeDevice())
    port.on_removed = removed.append
    port.request_unplug()
    assert removed == [dev2] and port.occupant is None
    sta = cfg.r(exp + X.SLTSTA, 2)
    assert sta & X.SLTSTA_PDC and not sta & (X.SLTSTA_ABP | X.SLTSTA_PDS)


def test_hot_plug_event_by_msi_when_enabled():
    m, port, cfg, exp = machine_with_port()
    msi = dict(cfg.capabilities())[CAP_ID_MSI]
    msg = RAM_BASE + 0x200
    cfg.w(msi + 4, 4, msg)
    cfg.w(msi + 12, 2, 0x77)
    cfg.w(msi + 2, 2, 1)
    cfg.w(exp + X.SLTCTL, 2, X.SLTCTL_HPIE | X.SLTCTL_PDCE)
    port.hot_plug(ProbeDevice())
    assert u32_at(m.space, msg) == 0x77
    assert not any(i.level for i in m.intx)
    # masked by the enable bits: no message
    m.space.store(msg, 4, 0)
    cfg.w(exp + X.SLTSTA, 2, 0xFFFF)
    cfg.w(exp + X.SLTCTL, 2, 0)
    port.request_unplug()
    assert u32_at(m.space, msg) == 0
