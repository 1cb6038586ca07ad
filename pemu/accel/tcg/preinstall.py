"""Blocks of the translation cache installed before a program starts, linked one page
at a time.

The binfmt server installs every cached block in its code buffer before it forks a
program (linux_user/warm_start.py); the program inherits them copy-on-write.  A
cached block is valid where its page holds the bytes it was translated from (the
cache key has their digest), so the blocks are grouped by (page, digest) and chained
to each other inside their group ahead of time: the blocks of one group are valid
together or not at all.  When the program first misses on a page, one digest of the
page decides: the matching group becomes reachable at once (jump cache entries,
chains to and from what is already linked, the engine's page index), so a program
leaves its code for Python about once per page of code it runs, not once per block.

Nothing of a group is reachable before its page is checked: no jump cache entry, no
key, and its chains stay inside the group.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

from pemu.accel.tcg.tb_cache import Entry, helper_fixups, split_key

PAGE_SHIFT = 12


@dataclass(eq=False)
class PageGroup:
    """The preinstalled blocks of one page translated from one version of its bytes."""

    blocks: dict[int, object] = field(default_factory=dict)  # pc -> NativeTB
    n_insns: dict[int, int] = field(default_factory=dict)  # pc -> instructions
    # pc -> the engine's TranslationBlock of each, made ahead too
    tbs: dict[int, object] = field(default_factory=dict)
    # exits to pcs outside the group, chained when the group is linked
    outside: dict[int, list[tuple[object, int]]] = field(default_factory=dict)
    jc_entries: array = field(default_factory=lambda: array("Q"))


def _group_order(item: tuple[bytes, Entry]) -> tuple[int, bytes, int]:
    _, pc, digest = split_key(item[0])
    return pc >> PAGE_SHIFT, digest, pc


class PreinstalledBlocks:
    """The groups of one engine, by page and digest."""

    def __init__(self, backend: object, make_tb: Callable[[int, int, object, int], object]
                 ) -> None:
        """``make_tb(pc, n_insns, fn, page)``: the engine's record of a block."""
        self.backend = backend
        self.make_tb = make_tb
        self.groups: dict[int, dict[bytes, PageGroup]] = {}
        self.keys: set[bytes] = set()  # every cache key installed (for refreshes)

    def __len__(self) -> int:
        return len(self.keys)

    def install(self, blocks: dict[bytes, Entry]) -> int:
        """Put cached blocks in the code buffer and chain them within their groups
        (in the process that forks the programs).  Blocks that call a helper this
        process has not created yet, or have flags, are left to the ordinary cache
        path.  Returns how many were installed."""
        backend = self.backend
        new: dict[tuple[int, bytes], list] = {}
        # a group's blocks installed one after the other: their records (Python
        # objects) then share memory pages, and so does their code, so linking a group
        # in a forked program dirties a few pages, not one per block
        for key, entry in sorted(blocks.items(), key=_group_order):
            flags, pc, digest = split_key(key)
            fixups = helper_fixups(entry)
            if fixups is None or flags or key in self.keys:
                continue
            page = pc >> PAGE_SHIFT
            group = self.groups.setdefault(page, {}).setdefault(digest, PageGroup())
            if pc in group.blocks:  # another key, the same block: cannot be (same digest)
                continue
            tb = backend.install_cached(entry, fixups, pc, 0)
            group.n_insns[pc] = entry[6]
            new.setdefault((page, digest), []).append(tb)
            self.keys.add(key)
        for (page, digest), tbs in new.items():
            group = self.groups[page][digest]
            backend.chain_within(group.blocks, tbs, group.outside)
            group.jc_entries = backend.group_jc_entries(group.blocks)
            for tb in tbs:
                group.tbs[tb.pc] = self.make_tb(tb.pc, group.n_insns[tb.pc], tb, page)
        return sum(len(tbs) for tbs in new.values())

    def take_page(self, page: int, digest: Callable[[], bytes]) -> PageGroup | None:
        """The group for the bytes now on ``page`` (``digest`` computes their digest),
        linked; None if there is none (or it was dropped by a buffer reset).  A page is
        checked once: its other groups are dropped with it."""
        groups = self.groups.pop(page, None)
        if not groups:
            return None
        group = groups.get(digest())
        if group is None or not self.backend.link_group(group.blocks, group.outside,
                                                         group.jc_entries):
            return None
        return group


__all__ = ["PageGroup", "PreinstalledBlocks"]
