"""The APLIC domain's migratable state (``AplicDomainState``, a mixin of ``AplicDomain``).

Each domain is one section, ``riscv.aplic``, instance 0 the M root and 1 the S child:
domaincfg, every source's sourcecfg and target, the pending/enabled bitmaps, the IDC
registers (idelivery, iforce, ithreshold) per hart, genmsi and the root's MSI address
registers.  The root also carries the raw levels of its wired inputs: a source device
re-asserts its line on load, and with the level already loaded that is not an edge.

Checked on load (a state the registers could never hold is refused): sourcecfg values
(a delegation only to an existing child, and only from a domain that has children;
modes 2 and 3 are reserved), targets within the field widths of the mode (direct:
priority 1..7; MSI: EIID, guest index 0), no pending or enabled bits for source 0,
sources beyond ``num_sources`` or inactive sources.  Post-load re-derives the IDC
output lines (direct) or forwards what is pending and enabled (MSI mode), as a register
write would.
"""

from __future__ import annotations

from collections.abc import Mapping

from pemu.hw.core import VMState, VMStateField, VMStateInvalid
from pemu.hw.intc import aplic_regs as a
from pemu.hw.intc.bitmap_words import from_words, to_words, words_for

_RESERVED_MODES = (2, 3)
_SOURCECFG_BITS = 0x7FF  # D (bit 10) and a child index or a mode


class AplicDomainState:
    """Views and checks for ``AplicDomain.vmstate``; ``AplicDomain`` provides the
    attributes (``sourcecfg``, ``target``, ``pending`` ...) and ``_update``/``_send``."""

    vmstate = VMState("riscv.aplic", 1, (
        VMStateField("machine_level", "bool", equal=True),
        VMStateField("msi_mode", "bool", equal=True),
        VMStateField("domaincfg", "u32"),
        VMStateField("sourcecfg", "u32[]", max=_SOURCECFG_BITS),
        VMStateField("target", "u32[]"),
        VMStateField("pending_words", "u32[]"),
        VMStateField("enabled_words", "u32[]"),
        VMStateField("level_words", "u32[]"),
        VMStateField("idelivery", "u32[]", max=1),
        VMStateField("iforce", "u32[]", max=1),
        VMStateField("ithreshold", "u32[]", max=7),
        VMStateField("genmsi", "u32"),
        VMStateField("mmsiaddrcfg", "u32"), VMStateField("mmsiaddrcfgh", "u32"),
        VMStateField("smsiaddrcfg", "u32"), VMStateField("smsiaddrcfgh", "u32"),
    ))

    @property
    def _nwords(self) -> int:
        return words_for(self.num_sources + 1)  # type: ignore[attr-defined]

    pending_words = property(lambda self: to_words(self.pending, self._nwords),
                             lambda self, w: setattr(self, "pending", from_words(w)))
    enabled_words = property(lambda self: to_words(self.enabled, self._nwords),
                             lambda self, w: setattr(self, "enabled", from_words(w)))
    level_words = property(lambda self: to_words(self.levels, self._nwords),
                           lambda self, w: setattr(self, "levels", from_words(w)))

    def vmstate_check(self, state: Mapping[str, object]) -> None:
        sourcecfg: list[int] = state["sourcecfg"]  # type: ignore[assignment]
        active = 0
        for n, cfg in enumerate(sourcecfg):
            if n == 0 and cfg:
                raise VMStateInvalid("sourcecfg", "source 0 does not exist but is configured")
            if cfg & a.SOURCECFG_D:
                if not self.children or cfg & 0x3FF >= len(self.children):  # type: ignore[attr-defined]
                    raise VMStateInvalid("sourcecfg", f"source {n} is delegated to a child "
                                         "domain that does not exist")
            elif cfg & ~7:
                raise VMStateInvalid("sourcecfg", f"source {n}: bits 0x{cfg:x} are reserved")
            elif cfg in _RESERVED_MODES:
                raise VMStateInvalid("sourcecfg", f"source {n}: mode {cfg} is reserved")
            elif cfg != a.SM_INACTIVE:
                active |= 1 << n
        for n, target in enumerate(state["target"]):  # type: ignore[arg-type]
            if self.msi_mode:  # type: ignore[attr-defined]
                # hart index and EIID; no guest files on this board
                bad = target & ~(a.TARGET_HART_MASK << a.TARGET_HART_SHIFT | a.EIID_MASK)
            else:
                prio = target & ((1 << a.IPRIO_BITS) - 1)
                bad = target & ~(a.TARGET_HART_MASK << a.TARGET_HART_SHIFT
                                 | (1 << a.IPRIO_BITS) - 1) or not prio
            if bad:
                raise VMStateInvalid("target", f"source {n}: 0x{target:x} is not a valid "
                                     "target for this delivery mode")
        for name in ("pending_words", "enabled_words"):
            if from_words(state[name]) & ~active:  # type: ignore[arg-type]
                raise VMStateInvalid(name, "bits set for sources that are not active in "
                                     "this domain")
        if state["domaincfg"] & ~a.DOMAINCFG_IE:  # type: ignore[operator]
            raise VMStateInvalid("domaincfg", "only the IE bit is writable")
        valid = ((1 << (self.num_sources + 1)) - 1) & ~1  # type: ignore[attr-defined]
        if from_words(state["level_words"]) & ~valid:  # type: ignore[arg-type]
            raise VMStateInvalid("level_words", "levels for sources that do not exist")

    def vmstate_post_load(self) -> None:
        # Runs with the tree's lock held; the MSIs it may produce go to IMSIC pages,
        # which take their own locks, never this one.
        self._send(self._update())  # type: ignore[attr-defined]
