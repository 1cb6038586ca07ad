"""The one error every refused state becomes: it names the device and, when one is to
blame, the field."""

from __future__ import annotations


class MigrationError(Exception):
    """A state that cannot be saved or loaded; the message is for the user."""

    def __init__(self, device: str, why: str, field: str | None = None) -> None:
        where = f"{device}: {field}" if field else device
        super().__init__(f"migration: {where}: {why}")
        self.device = device
        self.field = field
        self.why = why
