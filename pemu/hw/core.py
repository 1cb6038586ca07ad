"""The device model core shared by every board and accelerator.

Devices do not know which accelerator runs the CPU.  They see:
  * guest memory: a ``pemu.memory.AddressSpace`` (DMA through ``view``/``read``/``write``);
  * interrupt lines: ``IRQLine`` objects whose ``set_level`` the device calls;
  * their backend: a chardev, a block backend, a network backend.

An ``IRQLine`` is wired by the board to whatever delivers the interrupt: a PLIC input
under TCG, a KVM irqfd or KVM_IRQ_LINE under KVM.

Device state that migration and savevm must carry is described once, next to the
device, as a versioned ``VMState`` field list (see ``Device.vmstate``); pemu/migration
generates saving, loading and their checks from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pemu.irq import IRQLine  # noqa: F401 - devices take it from here

# Fixed-width kinds and their size in the stream; "bool" travels as one byte 0 or 1.
SCALAR_KINDS = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "bool": 1}
FIELD_KINDS = frozenset([*SCALAR_KINDS, "bytes", *(f"{k}[]" for k in SCALAR_KINDS)])


@dataclass(frozen=True)
class VMStateField:
    """One piece of migratable state: the attribute (or property) that holds it and how.

    kind   "u8" "u16" "u32" "u64" "bool": one value; "bytes": a byte string of at most
           ``max`` bytes; "u8[]" ... "bool[]": a list whose length is the length the
           device's own attribute has (it follows the configuration: harts, sources,
           queues), so a stream from a differently configured device is refused.
    since  the VMState version that added the field.  A stream of an older version does
           not carry it, and the loaded device keeps the field's reset value.
    max    the largest valid value (of each element, for arrays; the length, for
           "bytes"): an int, or the name of a device attribute that holds it (a bound that
           depends on the configuration, such as the PLIC's priority bits).
    equal  configuration, not state: saved so that the loader can check that the
           stream's value equals the receiving device's, never written back (QEMU's
           ``VMSTATE_*_EQUAL``).  The attribute may be read-only.
    """

    name: str
    kind: str
    since: int = 1
    max: int | str | None = None
    equal: bool = False

    @property
    def element_kind(self) -> str:
        """The kind of one value: the kind itself, or an array's element kind."""
        return self.kind[:-2] if self.kind.endswith("[]") else self.kind

    @property
    def is_array(self) -> bool:
        return self.kind.endswith("[]")


@dataclass(frozen=True)
class VMState:
    """A device's migratable state: a named, versioned field list (QEMU's
    ``VMStateDescription``).  The migration layer (pemu/migration) generates saving,
    loading and their checks from it.

    version          bumped whenever a field is added (the new field says ``since``).
    minimum_version  the oldest stream version this device still loads; older ones are
                     refused with a message naming both versions.
    """

    name: str
    version: int
    fields: tuple[VMStateField, ...] = field(default_factory=tuple)
    minimum_version: int = 1

    def __post_init__(self) -> None:
        # A broken declaration fails at import, not at the first savevm.
        if not 1 <= self.minimum_version <= self.version:
            raise ValueError(f"vmstate {self.name}: minimum_version {self.minimum_version} "
                             f"outside 1..{self.version}")
        seen = set()
        for f in self.fields:
            if f.name in seen:
                raise ValueError(f"vmstate {self.name}: field {f.name} declared twice")
            seen.add(f.name)
            if f.kind not in FIELD_KINDS:
                raise ValueError(f"vmstate {self.name}: field {f.name}: unknown kind {f.kind!r}")
            if not 1 <= f.since <= self.version:
                raise ValueError(f"vmstate {self.name}: field {f.name}: since={f.since} "
                                 f"outside 1..{self.version}")
            if f.kind == "bytes" and not isinstance(f.max, int):
                raise ValueError(f"vmstate {self.name}: field {f.name}: bytes need a max length")

    def fields_in(self, version: int) -> tuple[VMStateField, ...]:
        """The fields a stream of ``version`` carries, in stream order."""
        return tuple(f for f in self.fields if f.since <= version)


class BlockerMessage(str):
    """A migration blocker (an entry of a board's ``migration_blockers()``) that says
    why in its own words, as QEMU's blockers set with error_setg do (virtio-9p's
    mounted export), instead of naming a device."""


class VMStateInvalid(ValueError):
    """A loaded state the device cannot take (raised by ``Device.vmstate_check``)."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


class Device:
    """Base of every device model.

    Subclasses set ``vmstate`` to describe the state that survives migration, and
    implement ``reset`` to put the device in its power-on state.  A device whose state
    other threads touch (timers, chardev input) guards it with ``self.lock``, an RLock;
    saving and loading hold that lock.
    """

    vmstate: VMState | None = None
    type_name: str = "device"

    def __init__(self, id: str | None = None) -> None:
        self.id = id

    def reset(self) -> None:
        """Return to the power-on state.  Called by the board on system_reset."""

    def realize(self) -> None:
        """Called once after the board has wired the device."""

    # -- migration hooks (the field list itself is ``vmstate``) ------------------------
    def vmstate_check(self, state: Mapping[str, object]) -> None:
        """Checks on a parsed state, before any of it is applied, that need the device's
        configuration or several fields at once (the per-field kind, length and ``max``
        checks are already done).  ``state`` holds the fields the stream carried: all of
        them, or for an older version those with ``since`` <= that version.  Raise
        ``VMStateInvalid(field, why)``."""

    def vmstate_post_load(self) -> None:
        """Re-derive what the declaration does not carry (IRQ levels, timers, values
        cached from other fields) after a load has applied the fields.  Runs under
        ``self.lock`` when the device has one."""
