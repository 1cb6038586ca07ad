"""The one call a board's CLI makes after setup and before the guest runs:
``-chroot``, then ``-runas``, then ``-sandbox`` (last, so that the filter may deny the
set*id calls that dropping privileges needs)."""

from __future__ import annotations

from pemu.qemuopts.config import SystemConfig
from pemu.sandbox.policy import PreparedSandbox, SandboxError, parse_sandbox
from pemu.sandbox.privileges import PrivilegeError, drop_privileges, enter_chroot, resolve_user


class IsolationError(Exception):
    pass


def isolate(cfg: SystemConfig) -> None:
    try:
        # looked up before the chroot hides /etc/passwd and libseccomp.so
        user = resolve_user(cfg.runas) if cfg.runas else None
        policy = parse_sandbox(cfg.sandbox) if cfg.sandbox else None
        sandbox = PreparedSandbox(policy) if policy is not None else None
        if cfg.chroot:
            enter_chroot(cfg.chroot)
        if user is not None:
            drop_privileges(user)
        if sandbox is not None:
            sandbox.install()
    except (PrivilegeError, SandboxError) as e:
        raise IsolationError(str(e)) from None
