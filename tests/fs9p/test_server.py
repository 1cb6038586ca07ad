"""The 9P2000.L server against a temporary host directory: what a guest does."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from pemu.fs9p import protocol as p
from pemu.fs9p import server
from pemu.fs9p.protocol import Encoder, P9Error
from tests.fs9p.client9p import O_CREAT, O_EXCL, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY


def err(excinfo) -> int:
    return excinfo.value.errno


def test_version_negotiates_msize_and_refuses_other_protocols(share):
    c = share.client
    assert c.version(8 << 20) == (share.server.max_msize, b"9P2000.L")
    assert c.version(8192) == (8192, b"9P2000.L")
    assert c.version(8192, b"9P2000.u")[1] == b"unknown"
    with pytest.raises(P9Error) as e:
        c.version(512)
    assert err(e) == errno.EMSGSIZE


def test_version_starts_a_new_session(share):
    c = share.client
    c.version(65536)
    with pytest.raises(P9Error) as e:
        c.walk(share.rootfid)
    assert err(e) == errno.EBADF


def test_attach_walk_getattr(share):
    (share.root / "dir").mkdir()
    (share.root / "dir" / "file").write_bytes(b"12345")
    c = share.client
    fid, qids = c.walk(share.rootfid, b"dir", b"file")
    assert [q.type for q in qids] == [p.QTDIR, p.QTFILE]
    assert qids[1].path == os.stat(share.root / "dir" / "file").st_ino
    attr = c.getattr(fid)
    assert attr["size"] == 5 and stat.S_ISREG(attr["mode"])
    assert c.getattr(share.rootfid)["qid_type"] == p.QTDIR


def test_partial_walk_returns_the_qids_so_far_and_makes_no_fid(share):
    (share.root / "dir").mkdir()
    c = share.client
    newfid, qids = c.walk(share.rootfid, b"dir", b"missing")
    assert len(qids) == 1
    with pytest.raises(P9Error):
        c.getattr(newfid)
    with pytest.raises(P9Error) as e:
        c.walk(share.rootfid, b"missing")
    assert err(e) == errno.ENOENT


def test_create_write_read_and_the_host_sees_it(share):
    c = share.client
    fid, _ = c.walk(share.rootfid)
    c.lcreate(fid, b"new.txt", O_RDWR | O_CREAT, 0o640)
    assert c.write(fid, 0, b"hello from the guest") == 20
    assert c.read(fid, 6, 4) == b"from"
    c.clunk(fid)
    host = share.root / "new.txt"
    assert host.read_bytes() == b"hello from the guest"
    assert stat.S_IMODE(host.stat().st_mode) == 0o640
    with pytest.raises(P9Error) as e:
        fid, _ = c.walk(share.rootfid)
        c.lcreate(fid, b"new.txt", O_RDWR | O_CREAT | O_EXCL)
    assert err(e) == errno.EEXIST


def test_large_transfers_are_cut_at_msize(share):
    data = os.urandom(300_000)
    (share.root / "big").write_bytes(data)
    c = share.client
    c.version(65536)
    root = c.attach()
    fid = c.open_path(root, b"big")
    got = bytearray()
    while chunk := c.read(fid, len(got), 1 << 20):
        assert len(chunk) <= 65536 - p.IOHDR_SIZE
        got += chunk
    assert got == data
    # and never more than the driver's buffers hold
    assert len(c.read(fid, 0, 65536, room=1000)) == 1000 - p.IOHDR_SIZE


def test_open_truncate_and_write_flags(share):
    (share.root / "f").write_bytes(b"old contents")
    c = share.client
    fid = c.open_path(share.rootfid, b"f", flags=O_WRONLY | O_TRUNC)
    c.write(fid, 0, b"new")
    assert (share.root / "f").read_bytes() == b"new"
    ro = c.open_path(share.rootfid, b"f", flags=O_RDONLY)
    with pytest.raises(P9Error) as e:
        c.write(ro, 0, b"x")
    assert err(e) == errno.EBADF


def test_readdir_lists_everything_across_pages(share):
    names = {f"file{i:03}".encode() for i in range(60)}
    for n in names:
        (share.root / n.decode()).write_text("x")
    (share.root / "sub").mkdir()
    c = share.client
    fid = c.open_path(share.rootfid)
    listed = c.readdir(fid, count=200)  # a few entries a page
    assert sorted(listed) == sorted([b".", b"..", b"sub", *names])
    first = c.readdir_page(fid, 0, 8192)
    assert {n: t for _, t, n in first}[b"sub"] == 4  # DT_DIR


def test_mkdir_rename_unlink(share):
    c = share.client
    c.mkdir(share.rootfid, b"d", 0o750)
    assert stat.S_IMODE((share.root / "d").stat().st_mode) == 0o750
    dfid, _ = c.walk(share.rootfid, b"d")
    f, _ = c.walk(dfid)
    c.lcreate(f, b"inner", O_WRONLY | O_CREAT)
    c.write(f, 0, b"data")
    c.clunk(f)
    inner, _ = c.walk(share.rootfid, b"d", b"inner")
    c.renameat(share.rootfid, b"d", share.rootfid, b"e")
    assert (share.root / "e" / "inner").read_bytes() == b"data"
    # fids below the renamed directory follow it
    assert c.getattr(inner)["size"] == 4
    c.unlinkat(dfid, b"inner")
    assert not (share.root / "e" / "inner").exists()
    with pytest.raises(P9Error) as e:
        c.unlinkat(share.rootfid, b"e")  # a directory needs AT_REMOVEDIR
    assert err(e) in (errno.EISDIR, errno.EPERM)
    c.unlinkat(share.rootfid, b"e", p.AT_REMOVEDIR)
    assert not (share.root / "e").exists()


def test_symlink_readlink_link_mknod(share):
    c = share.client
    c.symlink(share.rootfid, b"ln", b"target/elsewhere")
    assert os.readlink(share.root / "ln") == "target/elsewhere"
    lfid, qids = c.walk(share.rootfid, b"ln")
    assert qids[0].type == p.QTSYMLINK
    assert c.readlink(lfid) == b"target/elsewhere"
    (share.root / "orig").write_text("same inode")
    ofid, _ = c.walk(share.rootfid, b"orig")
    c.link(share.rootfid, ofid, b"hard")
    assert os.stat(share.root / "hard").st_ino == os.stat(share.root / "orig").st_ino
    c.mknod(share.rootfid, b"fifo", stat.S_IFIFO | 0o600)
    assert stat.S_ISFIFO(os.lstat(share.root / "fifo").st_mode)
    # a FIFO opened by the guest never blocks the server (no writer: end of file)
    ffid = c.open_path(share.rootfid, b"fifo", flags=O_RDONLY)
    assert c.read(ffid, 0, 10) == b""


def test_setattr_mode_size_times(share):
    (share.root / "f").write_bytes(b"0123456789")
    c = share.client
    fid, _ = c.walk(share.rootfid, b"f")
    c.setattr(fid, p.SETATTR_MODE, mode=0o604)
    c.setattr(fid, p.SETATTR_SIZE, size=3)
    c.setattr(fid, p.SETATTR_ATIME | p.SETATTR_ATIME_SET | p.SETATTR_MTIME
              | p.SETATTR_MTIME_SET, atime=(1000, 5), mtime=(2000, 7))
    st = os.stat(share.root / "f")
    assert stat.S_IMODE(st.st_mode) == 0o604 and st.st_size == 3
    assert (st.st_atime_ns, st.st_mtime_ns) == (1000 * 10**9 + 5, 2000 * 10**9 + 7)
    attr = c.getattr(fid)
    assert (attr["mtime"], attr["mtime_ns"]) == (2000, 7)


def test_xattrs_round_trip(share):
    (share.root / "f").write_text("x")
    c = share.client
    fid, _ = c.walk(share.rootfid, b"f")
    c.set_xattr(fid, b"user.color", b"blue")
    assert os.getxattr(share.root / "f", "user.color") == b"blue"
    assert c.get_xattr(fid, b"user.color") == b"blue"
    assert b"user.color\0" in c.get_xattr(fid, b"")
    c.set_xattr(fid, b"user.color", b"")  # size 0: remove
    with pytest.raises(P9Error) as e:
        c.xattrwalk(fid, b"user.color")
    assert err(e) == errno.ENODATA


def test_statfs_fsync_lock_flush(share):
    c = share.client
    d = c.rpc(p.TSTATFS, Encoder().u32(share.rootfid))
    assert d.u32() == 0x01021997 and d.u32() > 0
    fid = c.open_path(share.rootfid)
    c.rpc(p.TFSYNC, Encoder().u32(fid).u32(0))
    assert c.rpc(p.TLOCK, Encoder().u32(fid).u8(1).u32(0).u64(0).u64(0).u32(1)
                 .string(b"host")).u8() == p.LOCK_SUCCESS
    d = c.rpc(p.TGETLOCK, Encoder().u32(fid).u8(1).u64(5).u64(6).u32(7).string(b"me"))
    assert (d.u8(), d.u64(), d.u64(), d.u32(), d.string()) == (p.LOCK_TYPE_UNLCK, 5, 6, 7,
                                                               b"me")
    c.rpc(p.TFLUSH, Encoder().u16(3))


def test_malformed_messages_get_rlerror(share):
    c = share.client
    reply = c.raw(p.TWALK, b"\x01")  # body cut short
    assert reply[4] == p.RLERROR and int.from_bytes(reply[7:11], "little") == errno.EPROTO
    reply = c.raw(200, b"")
    assert int.from_bytes(reply[7:11], "little") == errno.EOPNOTSUPP
    bad_size = p.HEADER.pack(999, p.TCLUNK, 1) + (1).to_bytes(4, "little")
    assert share.server.handle(bad_size)[4] == p.RLERROR
    assert share.server.handle(b"\x00") == b""
    with pytest.raises(P9Error) as e:
        c.walk(share.rootfid, *[b"a"] * 17)
    assert err(e) == errno.EINVAL
    with pytest.raises(P9Error) as e:
        c.getattr(4242)
    assert err(e) == errno.EBADF


def test_readonly_share_refuses_every_change(make_share):
    s = make_share("passthrough", readonly=True)
    (s.root / "f").write_text("keep me")
    c = s.client
    fid = c.open_path(s.rootfid, b"f")
    assert c.read(fid, 0, 100) == b"keep me"
    attempts = [
        lambda: c.lopen(c.walk(s.rootfid, b"f")[0], O_WRONLY),
        lambda: c.lopen(c.walk(s.rootfid, b"f")[0], O_RDONLY | O_TRUNC),
        lambda: c.lcreate(c.walk(s.rootfid)[0], b"new", O_RDWR | O_CREAT),
        lambda: c.mkdir(s.rootfid, b"d"),
        lambda: c.unlinkat(s.rootfid, b"f"),
        lambda: c.renameat(s.rootfid, b"f", s.rootfid, b"g"),
        lambda: c.symlink(s.rootfid, b"l", b"f"),
        lambda: c.setattr(c.walk(s.rootfid, b"f")[0], p.SETATTR_SIZE, size=0),
        lambda: c.set_xattr(c.walk(s.rootfid, b"f")[0], b"user.x", b"1"),
        lambda: c.mknod(s.rootfid, b"fifo", stat.S_IFIFO | 0o600),
    ]
    for attempt in attempts:
        with pytest.raises(P9Error) as e:
            attempt()
        assert err(e) == errno.EROFS
    assert sorted(os.listdir(s.root)) == ["f"]
    assert (s.root / "f").read_text() == "keep me"


def test_mapped_xattr_keeps_guest_owner_and_mode_in_xattrs(make_share):
    s = make_share("mapped-xattr")
    c = s.client
    user = c.attach(uid=1234)
    fid, _ = c.walk(user)
    c.lcreate(fid, b"f", O_RDWR | O_CREAT, 0o4751, gid=99)
    host = s.root / "f"
    assert stat.S_IMODE(host.stat().st_mode) == 0o600  # fmode: the host's own
    assert int.from_bytes(os.getxattr(host, "user.virtfs.uid"), "little") == 1234
    attr = c.getattr(fid)
    assert (attr["uid"], attr["gid"], attr["mode"]) == (1234, 99, stat.S_IFREG | 0o4751)
    c.setattr(fid, p.SETATTR_MODE | p.SETATTR_UID, mode=0o640, uid=77)
    attr = c.getattr(fid)
    assert (attr["uid"], stat.S_IMODE(attr["mode"])) == (77, 0o640)
    assert stat.S_IMODE(host.stat().st_mode) == 0o600
    # the mapping attributes are the server's: hidden, unreadable, unwritable
    assert b"user.virtfs" not in c.get_xattr(fid, b"")
    with pytest.raises(P9Error) as e:
        c.xattrwalk(fid, b"user.virtfs.uid")
    assert err(e) == errno.ENODATA
    with pytest.raises(P9Error) as e:
        c.set_xattr(fid, b"user.virtfs.uid", b"\0\0\0\0")
    assert err(e) == errno.EACCES
    # symlinks and device nodes are files only the guest sees as such
    c.symlink(user, b"ln", b"/etc/passwd")
    assert (s.root / "ln").read_bytes() == b"/etc/passwd"
    assert not os.path.islink(s.root / "ln")
    lfid, _ = c.walk(user, b"ln")
    assert c.readlink(lfid) == b"/etc/passwd"
    assert stat.S_ISLNK(c.getattr(lfid)["mode"])
    c.mknod(user, b"null", stat.S_IFCHR | 0o666, 1, 3)
    nfid, _ = c.walk(user, b"null")
    attr = c.getattr(nfid)
    assert stat.S_ISCHR(attr["mode"]) and attr["rdev"] == os.makedev(1, 3)
    assert stat.S_ISREG(os.lstat(s.root / "null").st_mode)
    c.mkdir(user, b"d", 0o755)
    dfid, _ = c.walk(user, b"d")
    assert c.getattr(dfid)["mode"] == stat.S_IFDIR | 0o755
    assert stat.S_IMODE((s.root / "d").stat().st_mode) == 0o700


def test_none_model_makes_no_device_nodes(make_share):
    s = make_share("none")
    with pytest.raises(P9Error) as e:
        s.client.mknod(s.rootfid, b"sda", stat.S_IFBLK | 0o600, 8, 0)
    assert err(e) == errno.EPERM
    assert not (s.root / "sda").exists()


def test_open_fids_are_bounded(share, monkeypatch):
    monkeypatch.setattr(server, "MAX_OPEN_FIDS", 3)
    (share.root / "f").write_text("x")
    c = share.client
    fids = [c.open_path(share.rootfid, b"f") for _ in range(2)]
    xfid, _ = c.xattrwalk(share.rootfid, b"")
    with pytest.raises(P9Error) as e:
        c.open_path(share.rootfid, b"f")
    assert err(e) == errno.EMFILE
    c.clunk(fids[0])
    c.clunk(c.open_path(share.rootfid, b"f"))
    c.clunk(xfid)
    assert share.server.open_fids == 1


def test_a_reply_that_cannot_fit_the_buffers_is_refused_not_cut(share):
    (share.root / "f").write_text("data")
    c = share.client
    fid = c.open_path(share.rootfid, b"f")
    reply = c.raw(p.TREAD, Encoder().u32(fid).u64(0).u32(100).buf, room=8)
    assert reply[4] == p.RLERROR  # no room even for Rread's header: an error, no crash
    c.symlink(share.rootfid, b"ln", b"x" * 200)
    lfid, _ = c.walk(share.rootfid, b"ln")
    reply = c.raw(p.TREADLINK, Encoder().u32(lfid).buf, room=64)
    assert int.from_bytes(reply[7:11], "little") == errno.ERANGE


def test_setattr_of_an_open_file_that_was_unlinked(share):
    c = share.client
    fid, _ = c.walk(share.rootfid)
    c.lcreate(fid, b"tmp", O_RDWR | O_CREAT, 0o600)
    c.write(fid, 0, b"0123456789")
    c.unlinkat(share.rootfid, b"tmp")
    c.setattr(fid, p.SETATTR_MODE | p.SETATTR_SIZE | p.SETATTR_MTIME | p.SETATTR_MTIME_SET,
              mode=0o640, size=4, mtime=(3000, 0))
    attr = c.getattr(fid)
    assert (stat.S_IMODE(attr["mode"]), attr["size"], attr["mtime"]) == (0o640, 4, 3000)
    assert c.read(fid, 0, 100) == b"0123"
