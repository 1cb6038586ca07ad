"""Isolation applied once setup is done: ``-chroot``, ``-runas`` and the seccomp
``-sandbox`` (see docs/SECURITY.md for what each denies and what keeps working)."""
