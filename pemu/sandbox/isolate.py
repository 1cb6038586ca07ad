"""The one call a board's CLI makes after setup and before the guest runs:
``-chroot``, then ``-runas``, then ``-sandbox`` (last, so that the filter may deny the
set*id calls that dropping privileges needs)."""

from __future__ import annotations

from pemu.qemuopts.config import SystemConfig
from pemu.sandbox.policy import SandboxError, apply_sandbox, parse_sandbox
from pemu.sandbox.privileges import PrivilegeError, drop_privileges, enter_chroot, resolve_user


class IsolationError(Exception):
    pass


def isolate(cfg: SystemConfig) -> None:
    try:
        user = resolve_user(cfg.runas) if cfg.runas else None  # before chroot: /etc/passwd
        if cfg.chroot:
            enter_chroot(cfg.chroot)
        if user is not None:
            drop_privileges(user)
        policy = parse_sandbox(cfg.sandbox) if cfg.sandbox else None
        if policy is not None:
            apply_sandbox(policy)
    except (PrivilegeError, SandboxError) as e:
        raise IsolationError(str(e)) from None
