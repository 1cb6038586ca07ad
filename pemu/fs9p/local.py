"""The ``local`` fsdev driver: a host directory, and what the guest's owners and modes
become on it (``security_model=``).

* ``passthrough``: files carry the guest's uid, gid and mode for real (pemu must be
  root to give them away); a failure to do so is the guest's error.
* ``none``: as passthrough, but a failed chown is passed over (an unprivileged pemu),
  and device nodes are refused rather than made on the host.
* ``mapped-xattr`` (``mapped``): host files belong to whoever runs pemu, with modes
  ``fmode``/``dmode``; the guest's uid, gid, mode and device number live in the
  ``user.virtfs.*`` extended attributes (little-endian, as QEMU writes them, so a
  share moves between the two), and symlinks and device nodes are plain files that
  only the guest sees as such.  The guest can neither read nor set those attributes.

Every call reaches its file through ``beneath`` from the held root descriptor; the
calls that have no form for an O_PATH descriptor (chmod, truncate, xattrs) go through
``/proc/self/fd`` of a descriptor that is known not to be a symlink, or name one
component below a held directory with the no-follow variant.  Errors are ``OSError``
(the server turns them into Rlerror).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from pemu.fs9p.beneath import check_name, open_beneath, opened, proc_fd_path
from pemu.fs9p.protocol import P9Error

SECURITY_MODELS = ("passthrough", "mapped-xattr", "mapped", "none")
MAPPED_PREFIX = b"user.virtfs."
_U32 = 4
_U64 = 8
MAX_SYMLINK = 4096  # PATH_MAX: a mapped symlink file longer than this is not one

Parts = Sequence[bytes]


@dataclass
class Attr:
    """A file's attributes as the guest sees them."""

    st: os.stat_result
    mode: int
    uid: int
    gid: int
    rdev: int


