"""Opening a path below the share root, never outside it, never through a symlink.

A fid names its file by the components below the root (``parts``); ``..`` is folded
away when the fid is walked, and a component is never empty, ``.``, ``..`` or
contains ``/`` or NUL (``check_name``).  Every operation opens what it needs from the
root directory's descriptor, held since the share was opened:

* with ``openat2`` (Linux 5.6+; ctypes, syscall 437 on every Linux architecture),
  ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS``: the kernel itself
  refuses anything that would leave the root or follow a symlink, at the moment of
  the lookup, so a symlink swapped in by someone else between our check and our use
  is refused too;
* without it, one component at a time with ``O_NOFOLLOW`` from the held directory
  descriptor: each step is a single name looked up in a directory we hold, and a
  symlink there fails the step (ELOOP, or ENOTDIR for ``O_DIRECTORY``).

The caller then acts with the ``*at()`` calls on the descriptor it got: no operation
ever passes a host path string that the kernel would resolve from ``/``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from pemu.fs9p.protocol import P9Error

SYS_OPENAT2 = 437  # the same number on x86-64, AArch64 and RISC-V (asm-generic)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
_OPEN_HOW = struct.Struct("=QQQ")  # flags, mode, resolve

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
# None: not tried yet; the first ENOSYS switches to the component walk for good
_have_openat2: bool | None = None


def check_name(name: bytes) -> None:
    """A single file name the guest sent: never a path, never empty, never a dot name
    (those are the walk's business, not a file to create or remove)."""
    if not name or b"/" in name or b"\0" in name:
        raise P9Error(errno.EINVAL if name else errno.ENOENT, f"bad file name {name!r}")
    if name in (b".", b".."):
        raise P9Error(errno.EINVAL, f"'{name.decode()}' is not a file name here")


def openat2(dirfd: int, path: bytes, flags: int, mode: int = 0, resolve: int = RESOLVE) -> int:
    """The openat2 system call; OSError on failure (ENOSYS where the kernel lacks it)."""
    how = ctypes.create_string_buffer(_OPEN_HOW.pack(flags, mode, resolve), _OPEN_HOW.size)
    fd = _libc.syscall(SYS_OPENAT2, ctypes.c_int(dirfd), ctypes.c_char_p(path), how,
                       ctypes.c_size_t(_OPEN_HOW.size))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return fd


def use_openat2(enabled: bool | None) -> None:
    """Force the component walk (False), or openat2 if the kernel has it (None).  Tests
    run both paths; nothing else needs this."""
    global _have_openat2
    _have_openat2 = None if enabled else False


def open_beneath(root_fd: int, parts: Sequence[bytes], flags: int, mode: int = 0) -> int:
    """Open ``parts`` below ``root_fd`` (() is the root itself) with ``flags``; the last
    component is never followed if it is a symlink (with ``O_PATH`` the symlink itself is
    opened, otherwise ELOOP).  Raises P9Error with the host errno."""
    global _have_openat2
    flags |= os.O_CLOEXEC | os.O_NOFOLLOW
    path = b"/".join(parts) or b"."
    try:
        if _have_openat2 is not False:
            try:
                fd = openat2(root_fd, path, flags, mode)
                _have_openat2 = True
                return fd
            except OSError as e:
                if e.errno != errno.ENOSYS:
                    raise
                _have_openat2 = False
        return _walk(root_fd, parts, flags, mode)
    except OSError as e:
        raise P9Error(e.errno or errno.EIO, str(e)) from None


def _walk(root_fd: int, parts: Sequence[bytes], flags: int, mode: int) -> int:
    """The portable fallback: one name at a time, each from a descriptor we hold."""
    if not parts:
        return os.open(b".", flags, mode, dir_fd=root_fd)
    fd = root_fd
    try:
        for name in parts[:-1]:
            nxt = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                          dir_fd=fd)
            if fd != root_fd:
                os.close(fd)
            fd = nxt
        return os.open(parts[-1], flags, mode, dir_fd=fd)
    finally:
        if fd != root_fd:
            os.close(fd)


@contextmanager
def opened(root_fd: int, parts: Sequence[bytes], flags: int = os.O_PATH,
           mode: int = 0) -> Iterator[int]:
    """``open_beneath`` as a context manager that closes the descriptor."""
    fd = open_beneath(root_fd, parts, flags, mode)
    try:
        yield fd
    finally:
        os.close(fd)


def proc_fd_path(fd: int, name: bytes | None = None) -> bytes:
    """``/proc/self/fd/N[/name]``: how to reach, by a path, exactly the file a descriptor
    holds (chmod, truncate and xattrs have no call on an O_PATH descriptor).  The magic
    link jumps to the held inode; ``name`` is then one component looked up in it."""
    base = b"/proc/self/fd/%d" % fd
    return base if name is None else base + b"/" + name
