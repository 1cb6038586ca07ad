"""A 9p share in the real Debian guest (issue 21, part 5): the guest mounts the host
directory work/9p-share (``-virtfs ...,mount_tag=hostshare,security_model=mapped-xattr``
on virtio-9p-pci, see conftest.py), reads and writes files the host sees, and every
escape it tries (symlinks out of the share, ``..``) fails in the guest and touches
nothing outside the share."""

from __future__ import annotations

import hashlib
import os
import secrets

import pytest

pytestmark = pytest.mark.slow

MNT = "/mnt/9p"


@pytest.fixture(scope="module")
def share(services_guest):
    g = services_guest
    # markers are computed by the guest ($((...))) so that the console's echo of the
    # command line, which the shell may repeat, can never satisfy a check
    out = g.console.run(f"mkdir -p {MNT} && mount -t 9p -o trans=virtio,version=9p2000.L "
                        f"hostshare {MNT} && echo MOUNTED-$((40+2))", "END-9P-MOUNT")
    assert "MOUNTED-42" in out, out
    yield g
    g.console.run(f"cd / ; umount {MNT}", "END-9P-UMOUNT")


def run(g, command: str, timeout: float = 300) -> str:
    """What ``command`` printed in the guest (the console's echo of it left out)."""
    out = g.console.run(command, f"END-9P-{secrets.token_hex(4)}", timeout)
    return out.split("\n", 1)[1] if "\n" in out else ""


def test_guest_reads_a_host_file(share):
    token = secrets.token_hex(8)
    (share.work / "9p-share" / "from-host.txt").write_text(f"host says {token}\n")
    assert f"host says {token}" in run(share, f"cat {MNT}/from-host.txt")


def test_host_sees_what_the_guest_writes(share):
    token = secrets.token_hex(8)
    run(share, f"echo guest wrote {token} > {MNT}/from-guest.txt && sync")
    assert (share.work / "9p-share" / "from-guest.txt").read_text() == f"guest wrote {token}\n"


def test_big_files_both_ways(share):
    data = os.urandom(200_000)
    (share.work / "9p-share" / "host-big").write_bytes(data)
    out = run(share, f"sha256sum {MNT}/host-big; head -c 300000 /dev/urandom > "
                     f"{MNT}/guest-big; sha256sum {MNT}/guest-big")
    assert hashlib.sha256(data).hexdigest() in out
    guest_big = (share.work / "9p-share" / "guest-big").read_bytes()
    assert len(guest_big) == 300_000 and hashlib.sha256(guest_big).hexdigest() in out


def test_mkdir_rename_remove(share):
    host = share.work / "9p-share"
    run(share, f"mkdir {MNT}/dir && echo x > {MNT}/dir/a && mv {MNT}/dir/a {MNT}/dir/b")
    assert (host / "dir").is_dir() and (host / "dir" / "b").read_text() == "x\n"
    assert not (host / "dir" / "a").exists()
    out = run(share, f"ls -ld {MNT}/dir; rm {MNT}/dir/b && rmdir {MNT}/dir && "
                     "echo GONE-$((2+3))")
    assert "drwx" in out and "GONE-5" in out  # the guest's own mode, from the xattrs
    assert not (host / "dir").exists()


def test_escapes_fail_in_the_guest_and_touch_nothing_outside(share):
    host, outside = share.work / "9p-share", share.work / "9p-outside"
    token = secrets.token_hex(8)
    (outside / "secret").write_text(f"host secret {token}\n")
    os.symlink("/etc/passwd", host / "link-to-etc-passwd")
    os.symlink(outside / "secret", host / "link-to-secret")
    os.symlink("../9p-outside", host / "up")
    passwd_before = os.stat("/etc/passwd").st_mtime_ns
    # the guest resolves a symlink in its own tree: its own /etc/passwd, never the host's
    out = run(share, f"cmp /etc/passwd {MNT}/link-to-etc-passwd && echo SAME-$((6*7)); "
                     f"sha256sum {MNT}/link-to-etc-passwd")
    with open("/etc/passwd", "rb") as f:
        host_passwd = hashlib.sha256(f.read()).hexdigest()
    assert "SAME-42" in out and host_passwd not in out, out
    out = run(share, f"cat {MNT}/link-to-secret; echo rc=$?; cat {MNT}/up/secret; "
                     f"echo rc=$?; cd {MNT} && cat ../../../../9p-outside/secret; echo rc=$?; "
                     "cd /")
    assert token not in out and "rc=0" not in out, out
    out = run(share, f"echo planted > {MNT}/link-to-secret; echo rc=$?; "
                     f"echo planted > {MNT}/up/planted; echo rc=$?; "
                     f"ls {MNT}/.. | tr a-z A-Z; echo rc=$?")
    assert out.count("rc=0") == 1 and "9P" in out, out  # only the ls of the guest's /mnt
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_text() == f"host secret {token}\n"
    assert os.stat("/etc/passwd").st_mtime_ns == passwd_before
