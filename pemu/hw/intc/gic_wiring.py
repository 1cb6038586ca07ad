"""What both GIC versions offer the board: interrupt lines (SPIs by number, PPIs per
CPU) and MMIO frames.  A GIC model sets ``core``, ``num_irqs`` and ``version`` and calls
``init_lines(num_cpus)``; ``after_load`` re-routes the SPIs its ``_route_all`` knows."""

from __future__ import annotations

from collections.abc import Callable

from pemu.hw.intc.gic_core import NUM_PRIVATE
from pemu.irq import IRQLine


class Frame:
    """One MMIO region of a GIC, handled by two of its methods."""

    def __init__(self, read: Callable[[int, int], int],
                 write: Callable[[int, int, int], None]) -> None:
        self.mmio_read = read
        self.mmio_write = write


class GicWiring:
    model_name = "GIC"  # in the errors: "GICv2", "GICv3"
    core: object  # gic_core.GicCore
    num_irqs: int

    def init_lines(self, num_cpus: int) -> None:
        core = self.core
        self._ppi_lines = [[IRQLine(lambda lv, c=c, n=n: core.set_line(c, n, lv),  # type: ignore
                                    name=f"gic-cpu{c}-ppi{n}") for n in range(NUM_PRIVATE)]
                           for c in range(num_cpus)]
        self._spi_lines: dict[int, IRQLine] = {}

    def _route_all(self) -> None:
        raise NotImplementedError

    def after_load(self) -> None:
        self._route_all()

    def set_spi(self, intid: int, level: bool) -> None:
        if not NUM_PRIVATE <= intid < self.num_irqs:
            raise ValueError(f"{self.model_name}: SPI {intid} outside 32..{self.num_irqs - 1}")
        self.core.set_line(0, intid, bool(level))  # type: ignore[attr-defined]

    def spi_line(self, intid: int) -> IRQLine:
        if intid not in self._spi_lines:
            if not NUM_PRIVATE <= intid < self.num_irqs:
                raise ValueError(f"{self.model_name}: SPI {intid} outside "
                                 f"32..{self.num_irqs - 1}")
            self._spi_lines[intid] = IRQLine(lambda lv: self.set_spi(intid, lv),
                                             name=f"gic-spi{intid}")
        return self._spi_lines[intid]

    def ppi_line(self, cpu_index: int, intid: int) -> IRQLine:
        if not 16 <= intid < NUM_PRIVATE:
            raise ValueError(f"{self.model_name}: PPI {intid} outside 16..31")
        return self._ppi_lines[cpu_index][intid]
