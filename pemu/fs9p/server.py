"""The 9P2000.L operations on a fid table: ``Server.handle(request) -> reply``.

The server is transport-free: virtio-9p hands it one whole T-message and puts the
R-message it returns into the driver's buffers; tests call it directly.  Every
failure becomes ``Rlerror`` with an errno (a host OSError keeps its own), and a bug
here answers EIO instead of raising into the device.

A fid is the path below the share root (``Fid.parts``, folded at walk time so that
``..`` at the root stays there), plus what Tlopen/Tlcreate opened.  Nothing ever
resolves a guest path on the host in one go: see beneath.py.  Requests are handled
one at a time, in order, so Tflush never finds one in flight.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from pemu.fs9p import protocol as p
from pemu.fs9p.beneath import check_name
from pemu.fs9p.local import LocalFS
from pemu.fs9p.protocol import Decoder, Encoder, P9Error, Qid

VERSION = b"9P2000.L"
MIN_MSIZE = 4096  # QEMU's floor: below it not even a directory entry fits
MAX_MSIZE = 1 << 20
XATTR_SIZE_MAX = 65536  # Linux's limit on one attribute value
# Open fids (host descriptors, xattr buffers) one guest may hold: beyond it EMFILE, so
# a guest cannot take every descriptor of the pemu process or fill its memory
MAX_OPEN_FIDS = 4096
MAX_FIDS = 1 << 20  # fids at all (Linux keeps one per cached dentry): bounds our memory
V9FS_MAGIC = 0x01021997  # f_type of a 9p mount, what statfs reports in the guest
DT_UNKNOWN = 0
_DTYPES = {stat.S_IFIFO: 1, stat.S_IFCHR: 2, stat.S_IFDIR: 4, stat.S_IFBLK: 6,
           stat.S_IFREG: 8, stat.S_IFLNK: 10, stat.S_IFSOCK: 12}
# 9P2000.L open flags that carry over to the host open; the rest (O_CREAT, O_EXCL,
# O_NOCTTY, O_DIRECT, O_NOATIME, FASYNC, O_CLOEXEC) are the server's to choose
_DOTL_TO_HOST = ((p.DOTL_TRUNC, os.O_TRUNC), (p.DOTL_APPEND, os.O_APPEND),
                 (p.DOTL_DSYNC, os.O_DSYNC), (p.DOTL_SYNC, os.O_SYNC))
_WRITE_FLAGS = p.DOTL_WRONLY | p.DOTL_RDWR | p.DOTL_TRUNC | p.DOTL_APPEND


@dataclass
class XattrBuffer:
    """The value behind an xattr fid: read by Tread (Txattrwalk), or filled by Twrite and
    set at Tclunk (Txattrcreate)."""

    value: bytearray
    name: bytes = b""
    flags: int = 0
    creating: bool = False
    written: int = 0


@dataclass
class Fid:
    parts: tuple[bytes, ...]
    uid: int
    fd: int | None = None
    writable: bool = False
    listing: list[tuple[Qid, int, bytes]] | None = None  # readdir snapshot
    xattr: XattrBuffer | None = None

    @property
    def is_open(self) -> bool:
        return self.fd is not None or self.xattr is not None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def host_open_flags(dotl: int) -> int:
    acc = dotl & 3
    flags = os.O_RDWR if acc == p.DOTL_RDWR else os.O_WRONLY if acc == p.DOTL_WRONLY \
        else os.O_RDONLY
    for bit, host in _DOTL_TO_HOST:
        if dotl & bit:
            flags |= host
    return flags


class Server:
    """``Server(LocalFS(...))``; ``handle`` takes one T-message, returns its reply."""

    def __init__(self, fs: LocalFS, max_msize: int = MAX_MSIZE,
                 sync_writes: bool = False) -> None:
        self.fs = fs
        self.sync_writes = sync_writes  # writeout=immediate: data on disk before Rwrite
        self.max_msize = max_msize
        self.msize = max_msize
        self.fids: dict[int, Fid] = {}
        self.open_fids = 0  # how many of them hold a descriptor or an xattr buffer
        self._ops: dict[int, Callable[[Decoder, int], Encoder | None]] = {
            p.TVERSION: self._version, p.TAUTH: self._auth, p.TATTACH: self._attach,
            p.TFLUSH: self._flush, p.TWALK: self._walk, p.TLOPEN: self._lopen,
            p.TLCREATE: self._lcreate, p.TREAD: self._read, p.TWRITE: self._write,
            p.TCLUNK: self._clunk, p.TREMOVE: self._remove, p.TGETATTR: self._getattr,
            p.TSETATTR: self._setattr, p.TREADDIR: self._readdir, p.TMKDIR: self._mkdir,
            p.TUNLINKAT: self._unlinkat, p.TRENAMEAT: self._renameat,
            p.TRENAME: self._rename, p.TSYMLINK: self._symlink, p.TREADLINK: self._readlink,
            p.TLINK: self._link, p.TMKNOD: self._mknod, p.TSTATFS: self._statfs,
            p.TFSYNC: self._fsync, p.TLOCK: self._lock, p.TGETLOCK: self._getlock,
            p.TXATTRWALK: self._xattrwalk, p.TXATTRCREATE: self._xattrcreate,
        }

    def close(self) -> None:
        for fid in self.fids.values():
            fid.close()
        self.fids.clear()
        self.open_fids = 0

    # -- one message ------------------------------------------------------------------------
    def handle(self, request: bytes, room: int | None = None) -> bytes:
        """The reply to ``request``; ``room`` is how many bytes the reply may take (the
        driver's buffers), at most msize.  b"" if not even a header came."""
        if len(request) < p.HEADER.size:
            return b""
        size, mtype, tag = p.HEADER.unpack_from(request)
        room = min(self.msize, self.max_msize if room is None else room)
        op = self._ops.get(mtype)
        try:
            if size != len(request) or size > self.msize:
                raise P9Error(errno.EPROTO, "message size field does not match")
            if op is None:
                raise P9Error(errno.EOPNOTSUPP, f"message type {mtype}")
            body = op(Decoder(request), room)
            reply = p.message(mtype + 1, tag, body.buf if body is not None else b"")
            if len(reply) > room:
                raise P9Error(errno.ERANGE, "reply larger than the driver's buffers")
            return reply
        except P9Error as e:
            return p.lerror(tag, e.errno)
        except OSError as e:
            return p.lerror(tag, e.errno or errno.EIO)
        except Exception as e:  # noqa: BLE001 - a server bug must not take the VM down
            print(f"pemu: 9p: message type {mtype}: internal error: {e!r}", file=sys.stderr)
            return p.lerror(tag, errno.EIO)

    # -- helpers ------------------------------------------------------------------------------
    def _fid(self, n: int) -> Fid:
        fid = self.fids.get(n)
        if fid is None:
            raise P9Error(errno.EBADF, f"fid {n} is not in use")
        return fid

    def _new_fid_number(self, n: int) -> None:
        if n in self.fids or n == p.NOFID:
            raise P9Error(errno.EINVAL, f"fid {n} is already in use")
        if len(self.fids) >= MAX_FIDS:
            raise P9Error(errno.EMFILE, f"{MAX_FIDS} fids are in use")

    def _may_open(self) -> None:
        if self.open_fids >= MAX_OPEN_FIDS:
            raise P9Error(errno.EMFILE, f"{MAX_OPEN_FIDS} fids are open")

    def _forget(self, n: int) -> Fid:
        """Take fid ``n`` out of the table, its descriptor closed."""
        fid = self._fid(n)
        del self.fids[n]
        if fid.is_open:
            self.open_fids -= 1
        fid.close()
        return fid

    def _writable(self) -> None:
        if self.fs.readonly:
            raise P9Error(errno.EROFS, "the share is read-only")

    def _qid(self, parts: tuple[bytes, ...]) -> Qid:
        return self._attr_qid(self.fs.getattr(parts))

    @staticmethod
    def _attr_qid(attr) -> Qid:  # noqa: ANN001 - local.Attr
        real = Qid.from_stat(attr.st)
        return Qid(p.qid_type(attr.mode), real.version, real.path)

    def _moved(self, old: tuple[bytes, ...], new: tuple[bytes, ...]) -> None:
        """A rename: every fid at or below ``old`` now names its file below ``new``."""
        for fid in self.fids.values():
            if fid.parts[:len(old)] == old:
                fid.parts = new + fid.parts[len(old):]

    # -- session ------------------------------------------------------------------------------
    def _version(self, d: Decoder, room: int) -> Encoder:
        msize, version = d.u32(), d.string()
        self.close()  # a new session: every fid of the old one is gone
        if msize < MIN_MSIZE:
            raise P9Error(errno.EMSGSIZE, f"msize {msize} < {MIN_MSIZE}")
        self.msize = min(msize, self.max_msize)
        agreed = VERSION if version.startswith(VERSION) else b"unknown"
        return Encoder().u32(self.msize).string(agreed)

    def _auth(self, d: Decoder, room: int) -> Encoder:
        raise P9Error(errno.EOPNOTSUPP, "no authentication: attach directly")

    def _attach(self, d: Decoder, room: int) -> Encoder:
        fid, _afid, _uname, _aname, n_uname = d.u32(), d.u32(), d.string(), d.string(), d.u32()
        self._new_fid_number(fid)
        qid = self._qid(())
        self.fids[fid] = Fid((), 0 if n_uname == p.NOFID else n_uname)
        return Encoder().qid(qid)

    def _flush(self, d: Decoder, room: int) -> None:
        d.u16()  # every earlier request has already been answered

    # -- walking ------------------------------------------------------------------------------
    def _walk(self, d: Decoder, room: int) -> Encoder:
        n = d.u32()
        src, newfid, count = self._fid(n), d.u32(), d.u16()
        if count > p.MAX_WALK_NAMES:
            raise P9Error(errno.EINVAL, f"walk of {count} names")
        names = [d.string() for _ in range(count)]
        if newfid != n:
            self._new_fid_number(newfid)
        parts = src.parts
        qids: list[Qid] = []
        for i, name in enumerate(names):
            if name == b"..":
                nxt = parts[:-1]  # the root is its own parent: never above the share
            elif name == b".":
                nxt = parts
            else:
                check_name(name)
                nxt = (*parts, name)
            try:
                qid = self._qid(nxt)
            except (P9Error, OSError):
                if i == 0:
                    raise
                break  # a partial walk: the qids so far, and newfid is not made
            qids.append(qid)
            parts = nxt
        if len(qids) == len(names):
            if newfid == n:
                src.parts = parts
            else:
                self.fids[newfid] = Fid(parts, src.uid)
        enc = Encoder().u16(len(qids))
        for qid in qids:
            enc.qid(qid)
        return enc

    # -- opening ------------------------------------------------------------------------------
    def _unopened(self, n: int) -> Fid:
        fid = self._fid(n)
        if fid.fd is not None or fid.xattr is not None:
            raise P9Error(errno.EBADF, f"fid {n} is already open")
        return fid

    def _lopen(self, d: Decoder, room: int) -> Encoder:
        fid, dotl = self._unopened(d.u32()), d.u32()
        attr = self.fs.getattr(fid.parts)
        wants_write = bool(dotl & _WRITE_FLAGS)
        if wants_write:
            self._writable()
        self._may_open()
        if stat.S_ISDIR(attr.st.st_mode):
            if wants_write:
                raise P9Error(errno.EISDIR, "a directory opens read-only")
            fid.fd = self.fs.open(fid.parts, os.O_RDONLY | os.O_DIRECTORY)
        else:
            fid.fd = self.fs.open(fid.parts, host_open_flags(dotl))
        fid.writable = wants_write
        self.open_fids += 1
        return Encoder().qid(self._attr_qid(attr)).u32(0)  # iounit 0: msize rules

    def _lcreate(self, d: Decoder, room: int) -> Encoder:
        fid, name, dotl, mode, gid = self._unopened(d.u32()), d.string(), d.u32(), d.u32(), \
            d.u32()
        self._writable()
        self._may_open()
        flags = host_open_flags(dotl) | (os.O_EXCL if dotl & p.DOTL_EXCL else 0)
        fd = self.fs.create(fid.parts, name, flags, mode, fid.uid, gid)
        fid.parts, fid.fd, fid.writable = (*fid.parts, name), fd, True
        self.open_fids += 1
        return Encoder().qid(self._attr_qid(self.fs.getattr(fid.parts, fd))).u32(0)

    # -- data ----------------------------------------------------------------------------------
    def _read(self, d: Decoder, room: int) -> Encoder:
        fid, offset, count = self._fid(d.u32()), d.u64(), d.u32()
        count = max(0, min(count, room - p.IOHDR_SIZE))
        if fid.xattr is not None:
            if fid.xattr.creating:
                raise P9Error(errno.EBADF, "an xattr being created is written, not read")
            data = bytes(fid.xattr.value[offset:offset + count])
        elif fid.fd is None:
            raise P9Error(errno.EBADF, "fid is not open")
        else:
            data = _at_offset(os.pread, os.read, fid.fd, count, offset)
        return Encoder().u32(len(data)).raw(data)

    def _write(self, d: Decoder, room: int) -> Encoder:
        fid, offset, count = self._fid(d.u32()), d.u64(), d.u32()
        data = d.rest()
        if count > len(data):
            raise P9Error(errno.EPROTO, "Twrite count beyond the message")
        data = data[:count]
        if fid.xattr is not None:
            xa = fid.xattr
            if not xa.creating:
                raise P9Error(errno.EBADF, "an xattr being read is not written")
            if offset + count > len(xa.value):
                raise P9Error(errno.ENOSPC, "write beyond the declared xattr size")
            xa.value[offset:offset + count] = data
            xa.written += count
            return Encoder().u32(count)
        if fid.fd is None or not fid.writable:
            raise P9Error(errno.EBADF, "fid is not open for writing")
        self._writable()
        written = _at_offset(os.pwrite, os.write, fid.fd, data, offset)
        if self.sync_writes:
            os.fdatasync(fid.fd)
        return Encoder().u32(written)

    def _clunk(self, d: Decoder, room: int) -> None:
        fid = self._forget(d.u32())
        xa = fid.xattr
        if xa is not None and xa.creating:
            if xa.written != len(xa.value):
                raise P9Error(errno.EINVAL, "xattr value shorter than declared")
            if xa.value:
                self.fs.setxattr(fid.parts, xa.name, bytes(xa.value), xa.flags)
            else:
                self.fs.removexattr(fid.parts, xa.name)

    def _remove(self, d: Decoder, room: int) -> None:
        fid = self._forget(d.u32())  # Tremove clunks the fid whatever happens to the file
        self._writable()
        if not fid.parts:
            raise P9Error(errno.EBUSY, "the share root cannot be removed")
        is_dir = stat.S_ISDIR(self.fs.getattr(fid.parts).st.st_mode)
        self.fs.unlink(fid.parts[:-1], fid.parts[-1], is_dir)

    # -- attributes ----------------------------------------------------------------------------
    def _getattr(self, d: Decoder, room: int) -> Encoder:
        fid, _mask = self._fid(d.u32()), d.u64()
        # an open file answers from its descriptor: unlinked-but-open files still have one
        attr = self.fs.getattr(fid.parts, fid.fd)
        st = attr.st
        enc = Encoder().u64(p.GETATTR_BASIC).qid(self._attr_qid(attr))
        enc.u32(attr.mode).u32(attr.uid).u32(attr.gid)
        enc.u64(st.st_nlink).u64(attr.rdev).u64(st.st_size).u64(st.st_blksize)
        enc.u64(st.st_blocks)
        for ns in (st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns):
            enc.u64(ns // 1_000_000_000).u64(ns % 1_000_000_000)
        return enc.u64(0).u64(0).u64(0).u64(0)  # btime, gen, data_version: not kept

    def _setattr(self, d: Decoder, room: int) -> None:
        fid, valid, mode, uid, gid = self._fid(d.u32()), d.u32(), d.u32(), d.u32(), d.u32()
        size, a_sec, a_nsec, m_sec, m_nsec = d.u64(), d.u64(), d.u64(), d.u64(), d.u64()
        self._writable()
        fd = fid.fd  # an open file is changed through its descriptor (unlinked ones too)
        if valid & p.SETATTR_MODE:
            self.fs.chmod(fid.parts, mode, fd)
        if valid & (p.SETATTR_UID | p.SETATTR_GID):
            self.fs.chown(fid.parts, uid if valid & p.SETATTR_UID and uid != p.NOFID else -1,
                          gid if valid & p.SETATTR_GID and gid != p.NOFID else -1, fd)
        if valid & p.SETATTR_SIZE:
            if fd is not None and fid.writable:
                os.ftruncate(fd, size)
            else:
                self.fs.truncate(fid.parts, size)
        # last: a truncation moves mtime, the times the guest gives must win
        if valid & (p.SETATTR_ATIME | p.SETATTR_MTIME):
            now = time.time_ns()
            atime = mtime = None
            if valid & p.SETATTR_ATIME:
                atime = a_sec * 1_000_000_000 + a_nsec if valid & p.SETATTR_ATIME_SET else now
            if valid & p.SETATTR_MTIME:
                mtime = m_sec * 1_000_000_000 + m_nsec if valid & p.SETATTR_MTIME_SET else now
            self.fs.utimes(fid.parts, atime, mtime, fd)

    def _statfs(self, d: Decoder, room: int) -> Encoder:
        fid = self._fid(d.u32())
        sv = self.fs.statfs(fid.parts)
        return (Encoder().u32(V9FS_MAGIC).u32(sv.f_bsize).u64(sv.f_blocks).u64(sv.f_bfree)
                .u64(sv.f_bavail).u64(sv.f_files).u64(sv.f_ffree).u64(sv.f_fsid)
                .u32(sv.f_namemax))

    def _fsync(self, d: Decoder, room: int) -> None:
        fid = self._fid(d.u32())
        datasync = d.u32() if d.pos < len(d.data) else 0  # older clients send no flag
        if fid.fd is not None:
            (os.fdatasync if datasync else os.fsync)(fid.fd)

    # -- directories --------------------------------------------------------------------------
    def _readdir(self, d: Decoder, room: int) -> Encoder:
        fid, offset, count = self._fid(d.u32()), d.u64(), d.u32()
        if fid.fd is None or fid.xattr is not None:
            raise P9Error(errno.EBADF, "readdir of a fid that is not an open directory")
        if offset == 0 or fid.listing is None:
            fid.listing = self._list(fid)
        count = max(0, min(count, room - p.IOHDR_SIZE))
        out = Encoder()
        for index in range(offset, len(fid.listing)):
            qid, dtype, name = fid.listing[index]
            entry = Encoder().qid(qid).u64(index + 1).u8(dtype).string(name)
            if len(out.buf) + len(entry.buf) > count:
                break
            out.raw(entry.buf)
        return Encoder().u32(len(out.buf)).raw(out.buf)

    def _list(self, fid: Fid) -> list[tuple[Qid, int, bytes]]:
        """A snapshot of the directory (re-taken at offset 0, as rewinddir): the offset a
        guest passes back is an index into it."""
        assert fid.fd is not None
        dot = self.fs.getattr(fid.parts, fid.fd)
        dotdot = self.fs.getattr(fid.parts[:-1]) if fid.parts else dot
        entries = [(self._attr_qid(dot), _DTYPES[stat.S_IFDIR], b"."),
                   (self._attr_qid(dotdot), _DTYPES[stat.S_IFDIR], b"..")]
        with os.scandir(fid.fd) as it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # gone since the directory was read
                # mapped-xattr: the host type is not the guest's; the guest asks Tgetattr
                dtype = DT_UNKNOWN if self.fs.mapped else _DTYPES.get(stat.S_IFMT(st.st_mode),
                                                                     DT_UNKNOWN)
                entries.append((Qid.from_stat(st), dtype, os.fsencode(entry.name)))
        return entries

    def _mkdir(self, d: Decoder, room: int) -> Encoder:
        dfid, name, mode, gid = self._fid(d.u32()), d.string(), d.u32(), d.u32()
        self._writable()
        self.fs.mkdir(dfid.parts, name, mode, dfid.uid, gid)
        return Encoder().qid(self._qid((*dfid.parts, name)))

    def _unlinkat(self, d: Decoder, room: int) -> None:
        dfid, name, flags = self._fid(d.u32()), d.string(), d.u32()
        self._writable()
        self.fs.unlink(dfid.parts, name, bool(flags & p.AT_REMOVEDIR))

    def _renameat(self, d: Decoder, room: int) -> None:
        odir, oname, ndir, nname = self._fid(d.u32()), d.string(), self._fid(d.u32()), \
            d.string()
        self._writable()
        self.fs.rename(odir.parts, oname, ndir.parts, nname)
        self._moved((*odir.parts, oname), (*ndir.parts, nname))

    def _rename(self, d: Decoder, room: int) -> None:
        fid, ndir, nname = self._fid(d.u32()), self._fid(d.u32()), d.string()
        self._writable()
        if not fid.parts:
            raise P9Error(errno.EBUSY, "the share root cannot be renamed")
        self.fs.rename(fid.parts[:-1], fid.parts[-1], ndir.parts, nname)
        self._moved(fid.parts, (*ndir.parts, nname))

    def _symlink(self, d: Decoder, room: int) -> Encoder:
        dfid, name, target, gid = self._fid(d.u32()), d.string(), d.string(), d.u32()
        self._writable()
        self.fs.symlink(dfid.parts, name, target, dfid.uid, gid)
        return Encoder().qid(self._qid((*dfid.parts, name)))

    def _readlink(self, d: Decoder, room: int) -> Encoder:
        fid = self._fid(d.u32())
        return Encoder().string(self.fs.readlink(fid.parts))

    def _link(self, d: Decoder, room: int) -> None:
        dfid, fid, name = self._fid(d.u32()), self._fid(d.u32()), d.string()
        self._writable()
        self.fs.link(dfid.parts, name, fid.parts)

    def _mknod(self, d: Decoder, room: int) -> Encoder:
        dfid, name, mode, major, minor, gid = self._fid(d.u32()), d.string(), d.u32(), \
            d.u32(), d.u32(), d.u32()
        self._writable()
        self.fs.mknod(dfid.parts, name, mode, os.makedev(major, minor), dfid.uid, gid)
        return Encoder().qid(self._qid((*dfid.parts, name)))

    # -- locks: the guest's own VFS arbitrates them, as with QEMU ----------------------------------
    def _lock(self, d: Decoder, room: int) -> Encoder:
        self._fid(d.u32())
        return Encoder().u8(p.LOCK_SUCCESS)

    def _getlock(self, d: Decoder, room: int) -> Encoder:
        self._fid(d.u32())
        d.u8()
        start, length, proc_id, client = d.u64(), d.u64(), d.u32(), d.string()
        return (Encoder().u8(p.LOCK_TYPE_UNLCK).u64(start).u64(length).u32(proc_id)
                .string(client))

    # -- extended attributes ----------------------------------------------------------------------
    def _xattrwalk(self, d: Decoder, room: int) -> Encoder:
        fid, newfid, name = self._fid(d.u32()), d.u32(), d.string()
        self._new_fid_number(newfid)
        self._may_open()
        if name:
            value = self.fs.getxattr(fid.parts, name, fid.fd)
        else:
            value = b"".join(n + b"\0" for n in self.fs.listxattr(fid.parts, fid.fd))
        self.fids[newfid] = Fid(fid.parts, fid.uid, xattr=XattrBuffer(bytearray(value)))
        self.open_fids += 1
        return Encoder().u64(len(value))

    def _xattrcreate(self, d: Decoder, room: int) -> None:
        fid, name, size, flags = self._unopened(d.u32()), d.string(), d.u64(), d.u32()
        self._writable()
        if size > XATTR_SIZE_MAX:
            raise P9Error(errno.E2BIG, f"xattr value of {size} bytes")
        if self.fs.is_hidden_xattr(name):
            raise P9Error(errno.EACCES, "the mapped attributes are the server's")
        self._may_open()
        fid.xattr = XattrBuffer(bytearray(size), name, flags, creating=True)
        self.open_fids += 1




def _at_offset(positioned, streaming, fd: int, arg, offset: int):  # noqa: ANN001
    """pread/pwrite, or read/write where the file has no offsets (a FIFO, a socket)."""
    try:
        return positioned(fd, arg, offset)
    except OSError as e:
        if e.errno != errno.ESPIPE:
            raise
        return streaming(fd, arg)
