"""New translations of a process that cannot open the translation cache, left as a
file in the cache's folder for a process that can (tb_cache.py).

A program the binfmt server runs opens the cache before it enters its chroot
(``tb_cache.pin``), but a process it forks (a shell's subshell, a pipeline's member
that does not exec) may not use that connection, and the cache's path does not lead
to the file inside the chroot: SQLite resolves /proc/self/fd links back to the path
outside.  Such a process still holds the folder open (O_PATH, from ``pin``), so at
exit it writes its blocks next to the cache, relative to that descriptor, as one
file; the binfmt server, which can open the cache, moves them into it before it
installs the new blocks for the next program (``import_spooled``).  Without this a
subshell would translate again, in every run, what it ran the last time.

A spool file: ``MAGIC``, the cache table's name, then records (key, sealed value),
exactly as the table holds them, so that reading them checks them as any block is
checked (a damaged record is a miss, never code run).  A file is written under a
temporary name and renamed, so a reader sees whole files only.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from pathlib import Path

MAGIC = b"PEMUTBS1"
SUFFIX = ".tbspool"
KEY_SIZE = 32  # tb_cache.block_key: page digest (16), flags (8), pc (8)
MAX_FILE = 64 << 20  # bytes of one spool file the importer reads
MAX_FILES = 64  # spool files imported at once (the rest at the next import)
_HEAD = struct.Struct("<8sH")  # magic, table name length
_RECORD = struct.Struct("<I")  # value length (the key is KEY_SIZE bytes before it)


def write_spool(dir_fd: int, table: str, records: list[tuple[bytes, bytes]]) -> bool:
    """Leave ``records`` for the folder open as ``dir_fd`` (best effort).  True if
    the file was written."""
    name = table.encode()
    parts = [_HEAD.pack(MAGIC, len(name)), name]
    for key, value in records:
        if len(key) != KEY_SIZE:
            continue
        parts += (key, _RECORD.pack(len(value)), value)
    data = b"".join(parts)
    final = f"{os.getpid()}-{os.urandom(6).hex()}{SUFFIX}"
    temp = "." + final + ".part"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600,
                     dir_fd=dir_fd)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.rename(temp, final, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError:
        try:
            os.unlink(temp, dir_fd=dir_fd)
        except OSError:
            pass
        return False
    return True


def read_spool(data: bytes, table: str) -> list[tuple[bytes, bytes]]:
    """The records of a spool file for ``table`` (none if it is for another version or
    not a spool file; a truncated tail is dropped)."""
    if len(data) < _HEAD.size:
        return []
    magic, n = _HEAD.unpack_from(data)
    at = _HEAD.size + n
    if magic != MAGIC or data[_HEAD.size : at] != table.encode():
        return []
    records = []
    while at + KEY_SIZE + _RECORD.size <= len(data):
        key = data[at : at + KEY_SIZE]
        (size,) = _RECORD.unpack_from(data, at + KEY_SIZE)
        at += KEY_SIZE + _RECORD.size
        if at + size > len(data):
            break
        records.append((key, data[at : at + size]))
        at += size
    return records


def import_spooled(folder: Path, table: str, db: sqlite3.Connection) -> int:
    """Move the spool files in ``folder`` into ``table`` of ``db`` (their records as
    they are: checked when read); returns how many records.  Files for other versions
    are dropped too: no process of this version would read them.  Raises sqlite3.Error
    (the files stay) when the records cannot be written."""
    try:
        names = [n for n in os.listdir(folder) if n.endswith(SUFFIX)][:MAX_FILES]
    except OSError:
        return 0
    records: list[tuple[bytes, bytes]] = []
    read = []
    for name in names:
        path = folder / name
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_FILE)
        except OSError:
            continue
        read.append(path)
        records += read_spool(data, table)
    if records:
        # (sqlite3.Error, another process's transaction: the files stay for next time)
        with db:
            db.executemany(f"INSERT OR IGNORE INTO {table} VALUES (?, ?)", records)
    for path in read:
        try:
            os.unlink(path)
        except OSError:
            pass
    return len(records)


__all__ = ["import_spooled", "read_spool", "write_spool"]
