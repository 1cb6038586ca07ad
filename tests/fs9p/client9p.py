"""A small 9P2000.L client that talks to ``Server.handle`` directly, for tests."""

from __future__ import annotations

from pemu.fs9p import protocol as p
from pemu.fs9p.protocol import Decoder, Encoder, P9Error, Qid

# Linux's open flags as 9P2000.L carries them
O_RDONLY, O_WRONLY, O_RDWR = 0, p.DOTL_WRONLY, p.DOTL_RDWR
O_CREAT, O_EXCL, O_TRUNC = p.DOTL_CREATE, p.DOTL_EXCL, p.DOTL_TRUNC


def _qid(d: Decoder) -> Qid:
    return Qid(d.u8(), d.u32(), d.u64())


class Client:
    def __init__(self, server, msize: int = 65536) -> None:
        self.server = server
        self.tag = 0
        self.next_fid = 1
        rmsize, version = self.version(msize)
        assert version == b"9P2000.L"
        self.msize = rmsize

    def raw(self, mtype: int, body: bytes | bytearray, room: int | None = None) -> bytes:
        self.tag = (self.tag + 1) & 0x7FFF
        return self.server.handle(p.message(mtype, self.tag, body), room)

    def rpc(self, mtype: int, enc: Encoder, room: int | None = None) -> Decoder:
        reply = self.raw(mtype, enc.buf, room)
        size, rtype, rtag = p.HEADER.unpack_from(reply)
        assert size == len(reply) and rtag == self.tag
        d = Decoder(reply)
        if rtype == p.RLERROR:
            raise P9Error(d.u32())
        assert rtype == mtype + 1, (rtype, mtype)
        return d

    def fid(self) -> int:
        self.next_fid += 1
        return self.next_fid

    # -- messages -----------------------------------------------------------------------------
    def version(self, msize: int, version: bytes = b"9P2000.L") -> tuple[int, bytes]:
        d = self.rpc(p.TVERSION, Encoder().u32(msize).string(version))
        return d.u32(), d.string()

    def attach(self, uid: int = 0) -> int:
        fid = self.fid()
        _qid(self.rpc(p.TATTACH, Encoder().u32(fid).u32(p.NOFID).string(b"root").string(b"")
                      .u32(uid)))
        return fid

    def walk(self, fid: int, *names: bytes, newfid: int | None = None) -> tuple[int, list[Qid]]:
        newfid = self.fid() if newfid is None else newfid
        enc = Encoder().u32(fid).u32(newfid).u16(len(names))
        for n in names:
            enc.string(n)
        d = self.rpc(p.TWALK, enc)
        return newfid, [_qid(d) for _ in range(d.u16())]

    def open_path(self, root: int, *names: bytes, flags: int = O_RDONLY) -> int:
        fid, qids = self.walk(root, *names)
        assert len(qids) == len(names)
        self.lopen(fid, flags)
        return fid

    def lopen(self, fid: int, flags: int) -> Qid:
        d = self.rpc(p.TLOPEN, Encoder().u32(fid).u32(flags))
        return _qid(d)

    def lcreate(self, fid: int, name: bytes, flags: int = O_RDWR, mode: int = 0o644,
                gid: int = 0) -> Qid:
        d = self.rpc(p.TLCREATE, Encoder().u32(fid).string(name).u32(flags).u32(mode).u32(gid))
        return _qid(d)

    def read(self, fid: int, offset: int, count: int, room: int | None = None) -> bytes:
        d = self.rpc(p.TREAD, Encoder().u32(fid).u64(offset).u32(count), room)
        n = d.u32()
        return bytes(d.data[d.pos:d.pos + n])

    def write(self, fid: int, offset: int, data: bytes) -> int:
        return self.rpc(p.TWRITE, Encoder().u32(fid).u64(offset).u32(len(data)).raw(data)).u32()

    def clunk(self, fid: int) -> None:
        self.rpc(p.TCLUNK, Encoder().u32(fid))

    def getattr(self, fid: int) -> dict[str, int]:
        d = self.rpc(p.TGETATTR, Encoder().u32(fid).u64(p.GETATTR_BASIC))
        out: dict[str, int] = {"valid": d.u64()}
        out["qid_type"] = _qid(d).type
        for key in ("mode", "uid", "gid"):
            out[key] = d.u32()
        for key in ("nlink", "rdev", "size", "blksize", "blocks", "atime", "atime_ns",
                    "mtime", "mtime_ns"):
            out[key] = d.u64()
        return out

    def setattr(self, fid: int, valid: int, mode: int = 0, uid: int = 0, gid: int = 0,
                size: int = 0, atime: tuple[int, int] = (0, 0),
                mtime: tuple[int, int] = (0, 0)) -> None:
        self.rpc(p.TSETATTR, Encoder().u32(fid).u32(valid).u32(mode).u32(uid).u32(gid)
                 .u64(size).u64(atime[0]).u64(atime[1]).u64(mtime[0]).u64(mtime[1]))

    def readdir_page(self, fid: int, offset: int, count: int) -> list[tuple[int, int, bytes]]:
        d = self.rpc(p.TREADDIR, Encoder().u32(fid).u64(offset).u32(count))
        end = d.pos + 4 + d.u32()
        out = []
        while d.pos < end:
            _qid(d)
            out.append((d.u64(), d.u8(), d.string()))
        return out

    def readdir(self, fid: int, count: int = 8192) -> list[bytes]:
        names, offset = [], 0
        while page := self.readdir_page(fid, offset, count):
            names += [n for _, _, n in page]
            offset = page[-1][0]
        return names

    def mkdir(self, dfid: int, name: bytes, mode: int = 0o755, gid: int = 0) -> Qid:
        return _qid(self.rpc(p.TMKDIR, Encoder().u32(dfid).string(name).u32(mode).u32(gid)))

    def unlinkat(self, dfid: int, name: bytes, flags: int = 0) -> None:
        self.rpc(p.TUNLINKAT, Encoder().u32(dfid).string(name).u32(flags))

    def renameat(self, odir: int, old: bytes, ndir: int, new: bytes) -> None:
        self.rpc(p.TRENAMEAT, Encoder().u32(odir).string(old).u32(ndir).string(new))

    def symlink(self, dfid: int, name: bytes, target: bytes, gid: int = 0) -> Qid:
        return _qid(self.rpc(p.TSYMLINK, Encoder().u32(dfid).string(name).string(target)
                             .u32(gid)))

    def readlink(self, fid: int) -> bytes:
        return self.rpc(p.TREADLINK, Encoder().u32(fid)).string()

    def link(self, dfid: int, fid: int, name: bytes) -> None:
        self.rpc(p.TLINK, Encoder().u32(dfid).u32(fid).string(name))

    def mknod(self, dfid: int, name: bytes, mode: int, major: int = 0, minor: int = 0,
              gid: int = 0) -> Qid:
        return _qid(self.rpc(p.TMKNOD, Encoder().u32(dfid).string(name).u32(mode).u32(major)
                             .u32(minor).u32(gid)))

    def xattrwalk(self, fid: int, name: bytes) -> tuple[int, int]:
        newfid = self.fid()
        return newfid, self.rpc(p.TXATTRWALK, Encoder().u32(fid).u32(newfid).string(name)).u64()

    def xattrcreate(self, fid: int, name: bytes, size: int, flags: int = 0) -> None:
        self.rpc(p.TXATTRCREATE, Encoder().u32(fid).string(name).u64(size).u32(flags))

    def get_xattr(self, fid: int, name: bytes) -> bytes:
        xfid, size = self.xattrwalk(fid, name)
        try:
            return self.read(xfid, 0, size)
        finally:
            self.clunk(xfid)

    def set_xattr(self, fid: int, name: bytes, value: bytes) -> None:
        xfid, _ = self.walk(fid)
        self.xattrcreate(xfid, name, len(value))
        if value:
            self.write(xfid, 0, value)
        self.clunk(xfid)
