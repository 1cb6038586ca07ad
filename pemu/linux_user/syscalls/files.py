"""File descriptors and data transfer: guest fds are host fds, buffers go straight through."""

from __future__ import annotations

import ctypes
import errno
import struct

from ..proc_views import open_synthetic, synthetic_content
from .hostcall import fd_arg, guest_path, host, in_ptr, opt_out_ptr, out_ptr, signed
from .registry import syscall
from .signalfd import closed, duplicated, read_hook

IOV = struct.Struct("<QQ")
IOV_MAX = 1024

@syscall("read")
def sys_read(t, fd, buf, count):
    if t.process.signals.signalfds:
        ret = read_hook(t, fd_arg(fd), buf, count)
        if ret is not None:
            return ret
    return host("read", fd_arg(fd), out_ptr(t, buf, count), count)

@syscall("write")
def sys_write(t, fd, buf, count):
    return host("write", fd_arg(fd), in_ptr(t, buf, count), count)

@syscall("pread64")
def sys_pread64(t, fd, buf, count, offset):
    return host("pread64", fd_arg(fd), out_ptr(t, buf, count), count, offset)

@syscall("pwrite64")
def sys_pwrite64(t, fd, buf, count, offset):
    return host("pwrite64", fd_arg(fd), in_ptr(t, buf, count), count, offset)

def host_iovec(t, iov: int, iovcnt: int, writing_guest: bool) -> ctypes.Array | int:
    """Translate a guest iovec array into a host one (checked buffers)."""
    if iovcnt > IOV_MAX:
        return -errno.EINVAL
    raw = t.process.mem.read(iov, iovcnt * IOV.size)
    out = (ctypes.c_uint64 * (2 * max(iovcnt, 1)))()
    for i in range(iovcnt):
        base, length = IOV.unpack_from(raw, i * IOV.size)
        if length:
            out[2 * i] = out_ptr(t, base, length) if writing_guest else in_ptr(t, base, length)
        out[2 * i + 1] = length
    return out

def _vector_io(t, name, fd, iov, iovcnt, writing_guest, *rest):
    vec = host_iovec(t, iov, iovcnt, writing_guest)
    if isinstance(vec, int):
        return vec
    return host(name, fd_arg(fd), ctypes.addressof(vec), iovcnt, *rest)

@syscall("readv")
def sys_readv(t, fd, iov, iovcnt):
    return _vector_io(t, "readv", fd, iov, iovcnt, True)

@syscall("writev")
def sys_writev(t, fd, iov, iovcnt):
    return _vector_io(t, "writev", fd, iov, iovcnt, False)

@syscall("preadv")
def sys_preadv(t, fd, iov, iovcnt, pos_l, pos_h):
    return _vector_io(t, "preadv", fd, iov, iovcnt, True, pos_l, pos_h)

@syscall("pwritev")
def sys_pwritev(t, fd, iov, iovcnt, pos_l, pos_h):
    return _vector_io(t, "pwritev", fd, iov, iovcnt, False, pos_l, pos_h)

@syscall("lseek")
def sys_lseek(t, fd, offset, whence):
    return host("lseek", fd_arg(fd), signed(offset), whence)

@syscall("openat")
def sys_openat(t, dirfd, path, flags, mode):
    synthetic = _proc_view(t, path)
    if synthetic is not None:
        return synthetic
    flags = t.process.arch.open_flags_to_host(flags & 0xFFFFFFFF)
    return host("openat", fd_arg(dirfd), guest_path(t, path), flags, mode)


OPEN_HOW = struct.Struct("<QQQ")  # flags, mode, resolve: the same on both architectures


