"""``pcie-root-port`` (QEMU's generic root port, 1b36:000c): a PCI-to-PCI bridge with
one slot below it, hot-plug capable (PCIe 4.0 6.7).

The slot behaves as QEMU 7.2's (checked against it, register by register): it has a
power controller, and an empty slot comes out of reset powered off (Power Controller
Control set, Power Indicator off).  A card in a powered-off slot is held in reset: it
answers no config cycle and decodes nothing, so a hot-plugged card appears to the
guest only once its hot-plug driver (Linux pciehp) turns the power on.

The slot signals that driver with Slot Status events: ``hot_plug`` marks the card
present and the link up, with Presence Detect Changed and Attention Button Pressed;
``request_unplug`` presses the Attention Button, and the device is removed
(``on_removed`` runs: the board's DEVICE_DELETED) when the guest then turns the power
off with the Power Indicator off -- at once if the slot is already off.  Every write
of Slot Control is a command that completes at once (Command Completed).  An event
interrupts when Hot-Plug Interrupt Enable and the event's own enable are set: by MSI
if the guest enabled it, else INTx (level, until the guest clears the status bits).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pemu.hw.core import VMState, VMStateField, VMStateInvalid
from pemu.hw.pci import config as C
from pemu.hw.pci import pcie as X
from pemu.hw.pci.bus import PCI_BUS, PCIBus, PCIBusError
from pemu.hw.pci.config import overlaps
from pemu.hw.pci.device import PCIDevice
from pemu.hw.pci.function_state import PCI_FUNCTION_FIELDS
from pemu.hw.pci.plug import PCI_PROPERTIES
from pemu.qom.registry import DEVICE, Property, RegistryError, TypeInfo, register

_EVENT_ENABLES = ((X.SLTSTA_ABP, X.SLTCTL_ABPE), (X.SLTSTA_PDC, X.SLTCTL_PDCE),
                  (X.SLTSTA_CC, X.SLTCTL_CCIE), (X.SLTSTA_DLLSC, X.SLTCTL_DLLSCE))


def _powered_off(sltctl: int) -> bool:
    """Power off and its indicator off: what a driver that let go of the card writes
    (QEMU removes the card on this, not on the power bit alone)."""
    return bool(sltctl & X.SLTCTL_PCC) and sltctl & X.SLTCTL_PIC == X.SLTCTL_PIC_OFF


class PCIeRootPort(PCIDevice):
    device_id = 0x000C
    class_code = 0x060400  # PCI-to-PCI bridge
    header_type = C.HEADER_TYPE_BRIDGE
    num_bar_slots = 2
    type_name = "pcie-root-port"
    # The slot's registers are in config space; an Attention Button press the guest has
    # not answered yet is the port's own (the card leaves when the guest powers off).
    vmstate = VMState("pcie-root-port", 1, (
        *PCI_FUNCTION_FIELDS, VMStateField("unplug_requested", "bool")))

    def __init__(self, id: str, slot: int = 0, chassis: int = 0) -> None:
        super().__init__(id, express=True)
        self.chassis = chassis
        self.secondary = PCIBus(None, id, bridge=self, first_slot=0, last_slot=0,
                                express=True, hotplug=True)
        self._init_bridge_header()
        self.exp = X.add_pcie_capability(self.config, self.caps, "root-port", slot=slot)
        self.add_msi(1)
        self.set_interrupt_pin(1)
        # before the first reset: powered, indicators off (QEMU's initial value)
        self._set(X.SLTCTL, X.SLTCTL_PIC_OFF | X.SLTCTL_AIC_OFF)
        self.on_removed: Callable[[PCIDevice], None] | None = None
        self.unplug_requested = False
        self._irq_on = False

    def _init_bridge_header(self) -> None:
        cfg = self.config
        for reg in (C.PRIMARY_BUS, C.SECONDARY_BUS, C.SUBORDINATE_BUS, 0x1B):
            cfg.set_wmask(reg, 1, 0xFF)
        cfg.set_wmask(C.IO_BASE, 1, 0xF0)
        cfg.set_wmask(C.IO_LIMIT, 1, 0xF0)
        cfg.set_w1c(C.SECONDARY_STATUS, 2, C.STATUS_W1C)
        cfg.set_wmask(C.MEMORY_BASE, 2, 0xFFF0)
        cfg.set_wmask(C.MEMORY_LIMIT, 2, 0xFFF0)
        cfg.set(C.PREF_MEMORY_BASE, 2, 0x1)  # 64-bit prefetchable window
        cfg.set(C.PREF_MEMORY_LIMIT, 2, 0x1)
        cfg.set_wmask(C.PREF_MEMORY_BASE, 2, 0xFFF0)
        cfg.set_wmask(C.PREF_MEMORY_LIMIT, 2, 0xFFF0)
        cfg.set_wmask(C.PREF_BASE_UPPER32, 4, 0xFFFFFFFF)
        cfg.set_wmask(C.PREF_LIMIT_UPPER32, 4, 0xFFFFFFFF)
        cfg.set_wmask(C.BRIDGE_CONTROL, 2, 0x0FFF)

    # -- slot registers ----------------------------------------------------------------
    def _get(self, reg: int) -> int:
        return self.config.get(self.exp + reg, 2)

    def _set(self, reg: int, value: int) -> None:
        self.config.set(self.exp + reg, 2, value)

    @property
    def occupant(self) -> PCIDevice | None:
        return self.secondary.devices.get(0)

    def reset(self) -> None:
        super().reset()
        for reg in (C.PRIMARY_BUS, C.SECONDARY_BUS, C.SUBORDINATE_BUS):
            self.config.set(reg, 1, 0)
        present = self.occupant is not None
        # an occupied slot comes up powered with its indicator on, an empty one off
        power = X.SLTCTL_PIC_ON if present else X.SLTCTL_PCC | X.SLTCTL_PIC_OFF
        self._set(X.SLTCTL, X.SLTCTL_AIC_OFF | power)
        self._set(X.SLTSTA, X.SLTSTA_PDS if present else 0)
        self._set_link(present)
        self._update_power()
        self._update_hotplug_irq()

    def _update_power(self) -> None:
        """The slot's power reaches the card: off, it is held in reset and hidden."""
        powered = not self._get(X.SLTCTL) & X.SLTCTL_PCC
        if powered == self.secondary.powered:
            return
        self.secondary.powered = powered
        if not powered:
            for device in self.secondary.devices.values():
                device.reset()
        if self.bus is not None:
            self.bus.host.remap()

    def _set_link(self, up: bool) -> None:
        lnksta = self._get(X.LNKSTA) & ~X.LNKSTA_DLLLA
        self._set(X.LNKSTA, lnksta | (X.LNKSTA_DLLLA if up else 0))

    def _event(self, events: int) -> None:
        self._set(X.SLTSTA, self._get(X.SLTSTA) | events)
        self._update_hotplug_irq()

    def _hotplug_irq_wanted(self) -> bool:
        ctl, sta = self._get(X.SLTCTL), self._get(X.SLTSTA)
        return bool(ctl & X.SLTCTL_HPIE) and any(sta & ev and ctl & en
                                                 for ev, en in _EVENT_ENABLES)

    def vmstate_check(self, state: Mapping[str, object]) -> None:
        super().vmstate_check(state)
        config = state["config_bytes"]
        assert isinstance(config, bytes)
        sltsta = int.from_bytes(config[self.exp + X.SLTSTA:self.exp + X.SLTSTA + 2], "little")
        if bool(sltsta & X.SLTSTA_PDS) != (self.occupant is not None):
            # a card hot-plugged on one side only: add it here first (device_add)
            raise VMStateInvalid("config_bytes", "slot presence differs: the state has "
                                 f"{'a' if sltsta & X.SLTSTA_PDS else 'no'} card, this "
                                 f"port {'has one' if self.occupant else 'is empty'}")

    def vmstate_post_load(self) -> None:
        # the edge detector follows the loaded registers: no MSI for an event the
        # source already signalled
        self._irq_on = self._hotplug_irq_wanted()
        self.secondary.powered = not self._get(X.SLTCTL) & X.SLTCTL_PCC
        super().vmstate_post_load()

    def _update_hotplug_irq(self) -> None:
        on = self._hotplug_irq_wanted()
        rising = on and not self._irq_on
        self._irq_on = on
        if self.msi is not None and self.msi.enabled:
            if rising:  # MSI is an edge: one message per new event
                self.msi.notify(0)
            self.set_irq(False)
        else:
            self.set_irq(on)

    # -- the guest's writes --------------------------------------------------------------
    def config_write(self, offset: int, size: int, value: int) -> None:
        old_ctl = self._get(X.SLTCTL)
        super().config_write(offset, size, value)
        if not overlaps(offset, size, self.exp + X.SLTCTL, 4):
            return
        if overlaps(offset, size, self.exp + X.SLTCTL, 2):
            ctl = self._get(X.SLTCTL)
            if self.occupant is not None and _powered_off(ctl) and not _powered_off(old_ctl):
                self._remove_occupant()  # the guest let go of the card: it comes out
            self._update_power()
            self._set(X.SLTSTA, self._get(X.SLTSTA) | X.SLTSTA_CC)
        self._update_hotplug_irq()

    # -- hot-plug, from the board (device_add / device_del) -------------------------------
    def hot_plug(self, device: PCIDevice) -> None:
        """A card goes into the (empty) slot: present, link up, the guest is told
        (QEMU's events: presence changed and the button, a request to power it on)."""
        self.secondary.plug(device, 0)
        if not self.secondary.powered:
            device.reset()
        self._set(X.SLTSTA, self._get(X.SLTSTA) | X.SLTSTA_PDS)
        self._set_link(True)
        self._event(X.SLTSTA_PDC | X.SLTSTA_ABP)

    def request_unplug(self) -> None:
        """device_del: press the Attention Button; the guest powers the slot off when
        it has let go of the device, and only then does the device leave.  A slot
        already off has nobody to ask: the card leaves at once."""
        ctl = self._get(X.SLTCTL)
        if ctl & X.SLTCTL_PIC == X.SLTCTL_PIC_BLINK:  # pciehp's 5 s to cancel a press
            raise PCIBusError("Hot-unplug failed: guest is busy (power indicator "
                              "blinking)")
        if _powered_off(ctl):
            self._remove_occupant()
            self._set(X.SLTSTA, self._get(X.SLTSTA) & ~X.SLTSTA_ABP)
            self._update_hotplug_irq()
            return
        self.unplug_requested = True
        self._event(X.SLTSTA_ABP)

    def _remove_occupant(self) -> None:
        device = self.occupant
        assert device is not None
        self.secondary.unplug(device)
        self.unplug_requested = False
        self._set(X.SLTSTA, self._get(X.SLTSTA) & ~X.SLTSTA_PDS)
        self._set_link(False)
        self._set(X.SLTSTA, self._get(X.SLTSTA) | X.SLTSTA_PDC)
        if self.on_removed is not None:
            self.on_removed(device)

    def describe(self) -> str:
        return "pcie-root-port"


def _number(opts: dict[str, str], name: str) -> int:
    try:
        value = int(opts.get(name, "0"), 0)
    except ValueError:
        raise RegistryError(f"Property 'pcie-root-port.{name}' expects a number") from None
    if not 0 <= value <= 0x1FFF:
        raise RegistryError(f"pcie-root-port: {name}={value} (0..8191)")
    return value


def _create(ctx: object, opts: dict[str, str], name: str) -> PCIeRootPort:
    return PCIeRootPort(name, slot=_number(opts, "slot"), chassis=_number(opts, "chassis"))


register(TypeInfo(
    "pcie-root-port", DEVICE, "PCI Express root port (hot-plug capable slot; its bus "
    "is named by its id)", bus=PCI_BUS, factory=_create,
    properties=(*PCI_PROPERTIES,
                Property("chassis", "uint8", "0", "chassis number"),
                Property("slot", "uint16", "0", "physical slot number of its slot"),
                Property("port", "uint8", "0", "port number (link capabilities)"))))
