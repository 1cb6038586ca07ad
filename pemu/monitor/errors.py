"""QMP's error classes: what a client can match on besides the human-readable text."""

from __future__ import annotations

GENERIC = "GenericError"
COMMAND_NOT_FOUND = "CommandNotFound"
DEVICE_NOT_FOUND = "DeviceNotFound"
DEVICE_NOT_ACTIVE = "DeviceNotActive"
KVM_MISSING_CAP = "KVMMissingCap"

ERROR_CLASSES = (GENERIC, COMMAND_NOT_FOUND, DEVICE_NOT_FOUND, DEVICE_NOT_ACTIVE,
                 KVM_MISSING_CAP)


class QMPError(Exception):
    """Raised by a command handler; becomes ``{"error": {"class", "desc"}}``."""

    def __init__(self, desc: str, cls: str = GENERIC) -> None:
        super().__init__(desc)
        self.cls = cls
        self.desc = desc

    def to_wire(self) -> dict[str, str]:
        return {"class": self.cls, "desc": self.desc}