@syscall("openat2")
def sys_openat2(t, dirfd, path, how, size):
    if size < OPEN_HOW.size or size > 4096:
        return -errno.EINVAL
    raw_how = t.process.mem.read(how, size)
    if any(raw_how[OPEN_HOW.size :]):
        return -errno.E2BIG  # fields from a newer kernel than pemu knows
    synthetic = _proc_view(t, path)
    if synthetic is not None:
        return synthetic
    flags, mode, resolve = OPEN_HOW.unpack_from(raw_how)
    how_host = OPEN_HOW.pack(t.process.arch.open_flags_to_host(flags), mode, resolve)
    return host("openat2", fd_arg(dirfd), guest_path(t, path), how_host, OPEN_HOW.size)


def _proc_view(t, path: int) -> int | None:
    """A descriptor on the guest's view of /proc/self/maps, auxv, /proc/cpuinfo."""
    raw = t.process.mem.read_cstring(path, 4096)
    if not raw.startswith(b"/proc/"):
        return None
    content = synthetic_content(t.process, raw)
    return None if content is None else open_synthetic(content)

@syscall("close")
def sys_close(t, fd):
    ret = host("close", fd_arg(fd))
    if ret == 0:
        closed(t.process, fd_arg(fd))
    return ret

CLOSE_RANGE_CLOEXEC = 4


@syscall("close_range")
def sys_close_range(t, first, last, flags):
    ret = host("close_range", first, last, flags)
    if ret == 0 and not flags & CLOSE_RANGE_CLOEXEC:
        closed(t.process, first, last)
    return ret

@syscall("dup")
def sys_dup(t, fd):
    new = host("dup", fd_arg(fd))
    duplicated(t.process, fd_arg(fd), new)
    return new

@syscall("dup3")
def sys_dup3(t, old, new, flags):
    ret = host("dup3", fd_arg(old), fd_arg(new), flags)
    duplicated(t.process, fd_arg(old), ret)
    return ret

@syscall("pipe2")
def sys_pipe2(t, fds, flags):
    return host("pipe2", out_ptr(t, fds, 8), flags)

F_DUPFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC = 0, 3, 4, 1030
F_GETLK, F_SETLK, F_SETLKW = 5, 6, 7
F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38
FLOCK_SIZE = 32

@syscall("fcntl")
def sys_fcntl(t, fd, cmd, arg):
    cmd &= 0xFFFFFFFF
    if cmd in (F_GETLK, F_OFD_GETLK):
        return host("fcntl", fd_arg(fd), cmd, out_ptr(t, arg, FLOCK_SIZE))
    if cmd in (F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW):
        return host("fcntl", fd_arg(fd), cmd, in_ptr(t, arg, FLOCK_SIZE))
    arch = t.process.arch
    if cmd == F_SETFL:
        return host("fcntl", fd_arg(fd), cmd, arch.open_flags_to_host(arg & 0xFFFFFFFF))
    ret = host("fcntl", fd_arg(fd), cmd, arg)
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        duplicated(t.process, fd_arg(fd), ret)
    if cmd == F_GETFL and ret >= 0:
        return arch.open_flags_from_host(ret)
    return ret

