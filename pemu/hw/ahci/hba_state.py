"""ich9-ahci's migratable state (``AhciState``, a mixin of ``AhciController``).

What travels: the PCI function's fields (config space, MSI, INTx), GHC and IS, every
port's registers (PxCLB, PxFB, PxIS, PxIE, PxCMD, PxTFD, PxSIG, PxSSTS, PxSCTL, PxSERR,
PxSACT, PxCI, PxSNTF) as arrays of one entry per port, and the ATAPI drives' sense
data (what REQUEST SENSE will answer).  ``drive_kinds`` must match: the target has
the same drives on the same ports.

No command is in flight in a saved state: as QEMU drains its block requests at stop,
the board's ``migration_pre_save`` calls ``drain``, which waits for every command the
drives run on their I/O threads; each completes into guest RAM (data, PRDBC, FISes)
and the registers (PxCI/PxSACT bits clear, PxIS) before the save.  A slot still set
in PxCI after that is one that failed (its error is in PxTFD), waiting for the host's
recovery, which the target does the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

from pemu.hw.ahci import regs as R
from pemu.hw.core import VMStateField, VMStateInvalid
from pemu.hw.pci.function_state import PCI_FUNCTION_FIELDS
from pemu.hw.scsi.sense import SENSE_MAX_LENGTH
from pemu.hw.state_records import pack_records, unpack_records

NO_DRIVE, DISK, CD = 0, 1, 2
# (field, AhciPort attribute, kind)
_PORT_REGS = (("port_clb", "clb", "u64[]"), ("port_fb", "fb", "u64[]"),
              ("port_is", "is_", "u32[]"), ("port_ie", "ie", "u32[]"),
              ("port_cmd", "cmd", "u32[]"), ("port_tfd", "tfd", "u32[]"),
              ("port_sig", "sig", "u32[]"), ("port_ssts", "ssts", "u32[]"),
              ("port_sctl", "sctl", "u32[]"), ("port_serr", "serr", "u32[]"),
              ("port_sact", "sact", "u32[]"), ("port_ci", "ci", "u32[]"),
              ("port_sntf", "sntf", "u32[]"))

AHCI_FIELDS = (
    *PCI_FUNCTION_FIELDS,
    VMStateField("drive_kinds", "u8[]", equal=True),
    VMStateField("ghc", "u32"),
    VMStateField("is_", "u32"),
    *(VMStateField(name, kind) for name, _, kind in _PORT_REGS),
    VMStateField("drive_sense", "bytes", max=32 * (SENSE_MAX_LENGTH + 2)),
)


def _port_view(attr: str) -> property:
    def get(self) -> list[int]:
        return [getattr(p, attr) for p in self.ports]

    def put(self, values: list[int]) -> None:
        for p, v in zip(self.ports, values, strict=True):
            setattr(p, attr, v)
    return property(get, put)


def _kind(port) -> int:
    if port.drive is None:
        return NO_DRIVE
    return CD if hasattr(port.drive, "unit") else DISK  # AtapiCd wraps an MMC unit


class AhciState:
    """Views, checks and post-load of ``AhciController.vmstate``."""

    locals().update({name: _port_view(attr) for name, attr, _ in _PORT_REGS})

    @property
    def drive_kinds(self) -> list[int]:
        return [_kind(p) for p in self.ports]  # type: ignore[attr-defined]

    @property
    def drive_sense(self) -> bytes:
        return pack_records([p.drive.unit.pending_sense if _kind(p) == CD else b""
                             for p in self.ports])  # type: ignore[attr-defined]

    @drive_sense.setter
    def drive_sense(self, blob: bytes) -> None:
        for p, sense in zip(self.ports, unpack_records(blob) or [], strict=False):  # type: ignore[attr-defined]
            if _kind(p) == CD:
                p.drive.unit.pending_sense = sense

    def vmstate_check(self, state: Mapping[str, object]) -> None:
        super().vmstate_check(state)  # type: ignore[misc]  # PCIFunctionState's
        ports = self.ports  # type: ignore[attr-defined]
        if state["ghc"] & ~(R.GHC_AE | R.GHC_IE) or not state["ghc"] & R.GHC_AE:  # type: ignore[operator]
            raise VMStateInvalid("ghc", f"0x{state['ghc']:x} is not a GHC this HBA holds")
        if state["is_"] >> len(ports):  # type: ignore[operator]
            raise VMStateInvalid("is_", "interrupt bits for ports this HBA does not have")
        for n, (clb, fb) in enumerate(zip(state["port_clb"], state["port_fb"], strict=True)):  # type: ignore[call-overload]
            if clb & 0x3FF or fb & 0xFF:
                raise VMStateInvalid("port_clb" if clb & 0x3FF else "port_fb",
                                     f"port {n}: the command list must be 1 KiB aligned "
                                     "and the FIS area 256 bytes aligned")
        for n, cmd in enumerate(state["port_cmd"]):  # type: ignore[arg-type]
            if cmd & ~R.CMD_WRITABLE:
                raise VMStateInvalid("port_cmd", f"port {n}: 0x{cmd:x} sets bits the "
                                     "register does not keep")
        sense = unpack_records(state["drive_sense"], 0, SENSE_MAX_LENGTH)  # type: ignore[arg-type]
        if sense is None or len(sense) != len(ports):
            raise VMStateInvalid("drive_sense", "not one sense record per port")
        if any(s and _kind(p) != CD for s, p in zip(sense, ports, strict=True)):
            raise VMStateInvalid("drive_sense", "sense data for a port without a CD")

    def vmstate_post_load(self) -> None:
        super().vmstate_post_load()  # type: ignore[misc]  # INTx, BARs
        for port in self.ports:  # type: ignore[attr-defined]
            port.generation += 1  # nothing from before the load completes into it

    def drain(self) -> None:
        """Wait until every command the drives run on I/O threads has completed
        (migration saves no commands in flight).  Called without ``lock``: the
        completions take it."""
        for port in self.ports:  # type: ignore[attr-defined]
            drain = getattr(port.drive.backend, "drain", None) if port.drive else None
            if callable(drain):
                drain()
