"""SCSI status bytes and fixed-format sense data (SPC-4 4.5.3).

A command that fails raises ``SenseError(key, asc, ascq)``; the target turns it into
CHECK CONDITION with these 18 bytes of sense, which a transport hands to the initiator
(virtio-scsi: in the response, "autosense"; ATAPI: through REQUEST SENSE).
"""

from __future__ import annotations

GOOD = 0x00
CHECK_CONDITION = 0x02

NO_SENSE = 0x0
NOT_READY = 0x2
MEDIUM_ERROR = 0x3
HARDWARE_ERROR = 0x4
ILLEGAL_REQUEST = 0x5
UNIT_ATTENTION = 0x6
DATA_PROTECT = 0x7
ABORTED_COMMAND = 0xB

FIXED_SENSE_LEN = 18


SENSE_MAX_LENGTH = 252  # the longest sense data (fixed format: 8 + additional length)

class SenseError(Exception):
    """A command failed with sense key / additional sense code / qualifier."""

    def __init__(self, key: int, asc: int, ascq: int = 0, why: str = "") -> None:
        super().__init__(why or f"sense {key:x}/{asc:02x}/{ascq:02x}")
        self.key, self.asc, self.ascq = key, asc, ascq

    def sense(self) -> bytes:
        return fixed_sense(self.key, self.asc, self.ascq)


def fixed_sense(key: int, asc: int, ascq: int) -> bytes:
    b = bytearray(FIXED_SENSE_LEN)
    b[0] = 0x70  # current error, fixed format
    b[2] = key & 0xF
    b[7] = FIXED_SENSE_LEN - 8  # additional sense length
    b[12], b[13] = asc, ascq
    return bytes(b)


# the conditions the targets report
def invalid_opcode() -> SenseError:
    return SenseError(ILLEGAL_REQUEST, 0x20, 0x00, "invalid command operation code")


def invalid_field() -> SenseError:
    return SenseError(ILLEGAL_REQUEST, 0x24, 0x00, "invalid field in CDB")


def lba_out_of_range() -> SenseError:
    return SenseError(ILLEGAL_REQUEST, 0x21, 0x00, "LBA out of range")


def parameter_list_error() -> SenseError:
    return SenseError(ILLEGAL_REQUEST, 0x1A, 0x00, "parameter list length error")


def write_protected() -> SenseError:
    return SenseError(DATA_PROTECT, 0x27, 0x00, "write protected")


def lun_not_supported() -> SenseError:
    return SenseError(ILLEGAL_REQUEST, 0x25, 0x00, "logical unit not supported")


def read_error() -> SenseError:
    return SenseError(MEDIUM_ERROR, 0x11, 0x00, "unrecovered read error")


def write_error() -> SenseError:
    return SenseError(MEDIUM_ERROR, 0x0C, 0x00, "write error")