TERMIOS_SIZE = 36  # asm-generic struct termios: 4 flag words, c_line, c_cc[19]
IFREQ_SIZE = 40  # struct ifreq: a 16-byte name and a 24-byte union, on every LP64 Linux
# ioctl command -> (direction, size): "r" the kernel reads guest memory, "w" writes it,
# "rw" both (the socket ioctls' struct ifreq: a name in, an answer out), "v" the argument
# is a plain value.  The numbers and layouts are the same on x86-64, riscv64 and arm64.
IOCTLS = {
    0x5401: ("w", TERMIOS_SIZE),  # TCGETS
    0x5402: ("r", TERMIOS_SIZE),  # TCSETS
    0x5403: ("r", TERMIOS_SIZE),  # TCSETSW
    0x5404: ("r", TERMIOS_SIZE),  # TCSETSF
    0x5409: ("v", 0),  # TCSBRK
    0x540A: ("v", 0),  # TCXONC
    0x540B: ("v", 0),  # TCFLSH
    0x540C: ("v", 0),  # TIOCEXCL
    0x540D: ("v", 0),  # TIOCNXCL
    0x540E: ("v", 0),  # TIOCSCTTY
    0x540F: ("w", 4),  # TIOCGPGRP
    0x5410: ("r", 4),  # TIOCSPGRP
    0x5411: ("w", 4),  # TIOCOUTQ (SIOCOUTQ)
    0x5412: ("r", 1),  # TIOCSTI
    0x5413: ("w", 8),  # TIOCGWINSZ
    0x5414: ("r", 8),  # TIOCSWINSZ
    0x5415: ("w", 4),  # TIOCMGET
    0x5416: ("r", 4),  # TIOCMBIS
    0x5417: ("r", 4),  # TIOCMBIC
    0x5418: ("r", 4),  # TIOCMSET
    0x541B: ("w", 4),  # FIONREAD (SIOCINQ)
    0x5420: ("r", 4),  # TIOCPKT
    0x5421: ("r", 4),  # FIONBIO
    0x5422: ("v", 0),  # TIOCNOTTY
    0x5424: ("w", 4),  # TIOCGETD
    0x5425: ("v", 0),  # TCSBRKP
    0x5429: ("w", 4),  # TIOCGSID
    0x5437: ("v", 0),  # TIOCVHANGUP
    0x5441: ("v", 0),  # TIOCGPTPEER (the argument is open flags)
    0x5450: ("v", 0),  # FIONCLEX
    0x5451: ("v", 0),  # FIOCLEX
    0x5452: ("r", 4),  # FIOASYNC
    0x5460: ("w", 8),  # FIOQSIZE
    0x80045430: ("w", 4),  # TIOCGPTN
    0x40045431: ("r", 4),  # TIOCSPTLCK
    0x80045438: ("w", 4),  # TIOCGPKT
    0x80045439: ("w", 4),  # TIOCGPTLCK
    0x80045440: ("w", 4),  # TIOCGEXCL
    0x8905: ("w", 4),  # SIOCATMARK
    0x8910: ("rw", IFREQ_SIZE),  # SIOCGIFNAME
    0x8913: ("rw", IFREQ_SIZE),  # SIOCGIFFLAGS
    0x8915: ("rw", IFREQ_SIZE),  # SIOCGIFADDR
    0x8917: ("rw", IFREQ_SIZE),  # SIOCGIFDSTADDR
    0x8919: ("rw", IFREQ_SIZE),  # SIOCGIFBRDADDR
    0x891B: ("rw", IFREQ_SIZE),  # SIOCGIFNETMASK
    0x8921: ("rw", IFREQ_SIZE),  # SIOCGIFMTU
    0x8927: ("rw", IFREQ_SIZE),  # SIOCGIFHWADDR
    0x8933: ("rw", IFREQ_SIZE),  # SIOCGIFINDEX
    0x8938: ("rw", IFREQ_SIZE),  # SIOCGIFTXQLEN
    0x2: ("w", 4),  # FIGETBSZ
    0x80081272: ("w", 8),  # BLKGETSIZE64
    0x40049409: ("v", 0),  # FICLONE (the argument is a descriptor)
}
SIOCGIFCONF = 0x8912
IFCONF = struct.Struct("<i4xQ")  # struct ifconf: int ifc_len; a pointer to the ifreqs


@syscall("ioctl")
def sys_ioctl(t, fd, cmd, arg):
    cmd &= 0xFFFFFFFF
    if cmd == SIOCGIFCONF:
        return _ifconf(t, fd, arg)
    spec = IOCTLS.get(cmd)
    if spec is None:
        return -errno.ENOTTY
    direction, size = spec
    if "w" in direction:
        arg = out_ptr(t, arg, size)
    elif direction == "r":
        arg = in_ptr(t, arg, size)
    return host("ioctl", fd_arg(fd), cmd, arg)