class LocalFS:
    """``LocalFS(path, security_model, readonly=False, fmode=0o600, dmode=0o700)``; raises
    OSError if ``path`` cannot be opened as a directory."""

    def __init__(self, path: str, security_model: str, readonly: bool = False,
                 fmode: int = 0o600, dmode: int = 0o700) -> None:
        if security_model not in SECURITY_MODELS:
            raise ValueError(f"invalid security_model '{security_model}'")
        self.model = "mapped-xattr" if security_model == "mapped" else security_model
        self.mapped = self.model == "mapped-xattr"
        self.readonly = readonly
        self.fmode = fmode
        self.dmode = dmode
        self.root_fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    # -- reaching files ------------------------------------------------------------------
    def open(self, parts: Parts, flags: int, mode: int = 0) -> int:
        """A descriptor on ``parts``.  O_NONBLOCK always: a FIFO in the share must not
        park the server (a read with nothing there is EAGAIN for the guest)."""
        return open_beneath(self.root_fd, parts, flags | os.O_NONBLOCK | os.O_NOCTTY, mode)

    @contextmanager
    def directory(self, parts: Parts) -> Iterator[int]:
        with opened(self.root_fd, parts, os.O_PATH | os.O_DIRECTORY) as fd:
            yield fd

    @contextmanager
    def at(self, parts: Parts) -> Iterator[tuple[int, bytes]]:
        """(held parent directory, name) of ``parts``; the root is (root, ".")."""
        if not parts:
            yield self.root_fd, b"."
            return
        with self.directory(parts[:-1]) as parent:
            yield parent, parts[-1]

    @contextmanager
    def _not_symlink(self, parts: Parts) -> Iterator[int]:
        """An O_PATH descriptor on ``parts``, refused (ELOOP) if it is a symlink: what
        may be handed to the calls that follow a path (through /proc/self/fd)."""
        with opened(self.root_fd, parts) as fd:
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise P9Error(errno.ELOOP, "a symlink is not followed on the host")
            yield fd

    @contextmanager
    def _xattr_target(self, parts: Parts, fd: int | None = None
                      ) -> Iterator[tuple[int | bytes, bool]]:
        """What the xattr calls take: an open (non-O_PATH) descriptor, or the no-follow
        path of one name below a held directory."""
        if fd is not None:
            yield fd, True
            return
        with self.at(parts) as (parent, name):
            yield proc_fd_path(parent, name), False

    # -- attributes -------------------------------------------------------------------------
    def getattr(self, parts: Parts, fd: int | None = None) -> Attr:
        if fd is not None:
            st = os.fstat(fd)
        else:
            with opened(self.root_fd, parts) as pfd:
                st = os.fstat(pfd)
        attr = Attr(st, st.st_mode, st.st_uid, st.st_gid, st.st_rdev)
        if self.mapped and not stat.S_ISLNK(st.st_mode):
            with self._xattr_target(parts, fd) as (target, follow):
                attr.uid = _get_int(target, follow, b"uid", _U32, attr.uid)
                attr.gid = _get_int(target, follow, b"gid", _U32, attr.gid)
                attr.mode = _get_int(target, follow, b"mode", _U32, attr.mode)
                attr.rdev = _get_int(target, follow, b"rdev", _U64, attr.rdev)
        return attr

    # The setters take ``fd``, a descriptor the guest opened (never O_PATH), when there is
    # one: it still reaches a file that was unlinked while open.
    def chmod(self, parts: Parts, mode: int, fd: int | None = None) -> None:
        if self.mapped:
            kind = stat.S_IFMT(self.getattr(parts, fd).mode)
            with self._xattr_target(parts, fd) as (target, follow):
                _set_int(target, follow, b"mode", _U32, kind | (mode & 0o7777))
        elif fd is not None:
            os.chmod(fd, mode & 0o7777)
        else:
            with self._not_symlink(parts) as pfd:
                os.chmod(proc_fd_path(pfd), mode & 0o7777)

    def chown(self, parts: Parts, uid: int, gid: int, fd: int | None = None) -> None:
        """-1 leaves that id as it is."""
        if self.mapped:
            with self._xattr_target(parts, fd) as (target, follow):
                if uid != -1:
                    _set_int(target, follow, b"uid", _U32, uid)
                if gid != -1:
                    _set_int(target, follow, b"gid", _U32, gid)
            return
        try:
            if fd is not None:
                os.chown(fd, uid, gid)
            else:
                with self.at(parts) as (parent, name):
                    os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
        except PermissionError:
            if self.model != "none":
                raise

    def truncate(self, parts: Parts, size: int) -> None:
        with self._not_symlink(parts) as fd:
            os.truncate(proc_fd_path(fd), size)

    def utimes(self, parts: Parts, atime: int | None, mtime: int | None,
               fd: int | None = None) -> None:
        """Times in ns since the epoch; None leaves that one as it is."""
        if fd is not None:
            st = os.fstat(fd)
            os.utime(fd, ns=(st.st_atime_ns if atime is None else atime,
                             st.st_mtime_ns if mtime is None else mtime))
            return
        with self.at(parts) as (parent, name):
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            os.utime(name, ns=(st.st_atime_ns if atime is None else atime,
                               st.st_mtime_ns if mtime is None else mtime),
                     dir_fd=parent, follow_symlinks=False)

    def statfs(self, parts: Parts) -> os.statvfs_result:
        with opened(self.root_fd, parts) as fd:
            return os.fstatvfs(fd)

    # -- creating -------------------------------------------------------------------------
    def create(self, dparts: Parts, name: bytes, flags: int, mode: int, uid: int,
               gid: int) -> int:
        """Open ``name`` in directory ``dparts``, creating it if need be (O_EXCL: it must
        not exist); returns the descriptor."""
        check_name(name)
        with self.directory(dparts) as parent:
            base = (flags & ~os.O_CREAT) | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
            host_mode = self.fmode if self.mapped else mode & 0o7777
            try:
                fd = os.open(name, base | os.O_CREAT | os.O_EXCL, host_mode, dir_fd=parent)
            except FileExistsError:
                if flags & os.O_EXCL:
                    raise
                return os.open(name, base, dir_fd=parent)
            try:
                self._set_creds(parent, name, stat.S_IFREG | (mode & 0o7777), uid, gid)
            except BaseException:
                os.close(fd)
                os.unlink(name, dir_fd=parent)
                raise
            return fd

    def mkdir(self, dparts: Parts, name: bytes, mode: int, uid: int, gid: int) -> None:
        check_name(name)
        with self.directory(dparts) as parent:
            os.mkdir(name, self.dmode if self.mapped else mode & 0o7777, dir_fd=parent)
            self._undo_on_error(parent, name, True, stat.S_IFDIR | (mode & 0o7777), uid, gid)

    def symlink(self, dparts: Parts, name: bytes, target: bytes, uid: int, gid: int) -> None:
        check_name(name)
        if not target or b"\0" in target or len(target) >= MAX_SYMLINK:
            raise P9Error(errno.EINVAL, "bad symlink target")
        with self.directory(dparts) as parent:
            if self.mapped:
                fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                             | os.O_CLOEXEC, self.fmode, dir_fd=parent)
                try:
                    os.write(fd, target)
                finally:
                    os.close(fd)
            else:
                os.symlink(target, name, dir_fd=parent)
            self._undo_on_error(parent, name, False, stat.S_IFLNK | 0o777, uid, gid)

    def mknod(self, dparts: Parts, name: bytes, mode: int, rdev: int, uid: int,
              gid: int) -> None:
        check_name(name)
        kind = stat.S_IFMT(mode) or stat.S_IFREG
        if kind not in (stat.S_IFREG, stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR,
                        stat.S_IFBLK):
            raise P9Error(errno.EINVAL, "mknod makes files, FIFOs, sockets and devices")
        if kind in (stat.S_IFCHR, stat.S_IFBLK) and self.model == "none":
            raise P9Error(errno.EPERM, "security_model=none makes no host device nodes")
        with self.directory(dparts) as parent:
            if self.mapped:
                os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, self.fmode, dir_fd=parent))
            else:
                os.mknod(name, kind | (mode & 0o7777), rdev, dir_fd=parent)
            self._undo_on_error(parent, name, False, kind | (mode & 0o7777), uid, gid, rdev)

    def _undo_on_error(self, parent: int, name: bytes, is_dir: bool, mode: int, uid: int,
                       gid: int, rdev: int = 0) -> None:
        try:
            self._set_creds(parent, name, mode, uid, gid, rdev)
        except BaseException:
            if is_dir:
                os.rmdir(name, dir_fd=parent)
            else:
                os.unlink(name, dir_fd=parent)
            raise

    def _set_creds(self, parent: int, name: bytes, mode: int, uid: int, gid: int,
                   rdev: int = 0) -> None:
        """Give a file just made the guest's owner and mode, as the model says."""
        if self.mapped:
            target = proc_fd_path(parent, name)
            _set_int(target, False, b"uid", _U32, uid)
            _set_int(target, False, b"gid", _U32, gid)
            _set_int(target, False, b"mode", _U32, mode)
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                _set_int(target, False, b"rdev", _U64, rdev)
            return
        try:
            os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
        except PermissionError:
            if self.model != "none":
                raise
        if not stat.S_ISLNK(mode):
            # the exact mode, whatever pemu's umask took away at creation
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            try:
                if not stat.S_ISLNK(os.fstat(fd).st_mode):
                    os.chmod(proc_fd_path(fd), mode & 0o7777)
            finally:
                os.close(fd)

    # -- names ----------------------------------------------------------------------------
    def readlink(self, parts: Parts) -> bytes:
        with self.at(parts) as (parent, name):
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                return os.readlink(name, dir_fd=parent)
            if not (self.mapped and stat.S_ISREG(st.st_mode)
                    and stat.S_ISLNK(self.getattr(parts).mode)):
                raise P9Error(errno.EINVAL, "not a symlink")
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=parent)
            try:
                return os.read(fd, MAX_SYMLINK)
            finally:
                os.close(fd)

    def unlink(self, dparts: Parts, name: bytes, is_dir: bool) -> None:
        check_name(name)
        with self.directory(dparts) as parent:
            if is_dir:
                os.rmdir(name, dir_fd=parent)
            else:
                os.unlink(name, dir_fd=parent)

    def rename(self, old_dparts: Parts, old: bytes, new_dparts: Parts, new: bytes) -> None:
        check_name(old)
        check_name(new)
        with self.directory(old_dparts) as src, self.directory(new_dparts) as dst:
            os.rename(old, new, src_dir_fd=src, dst_dir_fd=dst)

    def link(self, dparts: Parts, name: bytes, target: Parts) -> None:
        check_name(name)
        if not target:
            raise P9Error(errno.EPERM, "the share root cannot be linked")
        with self.directory(dparts) as dst, self.at(target) as (src, src_name):
            os.link(src_name, name, src_dir_fd=src, dst_dir_fd=dst, follow_symlinks=False)

    # -- extended attributes -----------------------------------------------------------------
    def is_hidden_xattr(self, name: bytes) -> bool:
        return self.mapped and name.startswith(MAPPED_PREFIX)

    def getxattr(self, parts: Parts, name: bytes, fd: int | None = None) -> bytes:
        if self.is_hidden_xattr(name):
            raise P9Error(errno.ENODATA, "the mapped attributes are the server's")
        with self._xattr_target(parts, fd) as (target, follow):
            return os.getxattr(target, name, follow_symlinks=follow)

    def listxattr(self, parts: Parts, fd: int | None = None) -> list[bytes]:
        with self._xattr_target(parts, fd) as (target, follow):
            names = [os.fsencode(n) for n in os.listxattr(target, follow_symlinks=follow)]
        return [n for n in names if not self.is_hidden_xattr(n)]

    def setxattr(self, parts: Parts, name: bytes, value: bytes, flags: int) -> None:
        if self.is_hidden_xattr(name):
            raise P9Error(errno.EACCES, "the mapped attributes are the server's")
        with self._xattr_target(parts) as (target, follow):
            os.setxattr(target, name, value, flags, follow_symlinks=follow)

    def removexattr(self, parts: Parts, name: bytes) -> None:
        if self.is_hidden_xattr(name):
            raise P9Error(errno.EACCES, "the mapped attributes are the server's")
        with self._xattr_target(parts) as (target, follow):
            os.removexattr(target, name, follow_symlinks=follow)


def _get_int(target: int | bytes, follow: bool, key: bytes, size: int, default: int) -> int:
    try:
        raw = os.getxattr(target, MAPPED_PREFIX + key, follow_symlinks=follow)
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.ENOTSUP):
            return default
        raise
    return int.from_bytes(raw[:size], "little") if len(raw) >= size else default


def _set_int(target: int | bytes, follow: bool, key: bytes, size: int, value: int) -> None:
    os.setxattr(target, MAPPED_PREFIX + key, (value & ((1 << (8 * size)) - 1)).to_bytes(
        size, "little"), follow_symlinks=follow)
