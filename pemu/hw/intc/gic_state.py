"""The migratable state both GIC versions share, declared once.

``GicCore`` keeps its bitmaps as Python ints and its CPU interfaces as objects; the
properties here show them as the flat lists a ``VMState`` carries (banked bits as one
32-bit word per CPU, SPI bits as 32-bit words, priorities as bytes, CPU-interface
fields as one list per field), and take them back.  A version adds its own fields
(GICv3's IROUTER and GICR_WAKER, GICv2's ITARGETSR) with ``gic_vmstate(extra=...)``.
"""

from __future__ import annotations

from collections.abc import Mapping

from pemu.hw.core import VMState, VMStateField, VMStateInvalid
from pemu.hw.intc.bitmap_words import from_words, to_words, words_for
from pemu.hw.intc.gic_core import PRIVATE_MASK, SGI_MASK, GicCore

BITMAPS = ("enabled", "group", "edge", "level", "latch", "active")
CPU_FIELDS = (("pmr", "u8[]"), ("bpr0", "u8[]"), ("bpr1", "u8[]"), ("grpen0", "bool[]"),
              ("grpen1", "bool[]"), ("eoimode", "bool[]"), ("cbpr", "bool[]"),
              ("fiq_en", "bool[]"))
AP_WORDS = 4  # active-priority bits per CPU and group: up to 128 (GICC_APR0-3)


def gic_vmstate(name: str, extra: tuple[tuple[str, str], ...] = ()) -> VMState:
    fields = [VMStateField("num_cpus", "u32", equal=True),
              VMStateField("num_irqs", "u32", equal=True),
              VMStateField("dist_grp0", "bool"), VMStateField("dist_grp1", "bool")]
    for bitmap in BITMAPS:
        fields += [VMStateField(f"{bitmap}_priv", "u32[]"),
                   VMStateField(f"{bitmap}_spi", "u32[]")]
    fields += [VMStateField("priv_priority", "u8[]"), VMStateField("spi_priority", "u8[]")]
    fields += [VMStateField(f"cpu_{n}", kind, max=7 if n.startswith("bpr") else None)
               for n, kind in CPU_FIELDS]
    fields += [VMStateField("cpu_ap0_words", "u32[]"), VMStateField("cpu_ap1_words", "u32[]")]
    fields += [VMStateField(n, kind) for n, kind in extra]
    return VMState(name, 1, tuple(fields))


def _bitmap_property(bitmap: str, part: str) -> property:
    def get(self: GicStateMixin) -> list[int]:
        bits = getattr(self.core, bitmap)
        if part == "priv":
            return list(bits.priv)
        return to_words(bits.spi, words_for(self.core.num_irqs))

    def put(self: GicStateMixin, value: list[int]) -> None:
        bits = getattr(self.core, bitmap)
        if part == "priv":
            bits.priv = [v & PRIVATE_MASK for v in value]
        else:
            bits.spi = from_words(value) & ~PRIVATE_MASK & self.core.valid
    return property(get, put)


def _cpu_property(name: str) -> property:
    def get(self: GicStateMixin) -> list[int]:
        return [int(getattr(c, name)) for c in self.core.cpus]

    def put(self: GicStateMixin, value: list[int]) -> None:
        kind = dict(CPU_FIELDS)[name]
        for c, v in zip(self.core.cpus, value, strict=True):
            setattr(c, name, bool(v) if kind == "bool[]" else v)
    return property(get, put)


def _ap_property(name: str) -> property:
    def get(self: GicStateMixin) -> list[int]:
        return [w for c in self.core.cpus for w in to_words(getattr(c, name), AP_WORDS)]

    def put(self: GicStateMixin, value: list[int]) -> None:
        for i, c in enumerate(self.core.cpus):
            setattr(c, name, from_words(value[AP_WORDS * i:AP_WORDS * (i + 1)]))
    return property(get, put)


class GicStateMixin:
    """Migration views of ``self.core``; the class sets ``core`` and ``num_cpus``."""

    core: GicCore

    @property
    def dist_grp0(self) -> bool:
        return self.core.dist_grp0

    @dist_grp0.setter
    def dist_grp0(self, value: bool) -> None:
        self.core.dist_grp0 = value

    @property
    def dist_grp1(self) -> bool:
        return self.core.dist_grp1

    @dist_grp1.setter
    def dist_grp1(self, value: bool) -> None:
        self.core.dist_grp1 = value

    @property
    def priv_priority(self) -> list[int]:
        return [p for bank in self.core.priv_priority for p in bank]

    @priv_priority.setter
    def priv_priority(self, value: list[int]) -> None:
        for cpu, bank in enumerate(self.core.priv_priority):
            bank[:] = bytes(value[32 * cpu:32 * cpu + 32])

    @property
    def spi_priority(self) -> list[int]:
        return list(self.core.spi_priority)

    @spi_priority.setter
    def spi_priority(self, value: list[int]) -> None:
        self.core.spi_priority[:] = bytes(value)

    def vmstate_check(self, state: Mapping[str, object]) -> None:
        # Bits for INTIDs this GIC does not have, or a level-triggered SGI, are states
        # no guest could have produced.
        for bitmap in BITMAPS:
            words = state.get(f"{bitmap}_spi")
            if words is not None and from_words(words) & ~(self.core.valid & ~PRIVATE_MASK):  # type: ignore[arg-type]
                raise VMStateInvalid(f"{bitmap}_spi", "bits for interrupts this GIC lacks")
        edge = state.get("edge_priv")
        if edge is not None and any(w & SGI_MASK != SGI_MASK for w in edge):  # type: ignore[attr-defined]
            raise VMStateInvalid("edge_priv", "SGIs are always edge-triggered")

    def vmstate_post_load(self) -> None:
        self.after_load()
        self.core.update()

    def after_load(self) -> None:
        """Re-derive what a version caches from the loaded fields (its SPI routes)."""


for _bitmap in BITMAPS:
    for _part in ("priv", "spi"):
        setattr(GicStateMixin, f"{_bitmap}_{_part}", _bitmap_property(_bitmap, _part))
for _name, _kind in CPU_FIELDS:
    setattr(GicStateMixin, f"cpu_{_name}", _cpu_property(_name))
for _name in ("ap0", "ap1"):
    setattr(GicStateMixin, f"cpu_{_name}_words", _ap_property(_name))
