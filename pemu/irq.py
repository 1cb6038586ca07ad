"""An interrupt line: the one wire every layer may hold.

Devices raise them (pemu/hw), boards wire them to an interrupt controller or a KVM
irqfd, and a CPU may own one as an output: the Arm generic timer's lines leave the CPU
(pemu/target) for the GIC.  It is a leaf module, so that a target need not import the
device layer for a wire.
"""

from __future__ import annotations

from collections.abc import Callable


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
