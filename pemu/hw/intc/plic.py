"""The SiFive Platform-Level Interrupt Controller, laid out as on QEMU's RISC-V virt.

Map (offsets from the base, 0x0c000000 on virt):
  0x000000 + 4*src        priority (0 = never interrupts; 3 bits on virt)
  0x001000 + 4*word       pending bits, read-only
  0x002000 + 0x80*ctx     enable bits for context ctx
  0x200000 + 0x1000*ctx   threshold; +4 claim (read) / complete (write)

Contexts are two per hart, M-mode then S-mode (context 2*h is hart h's MEIP, 2*h+1 its
SEIP), as QEMU's virt board describes in its device tree.  Inputs are level-triggered
through a gateway: a rising line makes the source pending, and the pending bit stays
until a claim (it is not withdrawn if the line drops first); a claimed source forwards
nothing until the handler completes it, and completing a source whose line is still
high makes it pending again.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from pemu.hw.core import Device, IRQLine, VMState, VMStateField, VMStateInvalid

PRIORITY_BASE = 0x000000
PENDING_BASE = 0x001000
ENABLE_BASE = 0x002000
ENABLE_STRIDE = 0x80
CONTEXT_BASE = 0x200000
CONTEXT_STRIDE = 0x1000

NUM_SOURCES = 96  # QEMU virt: VIRT_IRQCHIP_NUM_SOURCES (source 0 does not exist)
PRIORITY_BITS = 3  # 7 usable priority levels, as virt's "riscv,max-priority"


def plic_region_size(num_contexts: int) -> int:
    return CONTEXT_BASE + CONTEXT_STRIDE * num_contexts


class PLIC(Device):
    """``PLIC(num_harts, num_sources=96)``.

    Inputs: ``plic.input(n)`` is source n's IRQLine, to hand to a device.
    Outputs: ``plic.outputs[ctx]`` (or ``m_external(h)``/``s_external(h)``): connect
    each to the hart's MEIP/SEIP bit with ``IRQLine.connect(sink)``.
    Map with ``add_mmio("plic", 0x0c000000, plic.region_size, plic)``.
    """

    type_name = "riscv.sifive.plic"
    # Bitmaps are wider than 64 bits (96 sources), so they migrate as 32-bit words.
    # Priorities and thresholds are bounded by the configured priority bits; bitmap bits
    # of sources that do not exist are refused by vmstate_check.
    vmstate = VMState("plic", 1, (
        VMStateField("priority", "u32[]", max="priority_mask"),
        VMStateField("pending_words", "u32[]"), VMStateField("claimed_words", "u32[]"),
        VMStateField("level_words", "u32[]"), VMStateField("enable_words", "u32[]"),
        VMStateField("threshold", "u32[]", max="priority_mask")))

    def __init__(self, num_harts: int, num_sources: int = NUM_SOURCES,
                 priority_bits: int = PRIORITY_BITS, id: str | None = None) -> None:
        super().__init__(id)
        self.num_harts = num_harts
        self.num_sources = num_sources
        self.num_contexts = 2 * num_harts
        self.priority_mask = (1 << priority_bits) - 1
        self.region_size = plic_region_size(self.num_contexts)
        self._valid = ((1 << num_sources) - 1) & ~1  # source 0 is reserved
        self.lock = threading.RLock()
        self.outputs = [IRQLine(name=f"plic-ctx{c}") for c in range(self.num_contexts)]
        self._inputs = [IRQLine(lambda level, n=n: self.set_irq(n, level), name=f"plic-{n}")
                        for n in range(num_sources)]
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.priority = [0] * self.num_sources
            self.pending = 0
            self.claimed = 0
            self.enable = [0] * self.num_contexts
            self.threshold = [0] * self.num_contexts
            self.levels = 0
            for n, line in enumerate(self._inputs):
                if line.level:
                    self.levels |= 1 << n
            self.pending = self.levels & self._valid
            self._update()

    # -- migration views of the bitmaps ----------------------------------------------
    def _words(self, bits: int) -> list[int]:
        return [(bits >> (32 * i)) & 0xFFFFFFFF for i in range(self._nwords)]

    @staticmethod
    def _join(words: list[int]) -> int:
        return sum((w & 0xFFFFFFFF) << (32 * i) for i, w in enumerate(words))

    @property
    def _nwords(self) -> int:
        return (self.num_sources + 31) // 32

    pending_words = property(lambda self: self._words(self.pending),
                             lambda self, v: setattr(self, "pending", self._join(v)))
    claimed_words = property(lambda self: self._words(self.claimed),
                             lambda self, v: setattr(self, "claimed", self._join(v)))
    level_words = property(lambda self: self._words(self.levels),
                           lambda self, v: setattr(self, "levels", self._join(v)))

    @property
    def enable_words(self) -> list[int]:
        return [w for e in self.enable for w in self._words(e)]

    @enable_words.setter
    def enable_words(self, words: list[int]) -> None:
        n = self._nwords
        self.enable = [self._join(words[c * n:(c + 1) * n]) for c in range(self.num_contexts)]

    def vmstate_check(self, state: Mapping[str, object]) -> None:
        # A bit for a source that does not exist would index past ``priority``.
        for name in ("pending_words", "claimed_words", "level_words"):
            if name in state and self._join(state[name]) & ~self._valid:  # type: ignore[arg-type]
                raise VMStateInvalid(name, "bits set for sources this PLIC does not have")
        if "priority" in state and state["priority"][0]:  # type: ignore[index]
            raise VMStateInvalid("priority", "source 0 does not exist but has a priority")
        words = state.get("enable_words", [])
        n = self._nwords
        for ctx in range(self.num_contexts):
            if self._join(words[ctx * n:(ctx + 1) * n]) & ~self._valid:  # type: ignore[index]
                raise VMStateInvalid("enable_words", f"context {ctx} enables sources this "
                                                     "PLIC does not have")

    def vmstate_post_load(self) -> None:
        self._update()  # the context outputs follow the loaded bitmaps

    # -- wiring ---------------------------------------------------------------------
    def input(self, n: int) -> IRQLine:
        if not 0 < n < self.num_sources:
            raise ValueError(f"PLIC source {n} out of range 1..{self.num_sources - 1}")
        return self._inputs[n]

    def m_external(self, hart: int) -> IRQLine:
        return self.outputs[2 * hart]

    def s_external(self, hart: int) -> IRQLine:
        return self.outputs[2 * hart + 1]

    def set_irq(self, n: int, level: bool) -> None:
        """A device line changed (any thread)."""
        if not 0 < n < self.num_sources:
            return
        with self.lock:
            bit = 1 << n
            if level:
                self.levels |= bit
                if not self.claimed & bit:
                    # The gateway forwards one request per assertion; while that
                    # request is being handled (claimed) it forwards nothing more.
                    self.pending |= bit
            else:
                # A request already forwarded stays pending until claimed: the PLIC
                # core latches it (the SiFive manuals and QEMU agree).
                self.levels &= ~bit
            self._update()

    # -- arbitration ---------------------------------------------------------------------
    def _best(self, ctx: int) -> int:
        """The source this context would get from a claim now (0 if none)."""
        candidates = self.pending & self.enable[ctx] & ~self.claimed
        best, best_prio = 0, self.threshold[ctx]
        while candidates:
            low = candidates & -candidates
            n = low.bit_length() - 1
            prio = self.priority[n]
            if prio > best_prio:  # strictly greater: ties go to the lowest id
                best, best_prio = n, prio
            candidates ^= low
        return best

    def _update(self) -> None:
        for ctx, line in enumerate(self.outputs):
            line.set_level(self._best(ctx) != 0)

    # -- registers -------------------------------------------------------------------
    def mmio_read(self, offset: int, size: int) -> int:
        if size != 4 or offset & 3:
            return 0
        with self.lock:
            if offset < PENDING_BASE:
                n = offset >> 2
                return self.priority[n] if n < self.num_sources else 0
            if offset < ENABLE_BASE:
                word = (offset - PENDING_BASE) >> 2
                return (self.pending >> (32 * word)) & 0xFFFFFFFF
            if offset < CONTEXT_BASE:
                ctx, word = divmod(offset - ENABLE_BASE, ENABLE_STRIDE)
                if ctx >= self.num_contexts:
                    return 0
                return (self.enable[ctx] >> (8 * word)) & 0xFFFFFFFF
            ctx, reg = divmod(offset - CONTEXT_BASE, CONTEXT_STRIDE)
            if ctx >= self.num_contexts:
                return 0
            if reg == 0:
                return self.threshold[ctx]
            if reg == 4:
                return self._claim(ctx)
            return 0

    def _claim(self, ctx: int) -> int:
        n = self._best(ctx)
        if n:
            self.pending &= ~(1 << n)
            self.claimed |= 1 << n
            self._update()
        return n

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        if size != 4 or offset & 3:
            return
        value &= 0xFFFFFFFF
        with self.lock:
            if offset < PENDING_BASE:
                n = offset >> 2
                if 0 < n < self.num_sources:
                    self.priority[n] = value & self.priority_mask
            elif offset < ENABLE_BASE:
                return  # pending bits are read-only
            elif offset < CONTEXT_BASE:
                ctx, word = divmod(offset - ENABLE_BASE, ENABLE_STRIDE)
                if ctx >= self.num_contexts or word >= (self.num_sources + 31) // 32 * 4:
                    return
                shift = 8 * word
                mask = 0xFFFFFFFF << shift
                self.enable[ctx] = ((self.enable[ctx] & ~mask) | (value << shift)) & self._valid
            else:
                ctx, reg = divmod(offset - CONTEXT_BASE, CONTEXT_STRIDE)
                if ctx >= self.num_contexts:
                    return
                if reg == 0:
                    self.threshold[ctx] = value & self.priority_mask
                elif reg == 4:
                    self._complete(ctx, value)
                else:
                    return
            self._update()

    def _complete(self, ctx: int, n: int) -> None:
        if not 0 < n < self.num_sources or not self.enable[ctx] >> n & 1:
            return  # completing a source not enabled for this context is ignored (spec)
        bit = 1 << n
        self.claimed &= ~bit
        if self.levels & bit:
            self.pending |= bit  # still asserted: the gateway forwards it again
