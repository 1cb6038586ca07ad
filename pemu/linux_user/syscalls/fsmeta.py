"""File metadata and the namespace: stat family, links, permissions, directories."""

from __future__ import annotations

import ctypes
import errno
import os
import struct

from .hostcall import fd_arg, guest_path, host, is_self_exe, opt_in_ptr, out_ptr, signed
from .registry import syscall

# x86-64 struct stat (144 bytes) as the host kernel fills it
_HOST_STAT = struct.Struct("<QQQIIIiQqqq qQ qQ qQ 24x".replace(" ", ""))
# riscv64 (asm-generic) struct stat, 128 bytes
_GUEST_STAT = struct.Struct("<QQIIIIQQqi4xqqQqQqQ8x")
AT_EMPTY_PATH = 0x1000


def host_stat_to_guest(raw: bytes) -> bytes:
    (dev, ino, nlink, mode, uid, gid, _pad, rdev, size, blksize, blocks,
     atime, atime_ns, mtime, mtime_ns, ctime, ctime_ns) = _HOST_STAT.unpack(raw)
    return _GUEST_STAT.pack(dev, ino, mode, nlink, uid, gid, rdev, 0, size, blksize, blocks,
                            atime, atime_ns, mtime, mtime_ns, ctime, ctime_ns)


def _stat_into(t, statbuf: int, do_host_call) -> int:
    buf = ctypes.create_string_buffer(_HOST_STAT.size)
    ret = do_host_call(ctypes.addressof(buf))
    if ret < 0:
        return ret
    t.process.mem.write(statbuf, host_stat_to_guest(buf.raw))
    return 0


def _path_or_empty(t, path: int, flags: int) -> bytes:
    if flags & AT_EMPTY_PATH and path and t.process.mem.read_cstring(path, 4096) == b"":
        return b""
    return guest_path(t, path)


@syscall("newfstatat")
def sys_newfstatat(t, dirfd, path, statbuf, flags):
    t.process.mem.check(statbuf, _GUEST_STAT.size, write=True)
    p = _path_or_empty(t, path, flags)
    return _stat_into(t, statbuf, lambda b: host("newfstatat", fd_arg(dirfd), p, b, flags))


@syscall("fstat")
def sys_fstat(t, fd, statbuf):
    t.process.mem.check(statbuf, _GUEST_STAT.size, write=True)
    return _stat_into(t, statbuf, lambda b: host("fstat", fd_arg(fd), b))


@syscall("statx")
def sys_statx(t, dirfd, path, flags, mask, buf):
    # struct statx has one layout on every architecture
    return host("statx", fd_arg(dirfd), _path_or_empty(t, path, flags), flags, mask,
                out_ptr(t, buf, 256))


@syscall("readlinkat")
def sys_readlinkat(t, dirfd, path, buf, size):
    if is_self_exe(t, path):
        target = os.fsencode(t.process.exe_path)[:size]
        t.process.mem.write(buf, target)
        return len(target)
    return host("readlinkat", fd_arg(dirfd), guest_path(t, path), out_ptr(t, buf, size), size)


@syscall("faccessat")
def sys_faccessat(t, dirfd, path, mode):
    return host("faccessat", fd_arg(dirfd), guest_path(t, path), mode)


@syscall("faccessat2")
def sys_faccessat2(t, dirfd, path, mode, flags):
    return host("faccessat2", fd_arg(dirfd), guest_path(t, path), mode, flags)


def _plain(t, path):
    return guest_path(t, path, use_prefix=False)


@syscall("mkdirat")
def sys_mkdirat(t, dirfd, path, mode):
    return host("mkdirat", fd_arg(dirfd), _plain(t, path), mode)


@syscall("mknodat")
def sys_mknodat(t, dirfd, path, mode, dev):
    return host("mknodat", fd_arg(dirfd), _plain(t, path), mode, dev)


@syscall("unlinkat")
def sys_unlinkat(t, dirfd, path, flags):
    return host("unlinkat", fd_arg(dirfd), _plain(t, path), flags)


@syscall("renameat2")
def sys_renameat2(t, olddir, old, newdir, new, flags):
    return host("renameat2", fd_arg(olddir), _plain(t, old), fd_arg(newdir), _plain(t, new),
                flags)


@syscall("linkat")
def sys_linkat(t, olddir, old, newdir, new, flags):
    return host("linkat", fd_arg(olddir), _plain(t, old), fd_arg(newdir), _plain(t, new), flags)


@syscall("symlinkat")
def sys_symlinkat(t, target, newdir, linkpath):
    return host("symlinkat", _plain(t, target), fd_arg(newdir), _plain(t, linkpath))


@syscall("fchmodat")
def sys_fchmodat(t, dirfd, path, mode):
    return host("fchmodat", fd_arg(dirfd), _plain(t, path), mode)


@syscall("fchmod")
def sys_fchmod(t, fd, mode):
    return host("fchmod", fd_arg(fd), mode)


@syscall("fchownat")
def sys_fchownat(t, dirfd, path, uid, gid, flags):
    return host("fchownat", fd_arg(dirfd), _path_or_empty(t, path, flags), signed(uid, 32),
                signed(gid, 32), flags)


@syscall("fchown")
def sys_fchown(t, fd, uid, gid):
    return host("fchown", fd_arg(fd), signed(uid, 32), signed(gid, 32))


@syscall("utimensat")
def sys_utimensat(t, dirfd, path, times, flags):
    p = _plain(t, path) if path else None
    return host("utimensat", fd_arg(dirfd), p, opt_in_ptr(t, times, 32), flags)


@syscall("umask")
def sys_umask(t, mask):
    return host("umask", mask)


@syscall("chdir")
def sys_chdir(t, path):
    return host("chdir", _plain(t, path))


@syscall("fchdir")
def sys_fchdir(t, fd):
    return host("fchdir", fd_arg(fd))


@syscall("chroot")
def sys_chroot(t, path):
    return host("chroot", _plain(t, path))


@syscall("getcwd")
def sys_getcwd(t, buf, size):
    try:
        cwd = os.fsencode(os.getcwd()) + b"\0"
    except FileNotFoundError:
        return -errno.ENOENT
    if len(cwd) > size:
        return -errno.ERANGE
    t.process.mem.write(buf, cwd)
    return len(cwd)


STATFS_SIZE = 120  # struct statfs: identical on x86-64 and riscv64


@syscall("statfs")
def sys_statfs(t, path, buf):
    return host("statfs", guest_path(t, path), out_ptr(t, buf, STATFS_SIZE))


@syscall("fstatfs")
def sys_fstatfs(t, fd, buf):
    return host("fstatfs", fd_arg(fd), out_ptr(t, buf, STATFS_SIZE))


