"""9P2000.L wire format: message numbers, the codec and the qid.

Every message is ``size[4] type[1] tag[2]`` then its fields, all little-endian;
strings are ``len[2]`` + bytes.  Names stay bytes end to end (a host file name need
not be UTF-8).  Decoding a short or malformed message raises ``P9Error(EPROTO)``,
which the server answers with Rlerror like any other failure.
"""

from __future__ import annotations

import errno
import stat
import struct
from dataclasses import dataclass

# T-message numbers (the R-message is T + 1)
TLERROR = 6
TSTATFS = 8
TLOPEN = 12
TLCREATE = 14
TSYMLINK = 16
TMKNOD = 18
TRENAME = 20
TREADLINK = 22
TGETATTR = 24
TSETATTR = 26
TXATTRWALK = 30
TXATTRCREATE = 32
TREADDIR = 40
TFSYNC = 50
TLOCK = 52
TGETLOCK = 54
TLINK = 70
TMKDIR = 72
TRENAMEAT = 74
TUNLINKAT = 76
TVERSION = 100
TAUTH = 102
TATTACH = 104
TFLUSH = 108
TWALK = 110
TREAD = 116
TWRITE = 118
TCLUNK = 120
TREMOVE = 122
RLERROR = 7

NOTAG = 0xFFFF
NOFID = 0xFFFFFFFF
HEADER = struct.Struct("<IBH")
# Rread/Rreaddir: header + count[4] before the data
IOHDR_SIZE = HEADER.size + 4
MAX_WALK_NAMES = 16  # P9_MAXWELEM

# qid.type bits
QTDIR = 0x80
QTSYMLINK = 0x02
QTFILE = 0x00

# Tgetattr request/valid mask: the basic fields (mode .. blocks)
GETATTR_BASIC = 0x000007FF

# Tsetattr valid bits
SETATTR_MODE = 0x001
SETATTR_UID = 0x002
SETATTR_GID = 0x004
SETATTR_SIZE = 0x008
SETATTR_ATIME = 0x010
SETATTR_MTIME = 0x020
SETATTR_CTIME = 0x040
SETATTR_ATIME_SET = 0x080
SETATTR_MTIME_SET = 0x100

# Tunlinkat flags
AT_REMOVEDIR = 0x200

# Tlock status / Tgetlock types
LOCK_SUCCESS = 0
LOCK_TYPE_UNLCK = 2

# The Linux open flags as 9P2000.L carries them (P9_DOTL_*: the generic Linux values,
# which a host of another architecture spells differently)
DOTL_WRONLY = 0o1
DOTL_RDWR = 0o2
DOTL_CREATE = 0o100
DOTL_EXCL = 0o200
DOTL_TRUNC = 0o1000
DOTL_APPEND = 0o2000
DOTL_DSYNC = 0o10000
DOTL_DIRECTORY = 0o200000
DOTL_SYNC = 0o4000000


class P9Error(Exception):
    """A request failed; the guest gets Rlerror with this errno."""

    def __init__(self, code: int, why: str = "") -> None:
        super().__init__(why or errno.errorcode.get(code, str(code)))
        self.errno = code


@dataclass(frozen=True)
class Qid:
    type: int
    version: int
    path: int

    STRUCT = struct.Struct("<BIQ")

    def pack(self) -> bytes:
        return self.STRUCT.pack(self.type, self.version, self.path)

    @classmethod
    def from_stat(cls, st) -> Qid:  # noqa: ANN001 - an os.stat_result
        """The qid of a host file: its inode, typed by its mode, versioned by mtime and
        size as QEMU does (a cache=loose guest notices changes by it)."""
        return cls(qid_type(st.st_mode), (int(st.st_mtime) ^ (st.st_size << 8)) & 0xFFFFFFFF,
                   st.st_ino)


def qid_type(mode: int) -> int:
    if stat.S_ISDIR(mode):
        return QTDIR
    if stat.S_ISLNK(mode):
        return QTSYMLINK
    return QTFILE


class Decoder:
    """Reads the fields of one message body; any short read is a protocol error."""

    def __init__(self, data: bytes, pos: int = HEADER.size) -> None:
        self.data = data
        self.pos = pos

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise P9Error(errno.EPROTO, "message shorter than its fields")
        out = self.data[self.pos:end]
        self.pos = end
        return out

    def u8(self) -> int:
        return self._take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self._take(2), "little")

    def u32(self) -> int:
        return int.from_bytes(self._take(4), "little")

    def u64(self) -> int:
        return int.from_bytes(self._take(8), "little")

    def string(self) -> bytes:
        return bytes(self._take(self.u16()))

    def rest(self) -> bytes:
        out = self.data[self.pos:]
        self.pos = len(self.data)
        return bytes(out)


class Encoder:
    """Builds one reply body."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def u8(self, v: int) -> Encoder:
        self.buf += v.to_bytes(1, "little")
        return self

    def u16(self, v: int) -> Encoder:
        self.buf += v.to_bytes(2, "little")
        return self

    def u32(self, v: int) -> Encoder:
        self.buf += (v & 0xFFFFFFFF).to_bytes(4, "little")
        return self

    def u64(self, v: int) -> Encoder:
        self.buf += (v & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")
        return self

    def string(self, s: bytes) -> Encoder:
        if len(s) > 0xFFFF:
            raise P9Error(errno.ENAMETOOLONG)
        self.u16(len(s))
        self.buf += s
        return self

    def qid(self, q: Qid) -> Encoder:
        self.buf += q.pack()
        return self

    def raw(self, data: bytes) -> Encoder:
        self.buf += data
        return self


def message(mtype: int, tag: int, body: bytes | bytearray = b"") -> bytes:
    """A whole message: header and body."""
    return HEADER.pack(HEADER.size + len(body), mtype, tag) + bytes(body)


def lerror(tag: int, code: int) -> bytes:
    return message(RLERROR, tag, code.to_bytes(4, "little"))
