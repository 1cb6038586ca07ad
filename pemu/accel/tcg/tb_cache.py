"""A translation cache kept across runs: the second boot of a kernel, and the second
start of a user-mode program, skip translation.

A block is keyed by what its code depends on: the block flags, its guest pc, and the
bytes of the page it lies on (a BLAKE2 digest: the whole page, which is stricter than
the bytes the block really read): the physical page in system mode, the guest virtual
page in user mode.  Pages that change are simply other keys.  System mode's user-mode
blocks are position-independent code (``ir.Block.pc_relative``) and keyed by their
offset in the page instead of their pc (``PAGE_OFFSET_KEY_FLAG``): a program's pages
are mapped at another address in every process and every boot (ASLR).  What is stored is the
native backend's output before linking (``codegen.GeneratedBlock``): position-
independent code, whose jumps outside itself are buffer offsets of the dispatcher, and
whose helper calls are patched to this process's callback addresses on load
(``NativeBackend.install_cached``), with the block's instruction count.

One table per *version*: a digest of pemu's translator and target sources, the Python
version, the host CPU features the code generator uses, the dispatcher's layout and
the mode and target configuration, so any change of the code that generates blocks
starts a new table and stale code is never run.  Blocks that span two pages, call a
helper whose name is ambiguous, or were translated for the debugger are not cached.

``PEMU_TB_CACHE`` chooses the folder (default ``$XDG_CACHE_HOME/pemu`` or
``~/.cache/pemu``); ``PEMU_TB_CACHE=off`` turns the cache off.  The folder holds one
SQLite file, ``tb.sqlite``, in WAL mode so that readers never wait for a writer (a
shell pipeline's processes all exit, and write, at once).  A process reads one page's
blocks at a time, so a bare-metal run does not load a distro kernel's blocks; new
blocks are written in one transaction at exit; tables of versions other than the
newest ``KEEP_VERSIONS`` are dropped then.  A process that is about to chroot (the
binfmt server's children) opens the file first (``pin``), and keeps using that
connection, so that it never writes into the root it enters.

The cache never holds a run up for long: reading takes no write lock (a version's
table is created by the first write, not by the first look), and the save at exit
waits at most ``SAVE_LOCK_WAIT_S`` for another process's transaction (a distro boot's
save holds the lock for many seconds).  When the lock stays busy, the blocks go to a
spool file beside the cache (tb_spool.py), which the next save that gets the lock
moves in.

A termination signal must end pemu promptly, as it ends QEMU: writing a distro boot's
blocks takes many seconds on a loaded host, and another process's transaction can hold
the file's lock for a while.  ``hurry_exit_saves`` (called by the signal handlers)
bounds what the exit's save may spend; the blocks written by then are kept.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import marshal
import operator
import os
import sqlite3
import struct
import sys
import time
from collections.abc import Container
from itertools import islice
from pathlib import Path

from pemu.accel.tcg.backend.x86_64.codegen import FEATURES
from pemu.accel.tcg.host_fds import moved_up, opening_high
from pemu.accel.tcg.ir import HELPERS_BY_NAME
from pemu.accel.tcg.tb_spool import SUFFIX as SPOOL_SUFFIX
from pemu.accel.tcg.tb_spool import import_spooled, write_spool

FORMAT = 6  # 6: the checksum covers the key too
KEEP_VERSIONS = 3  # tables of other versions (older pemu sources) beyond these are dropped
DB_NAME = "tb.sqlite"
LOCK_WAIT_S = 30.0  # how long a write waits for another process's transaction
SAVE_LOCK_WAIT_S = 2.0  # the exit's save: then it spools its blocks instead
READ_LOCK_WAIT_S = 1.0  # opening the file to read (only a new file's creation waits)
BRIEF_LOCK_WAIT = 0.05  # the binfmt server's looks between programs (read_all, import)
WAL_SIZE_LIMIT = 64 << 20  # bytes the WAL file is cut back to after a checkpoint
MAX_SPOOLED = 256  # spool files left unimported beyond which a busy save drops its blocks
SAVE_CHUNK = 512  # blocks marshalled and inserted between two looks at the deadline
# host monotonic time by which the exit's save must be done (None: no limit)
_exit_save_deadline: float | None = None
# the sources that decide generated code: the engine and backends, and every frontend
# (with only RISC-V's listed, an A64 frontend fix kept running the old blocks)
_SOURCE_DIRS = ("accel/tcg", "target/riscv", "target/aarch64", "target/decode")
_MASK64 = 0xFFFF_FFFF_FFFF_FFFF
KEY_BYTES = 32  # page digest, flags, pc
# in a key's flags: the "pc" is the block's offset in its page, its code position-
# independent (ir.Block.pc_relative), installed at whatever virtual address maps the page
PAGE_OFFSET_KEY_FLAG = 1 << 62
# in a key's flags: a block whose code runs onto the next page (user mode: under the
# digest of both pages; system mode: under the first page's, the next page's digest in
# its entry, SECOND_PAGE)
TWO_PAGES_KEY_FLAG = 1 << 61

# (code, entry, body, exits, ext_fixups, helper_fixups by name, n_insns[, the digest of
# the next page, for a system-mode block that runs onto it: SECOND_PAGE])
Entry = tuple
SECOND_PAGE = 7


def cache_dir() -> Path | None:
    """Where cache files live, or None when the cache is turned off."""
    if _pinned_folder is not None:
        return _pinned_folder or None
    setting = os.environ.get("PEMU_TB_CACHE", "")
    if setting.lower() in ("off", "0", "no", "none"):
        return None
    if setting:
        return Path(setting).absolute()
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        home = os.path.expanduser("~")
        if home.startswith("~"):  # no home to keep a cache in (never a relative path)
            return None
        base = os.path.join(home, ".cache")
    return Path(base).absolute() / "pemu"


# connections opened before a chroot, by file (see ``pin``); the folder they chose
# (False: the cache is off for this process, see ``disable``)
_PINNED: dict[Path, sqlite3.Connection] = {}
_pinned_folder: Path | bool | None = None
# connections a forked child inherited: never used, never closed (closing could
# checkpoint the parent's WAL from under it)
_INHERITED: list[sqlite3.Connection] = []
# the pinned folder, opened (O_PATH) before the chroot: descriptor, device, inode
_pinned_dir: tuple[int, int, int] | None = None
# pinned without its database (``pin(database=False)``): blocks come only from what the
# process inherited (``TranslationCache.preloaded``, preinstalled groups), new ones go
# to a spool file
_without_database = False


def _spool_dir() -> int | None:
    """The pinned folder's descriptor, if it still is that folder (the guest may have
    closed it, and opened something else under its number)."""
    if _pinned_dir is None:
        return None
    fd, dev, ino = _pinned_dir
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return fd if (st.st_dev, st.st_ino) == (dev, ino) else None


def _open_db(path: Path, lock_wait: float = LOCK_WAIT_S) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    with opening_high():  # the database and its WAL files, out of the guest's way
        db = sqlite3.connect(path, timeout=lock_wait, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        # a checkpoint leaves the WAL file at its largest (367 MB after a day of test
        # runs here) unless told to cut it back
        db.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        db.execute("CREATE TABLE IF NOT EXISTS versions (name TEXT PRIMARY KEY, used REAL)")
        db.execute("SELECT count(*) FROM versions").fetchall()  # opens the WAL files
    return db


def pin(database: bool = True) -> None:
    """Open the cache file now, for a process about to chroot or take another
    environment: its translation cache keeps using this connection (and the WAL files
    it holds open) inside the new root, instead of opening a path there; the guest's
    environment no longer chooses the folder.  Best effort, like the cache itself.

    ``database=False``: only the folder, for a process that inherited every block the
    file held (the binfmt server's child: warm_start.py): opening SQLite was a sixth
    of such a program's CPU (its allocations fault on pages shared with the server);
    what it translates is spooled (tb_spool.py), as a chrooted fork child's is."""
    global _pinned_folder, _without_database
    folder = cache_dir()
    _pinned_folder = False
    if folder is None:
        return
    path = folder / DB_NAME
    if database:
        try:
            db = _open_db(path)
        except (OSError, sqlite3.Error):
            return
        _PINNED[path] = db
    _pinned_folder = folder
    _without_database = not database
    global _pinned_dir
    try:  # for the processes this one forks: they spool their blocks (tb_spool.py)
        fd = moved_up(os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
    except OSError:
        return
    st = os.fstat(fd)
    _pinned_dir = (fd, st.st_dev, st.st_ino)


def disable() -> None:
    """No translation cache in this process (one that will run as another user: the
    cache holds native code, so it is never shared between users)."""
    global _pinned_folder
    _pinned_folder = False


def _after_fork_in_child() -> None:
    # a connection opened before a chroot: its path may not lead to the file any more,
    # and a connection must not cross a fork; the child goes without the cache, but
    # leaves what it translates in the folder it still holds open (tb_spool.py)
    if _PINNED:
        _INHERITED.extend(_PINNED.values())
        _PINNED.clear()
        disable()


os.register_at_fork(after_in_child=_after_fork_in_child)


def open_cache(backend: object, log: object, extra_key: tuple) -> TranslationCache | None:
    """The cache for a native ``backend`` (made to keep what it generates), or None when
    the cache is turned off or the log wants to see translations happen.
    ``extra_key``: what else the generated code depends on (mode, target, its options)."""
    folder = cache_dir()
    if folder is None or any(log.enabled(i)  # type: ignore[attr-defined]
                             for i in ("in_asm", "op", "op_opt", "out_asm")):
        return None
    backend.keep_generated = True  # type: ignore[attr-defined]
    features = (FEATURES.lzcnt, FEATURES.tzcnt, FEATURES.popcnt)
    return TranslationCache(folder, (backend.layout_key(),  # type: ignore[attr-defined]
                                     features, *extra_key))


def hurry_exit_saves(budget_s: float) -> None:
    """The process is terminating on a signal: the saves at exit may spend at most
    ``budget_s`` seconds from now (waiting for the lock included)."""
    global _exit_save_deadline
    _exit_save_deadline = time.monotonic() + budget_s


@functools.cache
def _sources_digest() -> bytes:
    # once per process: the binfmt server computes it before it forks, so that its
    # children do not read pemu's sources again at every program start
    root = Path(__file__).resolve().parents[2]  # the pemu package
    h = hashlib.blake2b(digest_size=16)
    for sub in _SOURCE_DIRS:
        for path in sorted((root / sub).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.digest()


_SEAL = 8  # bytes of checksum before each stored block


def _seal(key: bytes, body: bytes) -> bytes:
    # the key too: a damaged key could otherwise name another pc of the same page,
    # and the block would run there
    return hashlib.blake2b(key + body, digest_size=_SEAL).digest()


def _sealed(key: bytes, body: bytes) -> bytes:
    """A stored block: its checksum (of its key and entry), then the marshalled entry
    (a damaged record is a cache miss, never code run)."""
    return _seal(key, body) + body


def _unsealed(key: bytes, data: object) -> Entry | None:
    """A stored record's entry, or None when it is missing or damaged (a damaged file
    is a cache miss: the block is translated instead)."""
    if not isinstance(data, bytes):  # none, or a damaged record's other type
        return None
    body = data[_SEAL:]
    if data[:_SEAL] != _seal(key, body):
        return None
    try:
        entry = marshal.loads(body)
    except (ValueError, EOFError, TypeError):
        return None
    if not isinstance(entry, tuple) or len(entry) not in (7, 8):
        return None
    return entry


_first = operator.itemgetter(0)


def helper_fixups(entry: Entry) -> list | None:
    """A stored block's helper fixups with the helpers of this process, or None when
    one is not created yet here (or ambiguous): then the block is translated."""
    fixups = []
    for at, name, n_args in entry[5]:
        h = HELPERS_BY_NAME.get(name)
        if h is None:
            return None
        fixups.append((at, h, n_args))
    return fixups


def split_key(key: bytes) -> tuple[int, int, bytes]:
    """(flags, pc, page digest) of a stored block's key."""
    flags, pc = struct.unpack_from("<QQ", key, 16)
    return flags, pc, key[:16]


def page_digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def block_key(flags: int, pc: int, digest: bytes) -> bytes:
    """What a block is stored under: the page digest first (one range query reads
    every block of a page)."""
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
        self.table = f"tb_{h.hexdigest()}"
        self.path = folder / DB_NAME
        self.new: dict[bytes, Entry] = {}
        # checked blocks a parent read for the processes it forks (the binfmt server's
        # blocks that are not preinstalled: preinstall.py): found without the file
        self.preloaded: dict[bytes, Entry] = {}
        self.hits = 0
        self._db: sqlite3.Connection | None = None
        # digest -> its stored blocks: key -> record (bytes), or once ``get`` has checked
        # it, (entry, helper fixups)
        self._pages: dict[bytes, dict[bytes, bytes | tuple[Entry, list]]] = {}
        # (flags, digest) -> page_pcs: a library page's blocks are looked for in every
        # process that maps it
        self._page_pcs: dict[tuple[int, bytes], list[int]] = {}
        # the same of the blocks put in ``new`` (not stored yet): a first boot's
        # library page, translated block by block in one process, is installed whole
        # in the next process that maps it, as a stored page is
        self._new_pcs: dict[tuple[int, bytes], list[int]] = {}
        self._broken = False
        atexit.register(self.save)
        # a forked child (user mode: fork, the binfmt server) must not share the parent's
        # SQLite connection, and its parent writes the blocks it inherited
        os.register_at_fork(after_in_child=self._forget_parent)

    def _forget_parent(self) -> None:
        if self._db is not None:
            _INHERITED.append(self._db)
        self._db = None
        self.new = {}
        self._new_pcs = {}
        if _pinned_folder is False:
            self._broken = True

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is None and not self._broken and not _without_database:
            try:
                # no table creation here: it takes the write lock, which a look at
                # the cache must never wait for (a missing table reads as empty)
                self._db = _PINNED.get(self.path) or _open_db(self.path, READ_LOCK_WAIT_S)
            except (OSError, sqlite3.Error) as e:
                self._broken = True  # a cache never fails a run: translate instead
                if os.environ.get("PEMU_TB_CACHE"):  # asked for explicitly: say why not
                    print(f"pemu: translation cache {self.path} unusable: {e}",
                          file=sys.stderr)
        return self._db

    def _create_table(self, db: sqlite3.Connection) -> None:
        db.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (k BLOB PRIMARY KEY, v BLOB)"
                   " WITHOUT ROWID")

    def get(self, flags: int, pc: int, digest: bytes) -> tuple[Entry, list] | None:
        """The cached block and its helper fixups (helpers resolved), or None."""
        key = block_key(flags, pc, digest)
        entry = self.new.get(key) or self.preloaded.get(key)
        page = None
        if entry is None:
            page = self._pages.get(digest)
            if page is None:
                page = self._pages[digest] = self._read_page(digest)
            record = page.get(key)
            if type(record) is tuple:  # checked and resolved already (see below)
                self.hits += 1
                return record
            entry = _unsealed(key, record)
            if entry is None:
                return None
        fixups = helper_fixups(entry)
        if fixups is None:
            return None
        if page is not None:
            # in place of its stored record: a page is installed again for each
            # virtual address it has (system mode: a library page in every process),
            # and the checksum and unmarshalling are a third of an install.  Its key
            # holds the page's digest, so it still serves only those very bytes.
            page[key] = (entry, fixups)
        self.hits += 1
        return entry, fixups

    def page_pcs(self, flags: int, digest: bytes) -> list[int]:
        """The pcs of the known blocks of a page with these bytes and these flags,
        stored or put in this run (``get`` loads each): what system mode installs
        together at a page's first hit."""
        stored = self._stored_pcs(flags, digest)
        new = self._new_pcs.get((flags & _MASK64, digest))
        if not new:
            return stored
        # (a pc can be in both: a stored block whose helpers did not resolve here)
        return list(dict.fromkeys(stored + new)) if stored else new

    def _stored_pcs(self, flags: int, digest: bytes) -> list[int]:
        pcs = self._page_pcs.get((flags, digest))
        if pcs is not None:  # (the stored blocks of a page are read once: see get)
            return pcs
        page = self._pages.get(digest)
        if page is None:
            page = self._pages[digest] = self._read_page(digest)
        pcs = []
        for key in page:
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:  # a damaged file
                continue
            key_flags, pc, _digest = split_key(key)
            if key_flags == flags & _MASK64:
                pcs.append(pc)
        self._page_pcs[(flags, digest)] = pcs
        return pcs

    # -- for a process that forks programs (the binfmt server: linux_user/warm_start.py):
    # a connection of its own for each look, which never waits long for another
    # process's transaction (the programs it serves wait for it meanwhile) and whose
    # failure is only a look skipped, never the cache turned off for the children

    def _brief_connection(self) -> sqlite3.Connection | None:
        if self._broken:
            return None
        try:
            return _open_db(self.path, BRIEF_LOCK_WAIT)
        except (OSError, sqlite3.Error):
            return None

    def read_all(self, known: Container[bytes] = frozenset()) -> dict[bytes, Entry] | None:
        """Every stored block of this version whose key is not in ``known``, checked
        (a damaged record is left out): what the binfmt server installs before it
        forks (engine.preinstall), so that its children translate nothing.  None if
        the file could not be read (busy, damaged)."""
        db = self._brief_connection()
        if db is None:
            return None
        try:
            keys = [k for (k,) in db.execute(f"SELECT k FROM {self.table}")
                    if isinstance(k, bytes) and k not in known]
            blocks = {}
            for i in range(0, len(keys), 500):  # SQLite's bound-variable limit
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for k, v in db.execute(f"SELECT k, v FROM {self.table} WHERE k IN ({marks})",
                                       chunk):
                    entry = _unsealed(k, v)
                    if entry is not None:
                        blocks[k] = entry
        except sqlite3.Error:
            return None
        finally:
            db.close()
        return blocks

    def _read_page(self, digest: bytes) -> dict[bytes, bytes]:
        """Every stored block of a page with these bytes, in one query."""
        db = self._connect()
        if db is None:
            return {}
        try:
            rows = db.execute(f"SELECT k, v FROM {self.table} WHERE k BETWEEN ? AND ?",
                              (digest + bytes(16), digest + b"\xff" * 16)).fetchall()
        except sqlite3.Error:
            return {}
        return dict(rows)

    def put(self, flags: int, pc: int, digest: bytes, gen: object, n_insns: int,
            second_page: bytes | None = None) -> None:
        """Remember a new block (``gen``: its codegen.GeneratedBlock); ``second_page``:
        the digest of the next page, which the block's code runs onto (its key holds
        the first page's)."""
        fixups = []
        for at, h, n_args in gen.helper_fixups:  # type: ignore[attr-defined]
            if HELPERS_BY_NAME.get(h.name) is not h:
                return  # another helper has that name: it could not be found again
            fixups.append((at, h.name, n_args))
        key = block_key(flags, pc, digest)
        if key not in self.new:
            self._new_pcs.setdefault((flags & _MASK64, digest), []).append(pc & _MASK64)
        self.new[key] = (
            gen.code, gen.entry, gen.body, tuple(gen.exits),  # type: ignore[attr-defined]
            tuple(gen.ext_fixups), tuple(fixups), n_insns,  # type: ignore[attr-defined]
            *((second_page,) if second_page is not None else ()))

    def save(self) -> None:
        """Write the new blocks (best effort: a cache never fails a run), within the
        deadline a termination signal set (``hurry_exit_saves``)."""
        self.write(self.take_new(), _exit_save_deadline)

    def take_new(self) -> dict[bytes, Entry]:
        """The blocks not written yet, handed over (call it while no vCPU translates:
        a block put meanwhile could land in the dictionary being handed over)."""
        new, self.new = self.new, {}
        self._new_pcs = {}
        return new

    def write(self, blocks: dict[bytes, Entry], deadline: float | None = None) -> None:
        """Store ``blocks`` in one transaction, on a connection of its own (unless the
        process pinned one before a chroot), so another thread (live migration) can
        write while the vCPUs read.  ``deadline`` (host monotonic): stop there and keep
        what was written (the rest is translated again next time)."""
        if not blocks:
            return
        if self._broken or _without_database:
            spool = _spool_dir() if _pinned_folder is False or _without_database else None
            if spool is not None:  # a pinned process's fork child (see tb_spool.py)
                write_spool(spool, self.table,
                            [(k, _sealed(k, marshal.dumps(v))) for k, v in blocks.items()])
            return
        lock_wait = SAVE_LOCK_WAIT_S
        if deadline is not None:
            lock_wait = min(lock_wait, max(0.0, deadline - time.monotonic()))
        pinned = _PINNED.get(self.path)
        try:
            db = pinned or _open_db(self.path, lock_wait)
            try:
                db.execute(f"PRAGMA busy_timeout = {int(lock_wait * 1000)}")
                with db:
                    # one write transaction from the table's creation on: another
                    # version's process dropping old tables (_drop_old_versions) cannot
                    # remove ours between its creation and the inserts
                    db.execute("BEGIN IMMEDIATE")
                    self._create_table(db)
                    # in key order: the table is a B-tree on the key, which begins with
                    # a page digest (random), and blocks put in translation order land
                    # all over it (the lean boot's 39 k blocks: 0.36 s of CPU inserted
                    # so, 0.30 s in order; shuffled, 2.5x the CPU of in order)
                    items = iter(sorted(blocks.items(), key=_first))
                    while chunk := list(islice(items, SAVE_CHUNK)):
                        db.executemany(f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?)",
                                       ((k, _sealed(k, marshal.dumps(v))) for k, v in chunk))
                        if deadline is not None and time.monotonic() >= deadline:
                            break
                    db.execute("INSERT OR REPLACE INTO versions VALUES (?, ?)",
                               (self.table, time.time()))
                    self._drop_old_versions(db)
                if pinned is None:  # (a pinned process's folder may be out of reach)
                    with contextlib.suppress(sqlite3.Error):
                        import_spooled(self.path.parent, self.table, db)
            finally:
                if db is not pinned:
                    db.close()
        except sqlite3.OperationalError as e:
            if getattr(e, "sqlite_errorcode", None) not in (sqlite3.SQLITE_BUSY,
                                                            sqlite3.SQLITE_LOCKED):
                print(f"pemu: translation cache not saved: {e}", file=sys.stderr)
            elif not self._spool(blocks):
                print("pemu: translation cache busy, blocks not saved", file=sys.stderr)
        except (OSError, sqlite3.Error) as e:
            print(f"pemu: translation cache not saved: {e}", file=sys.stderr)

    def _spool(self, blocks: dict[bytes, Entry]) -> bool:
        """Leave ``blocks`` beside the cache for the next save that gets the lock."""
        records = [(k, _sealed(k, marshal.dumps(v))) for k, v in blocks.items()]
        if self.path in _PINNED:  # in a chroot: only the folder pinned before it is ours
            fd = _spool_dir()
            return fd is not None and write_spool(fd, self.table, records)
        folder = self.path.parent
        try:
            if sum(n.endswith(SPOOL_SUFFIX) for n in os.listdir(folder)) >= MAX_SPOOLED:
                return False  # nobody imports them (a stuck lock?): do not pile up
            fd = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            return write_spool(fd, self.table, records)
        finally:
            os.close(fd)

    def import_spooled(self) -> int:
        """Move the blocks that fork children of chrooted programs left in the folder
        (tb_spool.py) into the cache; returns how many."""
        db = self._brief_connection()
        if db is None:
            return 0
        try:
            self._create_table(db)
            return import_spooled(self.path.parent, self.table, db)
        except sqlite3.Error:
            return 0  # busy: the files stay for the next look
        finally:
            db.close()

    def _drop_old_versions(self, db: sqlite3.Connection) -> None:
        """Every source change starts a new table: keep only the most recent few."""
        old = db.execute("SELECT name FROM versions ORDER BY used DESC LIMIT -1 OFFSET ?",
                         (KEEP_VERSIONS,)).fetchall()
        for (name,) in old:
            if name != self.table and name.isidentifier():
                db.execute(f"DROP TABLE IF EXISTS {name}")
            db.execute("DELETE FROM versions WHERE name = ?", (name,))


__all__ = ["PAGE_OFFSET_KEY_FLAG", "SECOND_PAGE", "TWO_PAGES_KEY_FLAG", "TranslationCache",
           "block_key", "cache_dir", "helper_fixups", "hurry_exit_saves", "open_cache",
           "page_digest", "pin", "split_key"]
