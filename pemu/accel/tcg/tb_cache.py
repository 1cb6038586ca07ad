"""A translation cache kept across runs: the second boot of a kernel skips translation.

A system-mode block is keyed by what its code depends on: the block flags, its guest
pc, and the bytes of the physical page it lies on (a BLAKE2 digest: the whole page,
which is stricter than the bytes the block really read).  Pages that change are
simply other keys.  What is stored is the native backend's output before linking
(``codegen.GeneratedBlock``): position-independent code, whose jumps outside itself
are buffer offsets of the dispatcher, and whose helper calls are patched to this
process's callback addresses on load (``NativeBackend.relocated``), with the block's
instruction count.

One file per *version*: a digest of pemu's translator and target sources, the Python
version, the host CPU features the code generator uses and the dispatcher's layout,
so any change of the code that generates blocks starts a new file and stale code is
never run.  Blocks that span two pages, call a helper whose name is ambiguous, or
were translated for the debugger are not cached.

``PEMU_TB_CACHE`` chooses the folder (default ``$XDG_CACHE_HOME/pemu`` or
``~/.cache/pemu``); ``PEMU_TB_CACHE=off`` turns the cache off.  The file is an SQLite
table (key: flags, pc, digest; value: the marshalled block), read one block at a time,
so a bare-metal run does not load a distro kernel's blocks; new blocks are written in
one transaction at exit (SQLite's locking lets test processes share the file); files of
older versions beyond the newest ``KEEP_FILES`` are deleted then.

A termination signal must end pemu promptly, as it ends QEMU: writing a distro boot's
blocks takes many seconds on a loaded host, and another process's transaction can hold
the file's lock for up to 30 s.  ``hurry_exit_saves`` (called by the signal handlers)
bounds what the exit's save may spend; the blocks written by then are kept.
"""

from __future__ import annotations

import atexit
import hashlib
import marshal
import os
import sqlite3
import struct
import sys
import time
from itertools import islice
from pathlib import Path

from pemu.accel.tcg.ir import HELPERS_BY_NAME

FORMAT = 3
KEEP_FILES = 2  # files of other versions (older pemu sources) beyond these are deleted
LOCK_WAIT_S = 30.0  # how long a write waits for another process's transaction
SAVE_CHUNK = 512  # blocks marshalled and inserted between two looks at the deadline
# host monotonic time by which the exit's save must be done (None: no limit)
_exit_save_deadline: float | None = None
_SOURCE_DIRS = ("accel/tcg", "target/riscv")
_MASK64 = 0xFFFF_FFFF_FFFF_FFFF

# (code, entry, body, exits, ext_fixups, helper_fixups by name, n_insns)
Entry = tuple


def cache_dir() -> Path | None:
    """Where cache files live, or None when the cache is turned off."""
    setting = os.environ.get("PEMU_TB_CACHE", "")
    if setting.lower() in ("off", "0", "no", "none"):
        return None
    if setting:
        return Path(setting)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pemu"


def hurry_exit_saves(budget_s: float) -> None:
    """The process is terminating on a signal: the saves at exit may spend at most
    ``budget_s`` seconds from now (waiting for the lock included)."""
    global _exit_save_deadline
    _exit_save_deadline = time.monotonic() + budget_s


