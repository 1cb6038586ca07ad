"""The migratable state every PCI function has, declared once as VMState fields
(``PCI_FUNCTION_FIELDS``) that each PCI device class puts in its own declaration.

What travels: the config space bytes (the header with BAR values, the command and
status registers, every capability: MSI's address/data/mask/pending, the PCIe
capability's control and slot registers, a bridge's bus numbers and windows), the
INTx level, and MSI-X's table and PBA (they live in a BAR, not in config space).
What is derived on load (``PCIFunctionState.vmstate_post_load``): the BAR mappings in
the host's address windows and the INTx line the level drives.  Identity (IDs, class,
header type) is configuration: a state of another device is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pemu.hw.core import VMStateField, VMStateInvalid
from pemu.hw.pci import config as C

if TYPE_CHECKING:
    from pemu.hw.pci.bus import PCIBus
    from pemu.hw.pci.config import ConfigSpace
    from pemu.hw.pci.msix import MSIX

# The read-only identity parts of the header: vendor and device ID, revision and class.
_IDENTITY = ((C.VENDOR_ID, C.COMMAND), (C.REVISION_ID, C.CACHE_LINE_SIZE))
MSIX_TABLE_MAX = 2048 * 16

PCI_FUNCTION_FIELDS = (
    VMStateField("config_bytes", "bytes", max=C.PCIE_CONFIG_SIZE),
    VMStateField("intx_level", "bool"),
    VMStateField("msix_table", "bytes", max=MSIX_TABLE_MAX),
    VMStateField("msix_pba", "bytes", max=MSIX_TABLE_MAX // 128),
)


class PCIFunctionState:
    """Mixed into ``PCIDevice``: the views the fields name, their checks, and what a
    load re-derives.  Subclasses that add fields call ``super()`` in both hooks."""

    # what PCIDevice provides
    config: ConfigSpace
    msix: MSIX | None
    bus: PCIBus | None
    intx_level: bool

    def set_irq(self, level: bool) -> None:
        raise NotImplementedError

    # -- views (the declared attributes) ------------------------------------------------
    @property
    def config_bytes(self) -> bytes:
        return bytes(self.config.data)

    @config_bytes.setter
    def config_bytes(self, value: bytes) -> None:
        self.config.data[:] = value

    @property
    def msix_table(self) -> bytes:
        msix = self.msix
        return bytes(msix.table) if msix is not None else b""

    @msix_table.setter
    def msix_table(self, value: bytes) -> None:
        if self.msix is not None:
            self.msix.table[:] = value

    @property
    def msix_pba(self) -> bytes:
        msix = self.msix
        return bytes(msix.pending) if msix is not None else b""

    @msix_pba.setter
    def msix_pba(self, value: bytes) -> None:
        if self.msix is not None:
            self.msix.pending[:] = value

    # -- checks and re-derivation ------------------------------------------------------
    def vmstate_check(self, state: Mapping[str, object]) -> None:
        config = state["config_bytes"]
        assert isinstance(config, bytes)
        ours = self.config.data
        if len(config) != len(ours):
            raise VMStateInvalid("config_bytes", f"{len(config)} bytes of config space, "
                                 f"this function has {len(ours)}")
        for start, end in _IDENTITY:
            if config[start:end] != ours[start:end]:
                raise VMStateInvalid("config_bytes", "the state is of another device "
                                     f"(IDs {config[start:end].hex()}, this one "
                                     f"{bytes(ours[start:end]).hex()})")
        if (config[C.HEADER_TYPE] & 0x7F) != (ours[C.HEADER_TYPE] & 0x7F):
            raise VMStateInvalid("config_bytes", "another header type")
        for name in ("msix_table", "msix_pba"):
            value = state[name]
            assert isinstance(value, bytes)
            if len(value) != len(getattr(self, name)):
                raise VMStateInvalid(name, f"{len(value)} bytes, this function has "
                                     f"{len(getattr(self, name))} (another vector count)")

    def vmstate_post_load(self) -> None:
        # INTx: the loaded level onto the host's line (and Status bit 3 with it);
        # BARs: the host's windows rebuilt from the loaded BAR values and command.
        self.set_irq(self.intx_level)
        bus = self.bus
        if bus is not None:
            bus.host.remap()
