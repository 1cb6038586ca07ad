"""``-runas USER`` and ``-chroot DIR``: giving up root once devices, files and sockets are
open, so that a compromised emulator holds no more than it already opened.

Dropping is setgroups (only the target group), setgid, setuid -- in that order, since
after setuid the others are no longer permitted -- then a check that root cannot be
taken back.  glibc applies set*id to every thread of the process.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass


class PrivilegeError(Exception):
    """A message for the user, in QEMU's words where QEMU has them."""


@dataclass(frozen=True)
class RunAs:
    uid: int
    gid: int
    name: str


def resolve_user(spec: str) -> RunAs:
    """A user name, or ``UID:GID`` as QEMU also accepts."""
    uid_text, sep, gid_text = spec.partition(":")
    if sep and uid_text.isdigit() and gid_text.isdigit():
        return RunAs(int(uid_text), int(gid_text), spec)
    try:
        entry = pwd.getpwnam(spec)
    except KeyError:
        raise PrivilegeError(f'User "{spec}" doesn\'t exist') from None
    return RunAs(entry.pw_uid, entry.pw_gid, spec)


def enter_chroot(directory: str) -> None:
    try:
        os.chroot(directory)
    except OSError as e:
        raise PrivilegeError(f"chroot failed: {e.strerror}") from None
    try:
        os.chdir("/")
    except OSError:
        raise PrivilegeError("not able to chdir to /") from None


def drop_privileges(user: RunAs) -> None:
    try:
        os.setgroups([user.gid])
    except OSError as e:
        raise PrivilegeError(f"Failed to setgroups(1, [{user.gid}]): {e.strerror}") from None
    try:
        os.setgid(user.gid)
    except OSError as e:
        raise PrivilegeError(f"Failed to setgid({user.gid}): {e.strerror}") from None
    try:
        os.setuid(user.uid)
    except OSError as e:
        raise PrivilegeError(f"Failed to setuid({user.uid}): {e.strerror}") from None
    if user.uid != 0:
        try:
            os.setuid(0)
        except OSError:
            return  # as it must be
        raise PrivilegeError("Failed to drop privileges: root could be regained")
