"""The device model core shared by every board and accelerator.

Devices do not know which accelerator runs the CPU.  They see:
  * guest memory: a ``pemu.memory.AddressSpace`` (DMA through ``view``/``read``/``write``);
  * interrupt lines: ``IRQLine`` objects whose ``set_level`` the device calls;
  * their backend: a chardev, a block backend, a network backend.

An ``IRQLine`` is wired by the board to whatever delivers the interrupt: a PLIC input
under TCG, a KVM irqfd or KVM_IRQ_LINE under KVM.

Device state that migration and savevm must carry is described once, next to the
device, as a versioned ``VMState`` field list (see ``Device.vmstate``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


class IRQLine:
    """A level-triggered interrupt line.  The sink is called on every level change."""

    def __init__(self, sink: Callable[[bool], None] | None = None, name: str = "irq") -> None:
        self.name = name
        self.level = False
        self._sink = sink

    def connect(self, sink: Callable[[bool], None]) -> None:
        self._sink = sink
        if self.level:
            sink(True)

    def set_level(self, level: bool) -> None:
        level = bool(level)
        if level == self.level:
            return
        self.level = level
        if self._sink is not None:
            self._sink(level)

    def raise_(self) -> None:
        self.set_level(True)

    def lower(self) -> None:
        self.set_level(False)

    def pulse(self) -> None:
        """Edge-style delivery for sinks (irqfd) that latch an edge."""
        self.set_level(True)
        self.set_level(False)


@dataclass(frozen=True)
class VMStateField:
    """One migratable attribute: its name and a struct-like kind.

    kinds: "u8", "u16", "u32", "u64", "bool", "bytes", "u32[]", "u64[]" (lists of ints),
    "str".
    """

    name: str
    kind: str


@dataclass(frozen=True)
class VMState:
    name: str
    version: int
    fields: tuple[VMStateField, ...] = field(default_factory=tuple)


class Device:
    """Base of every device model.

    Subclasses set ``vmstate`` to describe the state that survives migration, and
    implement ``reset`` to put the device in its power-on state.
    """

    vmstate: VMState | None = None
    type_name: str = "device"

    def __init__(self, id: str | None = None) -> None:
        self.id = id

    def reset(self) -> None:
        """Return to the power-on state.  Called by the board on system_reset."""

    def realize(self) -> None:
        """Called once after the board has wired the device."""

    def save_state(self) -> dict:
        if self.vmstate is None:
            return {}
        return {f.name: getattr(self, f.name) for f in self.vmstate.fields}

    def load_state(self, state: dict) -> None:
        if self.vmstate is None:
            return
        for f in self.vmstate.fields:
            if f.name in state:
                setattr(self, f.name, state[f.name])
