"""Reading a ``-kernel``/``-bios``/``-initrd``/``-dtb`` file, with the limits an image given
by an untrusted manager or user must not pass.

Only regular files are read: ``/dev/zero`` would be read until memory runs out and a
FIFO would block start-up forever (QEMU blocks on one; pemu refuses it).  A file larger
than the guest RAM it must fit in is refused from its size, before anything is read.
"""

from __future__ import annotations

import os
import stat


class ImageFileError(Exception):
    """The reason in words, e.g. "not a regular file"; callers add what and where."""


def open_image(path: str | int, limit: int) -> tuple[int, int]:
    """A new descriptor open on regular file ``path`` (or a duplicate of an open
    descriptor, at its start), and the file's size, which must be at most ``limit``
    bytes.  The caller closes the descriptor."""
    try:
        if isinstance(path, int):
            fd = os.dup(path)
            os.lseek(fd, 0, os.SEEK_SET)
        else:
            # O_NONBLOCK: opening a FIFO with no writer must not block; refused below.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise ImageFileError(e.strerror or str(e)) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ImageFileError("Is a directory" if stat.S_ISDIR(st.st_mode)
                             else "not a regular file")
    if st.st_size > limit:
        os.close(fd)
        raise ImageFileError(f"file is {st.st_size} bytes, larger than guest RAM "
                             f"({limit} bytes)")
    return fd, st.st_size


def read_image(path: str | int, limit: int) -> bytes:
    """The whole of regular file ``path`` (or of an open descriptor, read from its
    start and left open), which must be at most ``limit`` bytes."""
    fd, expected = open_image(path, limit)
    with os.fdopen(fd, "rb") as f:
        try:
            # One byte more than its size, to see it grow while we read; never ``limit``
            # itself (``-m 64T``: read() would allocate a buffer of that size).
            data = f.read(expected + 1)
        except OSError as e:
            raise ImageFileError(e.strerror or str(e)) from None
    if len(data) > expected:
        raise ImageFileError("file changed while it was read")
    return data


ZERO_CHUNK = 1 << 20


def write_zeros(write, addr: int, size: int) -> None:
    """``size`` zero bytes at ``addr`` through ``write(addr, data)``, a chunk at a time, so
    a segment's large .bss (p_memsz) never becomes one huge bytes object."""
    zeros = bytes(min(size, ZERO_CHUNK))
    done = 0
    while done < size:
        n = min(ZERO_CHUNK, size - done)
        write(addr + done, zeros if n == len(zeros) else zeros[:n])
        done += n