def _sources_digest() -> bytes:
    root = Path(__file__).resolve().parents[2]  # the pemu package
    h = hashlib.blake2b(digest_size=16)
    for sub in _SOURCE_DIRS:
        for path in sorted((root / sub).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.digest()


def page_digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _key(flags: int, pc: int, digest: bytes) -> bytes:
    # the page digest first: one range query reads every block of a page
    return digest + struct.pack("<QQ", flags & _MASK64, pc & _MASK64)


class TranslationCache:
    """Cached native blocks of one version, in an SQLite file read block by block (a
    process loads only what it runs, whatever other guests put in the file), new
    blocks written at exit."""

    def __init__(self, folder: Path, extra_key: object) -> None:
        """``extra_key``: what else generated code depends on (the backend's layout,
        CPU features), folded into the version."""
        h = hashlib.blake2b(digest_size=12)
        h.update(_sources_digest())
        h.update(repr((FORMAT, sys.version, extra_key)).encode())
        self.path = folder / f"tb-{h.hexdigest()}.sqlite"
        self.new: dict[bytes, Entry] = {}
        self.hits = 0
        self._db: sqlite3.Connection | None = None
        self._pages: dict[bytes, dict[bytes, bytes]] = {}  # digest -> its stored blocks
        self._broken = False
        atexit.register(self.save)

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is None and not self._broken:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
                db.execute("CREATE TABLE IF NOT EXISTS tb (k BLOB PRIMARY KEY, v BLOB)"
                           " WITHOUT ROWID")
                self._db = db
            except (OSError, sqlite3.Error) as e:
                self._broken = True  # a cache never fails a run: translate instead
                if os.environ.get("PEMU_TB_CACHE"):  # asked for explicitly: say why not
                    print(f"pemu: translation cache {self.path} unusable: {e}",
                          file=sys.stderr)
        return self._db

    def get(self, flags: int, pc: int, digest: bytes) -> tuple[Entry, list] | None:
        """The cached block and its helper fixups (helpers resolved), or None."""
        key = _key(flags, pc, digest)
        entry = self.new.get(key)
        if entry is None:
            page = self._pages.get(digest)
            if page is None:
                page = self._pages[digest] = self._read_page(digest)
            data = page.get(key)
            if data is None:
                return None
            try:
                entry = marshal.loads(data)
            except (ValueError, EOFError, TypeError):
                return None
            if not isinstance(entry, tuple) or len(entry) != 7:
                return None
        fixups = []
        for at, name, n_args in entry[5]:
            h = HELPERS_BY_NAME.get(name)
            if h is None:  # not created yet in this process (or ambiguous): translate
                return None
            fixups.append((at, h, n_args))
        self.hits += 1
        return entry, fixups

    def _read_page(self, digest: bytes) -> dict[bytes, bytes]:
        """Every stored block of a page with these bytes, in one query."""
        db = self._connect()
        if db is None:
            return {}
        try:
            rows = db.execute("SELECT k, v FROM tb WHERE k BETWEEN ? AND ?",
                              (digest + bytes(16), digest + b"\xff" * 16)).fetchall()
        except sqlite3.Error:
            return {}
        return dict(rows)

    def put(self, flags: int, pc: int, digest: bytes, gen: object, n_insns: int) -> None:
        """Remember a new block (``gen``: its codegen.GeneratedBlock)."""
        fixups = []
        for at, h, n_args in gen.helper_fixups:  # type: ignore[attr-defined]
            if HELPERS_BY_NAME.get(h.name) is not h:
                return  # another helper has that name: it could not be found again
            fixups.append((at, h.name, n_args))
        self.new[_key(flags, pc, digest)] = (
            gen.code, gen.entry, gen.body, tuple(gen.exits),  # type: ignore[attr-defined]
            tuple(gen.ext_fixups), tuple(fixups), n_insns)  # type: ignore[attr-defined]

    def save(self) -> None:
        """Write the new blocks (best effort: a cache never fails a run), within the
        deadline a termination signal set (``hurry_exit_saves``)."""
        self.write(self.take_new(), _exit_save_deadline)

    def take_new(self) -> dict[bytes, Entry]:
        """The blocks not written yet, handed over (call it while no vCPU translates:
        a block put meanwhile could land in the dictionary being handed over)."""
        new, self.new = self.new, {}
        return new

    def write(self, blocks: dict[bytes, Entry], deadline: float | None = None) -> None:
        """Store ``blocks`` in one transaction, on a connection of its own, so another
        thread (live migration) can write while the vCPUs read.  ``deadline`` (host
        monotonic): stop there and keep what was written (the rest is translated again
        next time)."""
        if not blocks or self._broken:
            return
        lock_wait = LOCK_WAIT_S
        if deadline is not None:
            lock_wait = min(lock_wait, max(0.0, deadline - time.monotonic()))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=lock_wait)
            try:
                with db:
                    db.execute("CREATE TABLE IF NOT EXISTS tb (k BLOB PRIMARY KEY, v BLOB)"
                               " WITHOUT ROWID")
                    items = iter(blocks.items())
                    while chunk := list(islice(items, SAVE_CHUNK)):
                        db.executemany("INSERT OR REPLACE INTO tb VALUES (?, ?)",
                                       ((k, marshal.dumps(v)) for k, v in chunk))
                        if deadline is not None and time.monotonic() >= deadline:
                            break
            finally:
                db.close()
            self._drop_old_versions()
        except (OSError, sqlite3.Error) as e:
            print(f"pemu: translation cache not saved: {e}", file=sys.stderr)

    def _drop_old_versions(self) -> None:
        """Every source change starts a new file: keep only the most recent few."""
        files = sorted(self.path.parent.glob("tb-*.sqlite"),
                       key=lambda p: p.stat().st_mtime, reverse=True)
        for old in files[KEEP_FILES:]:
            if old != self.path:
                old.unlink(missing_ok=True)


__all__ = ["TranslationCache", "cache_dir", "hurry_exit_saves", "page_digest"]
