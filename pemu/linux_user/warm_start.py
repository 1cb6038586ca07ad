"""Programs that start with their code already translated: a process that forks
emulators (the binfmt server) prepares one guest address space and one engine, with
the translation cache's blocks installed in its code buffer, and each forked child
runs its program in its copy of them (copy-on-write) instead of building its own.

The child then translates nothing that any earlier process translated from the same
bytes: a block is looked up by the cache key (flags, pc, digest of its page's bytes
in *this* process), so a preinstalled block runs only where the child's page holds
exactly the bytes it was translated from (engine.TCGEngine.preinstall).  It also
skips what building an engine costs (the dispatcher, the cache's version digest).

The prepared engine is made for the default options (``-cpu`` unset, the automatic
backend, no translation logging); a program run with others builds its own, as does
one run without the translation cache (another user's: see binfmt_server).
"""

from __future__ import annotations

import os
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path

from pemu.accel.tcg import tb_cache
from pemu.accel.tcg.engine import TCGEngine
from pemu.accel.tcg.log import TCGLog
from pemu.accel.tcg.tb_spool import SUFFIX as SPOOL_SUFFIX

from .arches import ARCHES
from .process import Options
from .vmem import GuestVirtualMemory

# -d items that change what translation produces or shows: the prepared engine (its
# log, its cache) is not the one such a run needs
_TRANSLATION_LOG_ITEMS = frozenset({"in_asm", "op", "op_opt", "out_asm"})
# the most of the code buffer preinstalled blocks may fill: the children need room for
# their own, and a full buffer's reset would drop every preinstalled block at once
_MAX_BUFFER_SHARE = 0.5


@dataclass
class Prepared:
    arch: str
    cache_folder: Path
    mem: GuestVirtualMemory
    engine: TCGEngine

    stamp: tuple = ()  # the cache files' sizes and times when last read
    # every block of the file, as of the last read, is installed or preloaded (in the
    # engine's TranslationCache.preloaded): a child then needs no database to find one
    complete: bool = False

    def refresh(self) -> int:
        """Install the blocks that other processes added to the cache since (in the
        preparing process, between forks); returns how many."""
        cache = self.engine.tb_cache
        backend = self.engine.backend
        if cache is None:
            return 0
        if backend.buf.used > backend.buf.size * _MAX_BUFFER_SHARE:
            self.complete = False  # what the file gains now is only in the file
            return 0
        stamp = _stamp(cache.path)
        if stamp == self.stamp:  # nobody wrote the file: nothing new (a few µs)
            return 0
        if cache.import_spooled():  # what fork children of programs left (tb_spool.py)
            stamp = _stamp(cache.path)
        installed = self.engine.preinstalled.keys
        blocks = cache.read_all(_Either(installed, cache.preloaded))
        if blocks is None:  # busy or damaged: the children read the file themselves
            self.complete = False
            return 0
        self.stamp = stamp
        count = self.engine.preinstall(blocks)
        # the others (a block that runs onto the next page, one with flags) the
        # children take from here as they would from the file
        cache.preloaded.update((k, v) for k, v in blocks.items() if k not in installed)
        self.complete = True
        return count


class _Either:
    """Keys in either of two collections (without building their union)."""

    def __init__(self, a: Container[bytes], b: Container[bytes]) -> None:
        self.a, self.b = a, b

    def __contains__(self, key: object) -> bool:
        return key in self.a or key in self.b


def _stamp(db: Path) -> tuple:
    """What changes when a process writes blocks: the database and its WAL file, or
    the spool files in the folder (tb_spool.py).  Not the folder's own time: every
    look at the file (this process's included) creates and removes the WAL files
    there, and a stamp that changed with them made each refresh read the whole file
    again, after every program."""
    stamp: list = []
    for path in (db, db.with_name(db.name + "-wal")):
        try:
            st = os.stat(path)
        except OSError:
            stamp.append(None)
            continue
        stamp.append((st.st_ino, st.st_size, st.st_mtime_ns))
    try:
        stamp.append(tuple(sorted(n for n in os.listdir(db.parent) if n.endswith(SPOOL_SUFFIX))))
    except OSError:
        stamp.append(None)
    return tuple(stamp)


_prepared: Prepared | None = None


def prepare(arch: str) -> Prepared | None:
    """Build the engine that processes forked from this one start with (call it
    before forking them); None when the translation cache is off or the host has no
    native backend."""
    global _prepared
    folder = tb_cache.cache_dir()
    if folder is None:
        return None
    mem = GuestVirtualMemory()
    engine = TCGEngine(mem, ARCHES[arch].make_target(None), backend="auto", log=TCGLog(),
                       keep_translations=True)
    if engine.tb_cache is None:
        return None
    _prepared = Prepared(arch, folder, mem, engine)
    _prepared.refresh()
    return _prepared


def needs_database(options_from_environment: bool) -> bool:
    """Whether a program forked now may need the cache file itself: where the
    prepared engine holds every block of the file and the program takes it, it needs
    none, and does not open it (tb_cache.pin).  ``options_from_environment``: its
    environment sets options (PEMU_CPU, QEMU_LOG, ...), which may make it build an
    engine of its own (``take``), one that looks for blocks in the file."""
    return _prepared is None or not _prepared.complete or options_from_environment


def take(opts: Options) -> Prepared | None:
    """In a forked child: the prepared address space and engine, if they fit this
    program's options (once: they become the program's)."""
    global _prepared
    prepared, _prepared = _prepared, None
    if prepared is None or prepared.arch != opts.arch or opts.cpu is not None:
        return None
    if opts.tcg_backend not in (None, "auto", prepared.engine.backend_name):
        return None
    if _TRANSLATION_LOG_ITEMS & set(opts.log_items):
        return None
    if tb_cache.cache_dir() != prepared.cache_folder:  # off here, or another folder
        return None
    return prepared


__all__ = ["Prepared", "needs_database", "prepare", "take"]