def _ifconf(t, fd, arg) -> int:
    """SIOCGIFCONF: struct ifconf holds a pointer, so the host gets its own copy."""
    mem = t.process.mem
    length, buf = IFCONF.unpack(mem.read(arg, IFCONF.size))
    host_conf = ctypes.create_string_buffer(
        IFCONF.pack(length, out_ptr(t, buf, max(length, 0)) if buf else 0))
    ret = host("ioctl", fd_arg(fd), SIOCGIFCONF, ctypes.addressof(host_conf))
    if ret >= 0:
        mem.write(arg, host_conf.raw[:4])  # the length the host used (or needs)
    return ret

@syscall("getdents64")
def sys_getdents64(t, fd, dirp, count):
    # struct linux_dirent64 is the same on every architecture
    return host("getdents64", fd_arg(fd), out_ptr(t, dirp, count), count)

@syscall("sendfile")
def sys_sendfile(t, out_fd, in_fd, offset, count):
    return host("sendfile", fd_arg(out_fd), fd_arg(in_fd), opt_out_ptr(t, offset, 8), count)

@syscall("copy_file_range")
def sys_copy_file_range(t, fd_in, off_in, fd_out, off_out, length, flags):
    return host("copy_file_range", fd_arg(fd_in), opt_out_ptr(t, off_in, 8), fd_arg(fd_out),
                opt_out_ptr(t, off_out, 8), length, flags)

@syscall("ftruncate")
def sys_ftruncate(t, fd, length):
    return host("ftruncate", fd_arg(fd), length)

@syscall("truncate")
def sys_truncate(t, path, length):
    return host("truncate", guest_path(t, path, use_prefix=False), length)

@syscall("fsync")
def sys_fsync(t, fd):
    return host("fsync", fd_arg(fd))

@syscall("fdatasync")
def sys_fdatasync(t, fd):
    return host("fdatasync", fd_arg(fd))

@syscall("sync")
def sys_sync(t):
    return host("sync")

@syscall("syncfs")
def sys_syncfs(t, fd):
    return host("syncfs", fd_arg(fd))

@syscall("flock")
def sys_flock(t, fd, op):
    return host("flock", fd_arg(fd), op)

@syscall("fadvise64")
def sys_fadvise64(t, fd, offset, length, advice):
    return host("fadvise64", fd_arg(fd), offset, length, advice)

@syscall("fallocate")
def sys_fallocate(t, fd, mode, offset, length):
    return host("fallocate", fd_arg(fd), mode, offset, length)

@syscall("memfd_create")
def sys_memfd_create(t, name, flags):
    return host("memfd_create", t.process.mem.read_cstring(name, 256), flags)

@syscall("eventfd2")
def sys_eventfd2(t, initval, flags):
    return host("eventfd2", initval, flags)

@syscall("splice")
def sys_splice(t, fd_in, off_in, fd_out, off_out, length, flags):
    return host("splice", fd_arg(fd_in), opt_out_ptr(t, off_in, 8), fd_arg(fd_out),
                opt_out_ptr(t, off_out, 8), length, flags)

@syscall("vmsplice")
def sys_vmsplice(t, fd, iov, nr, flags):
    return _vector_io(t, "vmsplice", fd, iov, nr, False, flags)

@syscall("tee")
def sys_tee(t, fd_in, fd_out, length, flags):
    return host("tee", fd_arg(fd_in), fd_arg(fd_out), length, flags)

@syscall("inotify_init1")
def sys_inotify_init1(t, flags):
    return host("inotify_init1", flags)

@syscall("inotify_add_watch")
def sys_inotify_add_watch(t, fd, path, mask):
    return host("inotify_add_watch", fd_arg(fd), guest_path(t, path), mask)

@syscall("inotify_rm_watch")
def sys_inotify_rm_watch(t, fd, wd):
    return host("inotify_rm_watch", fd_arg(fd), wd)
