"""Extra files for a guest's initramfs without changing its image: Linux unpacks
concatenated cpio archives one after the other, later files replacing earlier ones,
so a small newc archive appended to the shared initramfs adds (or overrides) files."""

from __future__ import annotations

import gzip
from pathlib import Path

NEWC_MAGIC = b"070701"
TRAILER = "TRAILER!!!"


def _entry(name: str, mode: int, data: bytes, ino: int) -> bytes:
    """One newc record: a 110-byte header of hex fields, the name, the data, each
    padded to 4 bytes."""
    name_bytes = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_bytes), 0)
    header = NEWC_MAGIC + b"".join(b"%08X" % f for f in fields)
    out = header + name_bytes
    out += b"\0" * (-len(out) % 4)
    out += data + b"\0" * (-len(data) % 4)
    return out


def newc_archive(files: dict[str, tuple[int, bytes]]) -> bytes:
    """A cpio (newc) archive of ``{path: (mode, content)}``; a mode with the directory
    bit makes a directory.  Paths are relative (``sbin/shutdown``)."""
    out = b"".join(_entry(name, mode, data, ino)
                   for ino, (name, (mode, data)) in enumerate(files.items(), start=1))
    return out + _entry(TRAILER, 0, b"", 0)


def with_overlay(initrd: Path, files: dict[str, tuple[int, bytes]], out: Path) -> Path:
    """``initrd`` followed by a gzip'd archive of ``files``, written to ``out``."""
    out.write_bytes(initrd.read_bytes() + gzip.compress(newc_archive(files), mtime=0))
    return out
