"""The per-interrupt register blocks, laid out alike in the GICv2 distributor, the
GICv3 distributor and the GICv3 redistributor's SGI frame:

  0x080 IGROUPR     0x100 ISENABLER   0x180 ICENABLER   0x200 ISPENDR
  0x280 ICPENDR     0x300 ISACTIVER   0x380 ICACTIVER   0x400 IPRIORITYR (a byte each)
  0xC00 ICFGR (two bits each: 0b10 = edge)

A frame passes the INTIDs it owns (``lo``..``hi``): the GICv3 distributor has only the
SPIs (with affinity routing the banked ones are the redistributor's), the redistributor
only 0-31, GICv2's distributor all of them, banked by the accessing CPU.  Registers of
INTIDs a frame does not own read as zero and ignore writes.
"""

from __future__ import annotations

from pemu.hw.intc.gic_core import NUM_PRIVATE, SGI_MASK, BankedBits, GicCore

IGROUPR = 0x080
ISENABLER = 0x100
ICENABLER = 0x180
ISPENDR = 0x200
ICPENDR = 0x280
ISACTIVER = 0x300
ICACTIVER = 0x380
IPRIORITYR = 0x400
IPRIORITYR_END = 0x800
ICFGR = 0xC00
ICFGR_END = 0xD00


def handles(offset: int) -> bool:
    """Is ``offset`` in one of the per-interrupt blocks?"""
    return IGROUPR <= offset < IPRIORITYR_END or ICFGR <= offset < ICFGR_END


def _owned_mask(core: GicCore, lo: int, hi: int) -> int:
    return ((1 << min(hi, core.num_irqs)) - 1) & ~((1 << lo) - 1)


def _bitmap_for(core: GicCore, block: int) -> BankedBits | None:
    return {IGROUPR: core.group, ISENABLER: core.enabled, ICENABLER: core.enabled,
            ISACTIVER: core.active, ICACTIVER: core.active}.get(block)


def read(core: GicCore, cpu: int, offset: int, size: int, lo: int, hi: int) -> int:
    """A read of ``size`` bytes at ``offset`` (caller holds ``core.lock``)."""
    if IPRIORITYR <= offset < IPRIORITYR_END:
        first = offset - IPRIORITYR
        return sum(core.priority(cpu, first + i) << (8 * i)
                   for i in range(size) if lo <= first + i < min(hi, core.num_irqs))
    owned = _owned_mask(core, lo, hi)
    if ICFGR <= offset < ICFGR_END:
        first = (offset - ICFGR) * 4  # 16 interrupts per word
        edge = core.edge.get(cpu) & owned
        value = 0
        for i in range(size * 4):
            if edge >> (first + i) & 1:
                value |= 0b10 << (2 * i)
        return value
    block = offset & ~0x7F
    first = (offset - block) * 8
    if block in (ISPENDR, ICPENDR):
        bits = core.pending(cpu)
    else:
        bitmap = _bitmap_for(core, block)
        if bitmap is None:
            return 0
        bits = bitmap.get(cpu)
    return ((bits & owned) >> first) & ((1 << (8 * size)) - 1)


def write(core: GicCore, cpu: int, offset: int, size: int, value: int, lo: int,
          hi: int) -> None:
    """A write; updates the outputs it can affect (caller holds ``core.lock``)."""
    if IPRIORITYR <= offset < IPRIORITYR_END:
        first = offset - IPRIORITYR
        for i in range(size):
            if lo <= first + i < min(hi, core.num_irqs):
                core.set_priority(cpu, first + i, value >> (8 * i))
        _update_range(core, cpu, first, first + size)
        return
    owned = _owned_mask(core, lo, hi)
    if ICFGR <= offset < ICFGR_END:
        first = (offset - ICFGR) * 4
        # SGIs are edge-triggered whatever is written (their ICFGR bits are read-only).
        changeable = owned & ~SGI_MASK
        edge = core.edge.get(cpu)
        for i in range(size * 4):
            bit = 1 << (first + i)
            if changeable & bit:
                edge = edge | bit if value >> (2 * i + 1) & 1 else edge & ~bit
        core.edge.put(cpu, edge)
        _update_range(core, cpu, first, first + size * 4)
        return
    block = offset & ~0x7F
    first = (offset - block) * 8
    mask = ((value & ((1 << (8 * size)) - 1)) << first) & owned
    if block == IGROUPR:
        all_mask = (((1 << (8 * size)) - 1) << first) & owned
        core.group.put(cpu, (core.group.get(cpu) & ~all_mask) | mask)
    elif block in (ISENABLER, ISACTIVER):
        bitmap = core.enabled if block == ISENABLER else core.active
        bitmap.put(cpu, bitmap.get(cpu) | mask)
    elif block in (ICENABLER, ICACTIVER):
        bitmap = core.enabled if block == ICENABLER else core.active
        bitmap.put(cpu, bitmap.get(cpu) & ~mask)
    elif block == ISPENDR:
        core.latch.put(cpu, core.latch.get(cpu) | mask)
    elif block == ICPENDR:
        # Only the latch clears: a level interrupt whose line is high stays pending.
        core.latch.put(cpu, core.latch.get(cpu) & ~mask)
    else:
        return
    _update_range(core, cpu, first, first + 8 * size)


def _update_range(core: GicCore, cpu: int, first: int, end: int) -> None:
    if end <= NUM_PRIVATE:
        core.update_cpu(cpu)
    else:
        core.update()
