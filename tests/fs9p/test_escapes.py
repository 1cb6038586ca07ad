"""The guest never reaches a host file outside the share: ``..``, symlinks pointing out,
names with '/', and a directory swapped for a symlink between the walk and the use.

Each test runs with openat2 and with the component walk (the ``share`` fixture)."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from pemu.fs9p import protocol as p
from pemu.fs9p.beneath import open_beneath
from pemu.fs9p.protocol import P9Error
from tests.fs9p.client9p import O_CREAT, O_RDONLY, O_RDWR, O_WRONLY

SECRET = b"host secret\n"


def untouched(share) -> bool:
    return (sorted(os.listdir(share.outside)) == ["secret"]
            and (share.outside / "secret").read_bytes() == SECRET)


def test_dotdot_at_the_root_stays_at_the_root(share):
    c = share.client
    root_ino = os.stat(share.root).st_ino
    fid, qids = c.walk(share.rootfid, b"..", b"..", b"..")
    assert [q.path for q in qids] == [root_ino] * 3
    assert sorted(c.readdir(c.open_path(fid))) == [b".", b".."]
    # from the root's "parent" there is no 'outside': the walk never left the share
    newfid, qids = c.walk(share.rootfid, b"..", b"outside", b"secret")
    assert [q.path for q in qids] == [root_ino]
    with pytest.raises(P9Error):
        c.getattr(newfid)
    fid, _ = c.walk(share.rootfid, b"..")
    with pytest.raises(P9Error) as e:
        c.walk(fid, b"outside")
    assert e.value.errno == errno.ENOENT


def test_dotdot_below_the_root_goes_up_one(share):
    (share.root / "a" / "b").mkdir(parents=True)
    c = share.client
    fid, qids = c.walk(share.rootfid, b"a", b"b", b"..", b"..", b"..")
    assert qids[-1].path == os.stat(share.root).st_ino


@pytest.mark.parametrize("name", [b"../outside", b"/etc", b"a/b", b"x\0y", b""])
def test_names_that_are_paths_are_refused(share, name):
    c = share.client
    with pytest.raises(P9Error):
        c.walk(share.rootfid, name)
    fid, _ = c.walk(share.rootfid)
    for attempt in (lambda: c.lcreate(fid, name, O_RDWR | O_CREAT),
                    lambda: c.mkdir(share.rootfid, name),
                    lambda: c.symlink(share.rootfid, name, b"x"),
                    lambda: c.renameat(share.rootfid, b"nothing", share.rootfid, name)):
        with pytest.raises(P9Error):
            attempt()
    assert untouched(share)


@pytest.mark.parametrize("target", ["ABS_DIR", "../outside", "/etc"])
def test_a_symlink_to_a_directory_outside_is_never_walked_through(share, target):
    link = str(share.outside) if target == "ABS_DIR" else target
    os.symlink(link, share.root / "out")
    c = share.client
    newfid, qids = c.walk(share.rootfid, b"out", b"secret")
    assert len(qids) == 1 and qids[0].type == p.QTSYMLINK  # partial: stopped at the link
    with pytest.raises(P9Error):
        c.getattr(newfid)  # and no fid was made
    fid, _ = c.walk(share.rootfid, b"out")
    assert c.readlink(fid) == link.encode()  # the guest resolves it, in its own tree
    attr = c.getattr(fid)
    assert stat.S_ISLNK(attr["mode"]) and attr["size"] == len(link)
    with pytest.raises(P9Error):
        c.lopen(fid, O_RDONLY)
    # nothing is made or removed through it either
    for attempt in (lambda: c.lcreate(c.walk(share.rootfid, b"out")[0], b"planted",
                                      O_RDWR | O_CREAT),
                    lambda: c.mkdir(fid, b"planted"),
                    lambda: c.symlink(fid, b"planted", b"x"),
                    lambda: c.mknod(fid, b"planted", stat.S_IFIFO | 0o600),
                    lambda: c.unlinkat(fid, b"secret"),
                    lambda: c.renameat(fid, b"secret", share.rootfid, b"stolen"),
                    lambda: c.link(fid, share.rootfid, b"planted")):
        with pytest.raises(P9Error):
            attempt()
    assert untouched(share)
    assert sorted(os.listdir(share.root)) == ["out"]


@pytest.mark.parametrize("target", ["/etc/passwd", "../outside/secret", "ABS_FILE"])
def test_a_symlink_to_a_file_outside_is_never_opened(share, target):
    link = str(share.outside / "secret") if target == "ABS_FILE" else target
    os.symlink(link, share.root / "link")
    c = share.client
    fid, _ = c.walk(share.rootfid, b"link")
    for flags in (O_RDONLY, O_WRONLY, O_RDWR):
        with pytest.raises(P9Error) as e:
            c.lopen(fid, flags)
        assert e.value.errno == errno.ELOOP
    for valid, kw in ((p.SETATTR_SIZE, {"size": 0}), (p.SETATTR_MODE, {"mode": 0o777})):
        with pytest.raises(P9Error):
            c.setattr(fid, valid, **kw)
    with pytest.raises(P9Error):
        c.set_xattr(fid, b"user.planted", b"1")
    assert c.readlink(fid) == link.encode()
    assert untouched(share)
    assert stat.S_IMODE(os.stat("/etc/passwd").st_mode) != 0o777


def test_a_directory_swapped_for_a_symlink_after_the_walk(share):
    """The fid was walked while 'd' was a real directory; then someone on the host puts a
    symlink to the outside in its place.  Every use resolves again, beneath the root,
    without following symlinks: it fails, and the outside file is untouched."""
    (share.root / "d").mkdir()
    (share.root / "d" / "secret").write_text("inside\n")
    c = share.client
    dfid, _ = c.walk(share.rootfid, b"d")
    fid, _ = c.walk(share.rootfid, b"d", b"secret")
    (share.root / "d" / "secret").unlink()
    (share.root / "d").rmdir()
    os.symlink(share.outside, share.root / "d")
    for attempt in (lambda: c.lopen(fid, O_RDONLY), lambda: c.lopen(fid, O_WRONLY),
                    lambda: c.getattr(fid),
                    lambda: c.setattr(fid, p.SETATTR_SIZE, size=0),
                    lambda: c.setattr(fid, p.SETATTR_MODE, mode=0o777),
                    lambda: c.get_xattr(fid, b""),
                    lambda: c.readlink(fid),
                    lambda: c.unlinkat(dfid, b"secret"),
                    lambda: c.lcreate(c.walk(dfid)[0], b"planted", O_RDWR | O_CREAT),
                    lambda: c.mkdir(dfid, b"planted"),
                    lambda: c.link(share.rootfid, fid, b"stolen"),
                    lambda: c.renameat(dfid, b"secret", share.rootfid, b"stolen")):
        with pytest.raises(P9Error):
            attempt()
    assert untouched(share)
    assert stat.S_IMODE((share.outside / "secret").stat().st_mode) != 0o777


def test_a_directory_swapped_for_a_symlink_during_the_walk(share, monkeypatch):
    (share.root / "d").mkdir()
    fs = share.fs
    real_getattr = fs.getattr
    calls = []

    def swap_after_first_step(parts, fd=None):
        attr = real_getattr(parts, fd)
        if parts == (b"d",) and not calls:
            calls.append(parts)
            (share.root / "d").rmdir()
            os.symlink(share.outside, share.root / "d")
        return attr
    monkeypatch.setattr(fs, "getattr", swap_after_first_step)
    c = share.client
    newfid, qids = c.walk(share.rootfid, b"d", b"secret")
    assert calls and len(qids) == 1  # the step into the swapped 'd' failed
    with pytest.raises(P9Error):
        c.getattr(newfid)
    assert untouched(share)


def test_open_beneath_never_follows_a_symlink_on_the_way(share):
    os.symlink(share.outside, share.root / "out")
    for parts in ((b"out", b"secret"), (b"out",)):
        with pytest.raises(P9Error) as e:
            os.close(open_beneath(share.fs.root_fd, parts, os.O_RDONLY))
        assert e.value.errno in (errno.ELOOP, errno.ENOTDIR, errno.EXDEV)


def test_mapped_share_reads_host_symlinks_but_never_follows_them(make_share):
    s = make_share("mapped-xattr")
    os.symlink("/etc/passwd", s.root / "link-to-etc-passwd")
    c = s.client
    fid, _ = c.walk(s.rootfid, b"link-to-etc-passwd")
    assert c.readlink(fid) == b"/etc/passwd"
    with pytest.raises(P9Error):
        c.lopen(fid, O_RDONLY)
