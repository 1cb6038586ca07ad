"""The virtio-balloon statistics (spec 5.5.6.3) as QEMU's ``guest-stats`` property
shows them.

The driver sends an array of packed ``{le16 tag; le64 val}`` entries; a tag pemu does
not know is skipped.  A statistic the guest never reported reads as 2**64 - 1, as
QEMU's (its values are uint64 and start at -1).
"""

from __future__ import annotations

import struct
import time

_ENTRY = struct.Struct("<HQ")
UNSET = (1 << 64) - 1
MAX_ENTRIES = 64  # more than the spec defines; a longer buffer is read this far only

# tag -> QEMU's name for it
STAT_NAMES = (
    "stat-swap-in", "stat-swap-out", "stat-major-faults", "stat-minor-faults",
    "stat-free-memory", "stat-total-memory", "stat-available-memory", "stat-disk-caches",
    "stat-htlb-pgalloc", "stat-htlb-pgfail", "stat-oom-kills", "stat-alloc-stalls",
    "stat-async-scans", "stat-direct-scans", "stat-async-reclaims", "stat-direct-reclaims",
)


class BalloonStats:
    """The last statistics the guest sent, and when."""

    def __init__(self) -> None:
        self.values = [UNSET] * len(STAT_NAMES)
        self.last_update = 0  # host time (seconds) of the last buffer; 0: never

    def update(self, raw: bytes) -> None:
        for n in range(min(len(raw) // _ENTRY.size, MAX_ENTRIES)):
            tag, value = _ENTRY.unpack_from(raw, n * _ENTRY.size)
            if tag < len(self.values):
                self.values[tag] = value
        self.last_update = int(time.time())

    def reset(self) -> None:
        self.values = [UNSET] * len(STAT_NAMES)
        self.last_update = 0

    def as_qom(self) -> dict[str, object]:
        """QEMU's ``guest-stats``: ``{"stats": {name: value}, "last-update": secs}``."""
        return {"stats": dict(zip(STAT_NAMES, self.values, strict=True)),
                "last-update": self.last_update}
