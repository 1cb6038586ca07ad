"""Errors of the KVM accelerator, each with a message a user can act on."""

from __future__ import annotations


class KVMError(Exception):
    """A KVM ioctl failed, or KVM lacks something pemu needs."""


class KVMUnavailable(KVMError):
    """/dev/kvm cannot be used at all: missing, not permitted, or the wrong API."""


class GuestCannotRun(KVMError):
    """KVM stopped the guest for good: internal error, failed entry, unknown exit.

    ``rip`` and ``insn`` (the bytes at RIP, when they could be read) say where.
    """

    def __init__(self, message: str, rip: int | None = None, insn: bytes = b"") -> None:
        super().__init__(message)
        self.rip = rip
        self.insn = insn
