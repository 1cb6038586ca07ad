"""NVMe 1.4 numbers: controller registers, opcodes, status codes, the queue entries.

A command that fails raises ``NvmeError(status)``; the controller turns it into the
completion's status field.  ``status`` is (SCT << 8) | SC, as the spec tables list it.
"""

from __future__ import annotations

import struct

# -- controller registers (BAR0, spec 3.1) -------------------------------------------------
REG_CAP = 0x00
REG_VS = 0x08
REG_INTMS = 0x0C
REG_INTMC = 0x10
REG_CC = 0x14
REG_CSTS = 0x1C
REG_NSSR = 0x20
REG_AQA = 0x24
REG_ASQ = 0x28
REG_ACQ = 0x30
REGS_SIZE = 0x40
DOORBELLS = 0x1000

VERSION_1_4 = 0x00010400

CC_EN = 1
CSTS_RDY = 1
CSTS_CFS = 2
SHST_COMPLETE = 2 << 2

PAGE_SHIFT_MIN = 12  # CAP.MPSMIN = 0: 4 KiB
SQ_ENTRY = 64
CQ_ENTRY = 16
SQES_LOG2 = 6
CQES_LOG2 = 4

# -- opcodes -------------------------------------------------------------------------------
ADM_DELETE_SQ = 0x00
ADM_CREATE_SQ = 0x01
ADM_GET_LOG_PAGE = 0x02
ADM_DELETE_CQ = 0x04
ADM_CREATE_CQ = 0x05
ADM_IDENTIFY = 0x06
ADM_ABORT = 0x08
ADM_SET_FEATURES = 0x09
ADM_GET_FEATURES = 0x0A
ADM_ASYNC_EVENT = 0x0C

NVM_FLUSH = 0x00
NVM_WRITE = 0x01
NVM_READ = 0x02
NVM_WRITE_ZEROES = 0x08
NVM_DSM = 0x09

# Identify CNS values
CNS_NAMESPACE = 0x00
CNS_CONTROLLER = 0x01
CNS_ACTIVE_NS_LIST = 0x02
CNS_NS_DESCRIPTORS = 0x03
CNS_CSI_CONTROLLER = 0x06  # I/O command set specific Identify Controller
CSI_NVM = 0

# Features
FEAT_ARBITRATION = 0x01
FEAT_POWER_MGMT = 0x02
FEAT_TEMP_THRESHOLD = 0x04
FEAT_ERROR_RECOVERY = 0x05
FEAT_VOLATILE_WC = 0x06
FEAT_NUM_QUEUES = 0x07
FEAT_IRQ_COALESCING = 0x08
FEAT_IRQ_CONFIG = 0x09
FEAT_WRITE_ATOMICITY = 0x0A
FEAT_ASYNC_EVENT = 0x0B

# Log pages
LOG_ERROR = 0x01
LOG_SMART = 0x02
LOG_FW_SLOT = 0x03

BROADCAST_NSID = 0xFFFFFFFF

# -- status (SCT << 8 | SC) -----------------------------------------------------------------
SUCCESS = 0x000
INVALID_OPCODE = 0x001
INVALID_FIELD = 0x002
DATA_TRANSFER_ERROR = 0x004
INTERNAL_ERROR = 0x006
INVALID_NAMESPACE = 0x00B
PRP_OFFSET_INVALID = 0x013
NS_WRITE_PROTECTED = 0x020
LBA_OUT_OF_RANGE = 0x080
# command specific (SCT 1)
CQ_INVALID = 0x100
INVALID_QID = 0x101
INVALID_QUEUE_SIZE = 0x102
AER_LIMIT_EXCEEDED = 0x105
INVALID_VECTOR = 0x108
INVALID_LOG_PAGE = 0x109
INVALID_QUEUE_DELETION = 0x10C
FEATURE_NOT_SAVEABLE = 0x10D
# media errors (SCT 2)
WRITE_FAULT = 0x280
UNRECOVERED_READ = 0x281

STATUS_DNR = 1 << 14  # "do not retry", in the 15-bit status field


class NvmeError(Exception):
    """A command fails with ``status``; the guest sees it in the completion."""

    def __init__(self, status: int, why: str = "") -> None:
        super().__init__(why or f"status {status:#x}")
        self.status = status


# -- queue entries --------------------------------------------------------------------------
# opcode, flags (fuse, psdt), cid, nsid, reserved, mptr, prp1, prp2, cdw10..cdw15
SQE = struct.Struct("<BBHIQQQQ6I")
assert SQE.size == SQ_ENTRY
# dw0 (result), dw1, sq head, sq id; the last dword (cid, phase, status) goes separately
CQE_HEAD = struct.Struct("<IIHH")
CQE_TAIL = struct.Struct("<HH")


class Command:
    """One submission queue entry, decoded."""

    __slots__ = ("opcode", "flags", "cid", "nsid", "prp1", "prp2", "cdw")

    def __init__(self, raw: bytes) -> None:
        (self.opcode, self.flags, self.cid, self.nsid, _rsvd, _mptr, self.prp1,
         self.prp2, *cdw) = SQE.unpack(raw)
        self.cdw = cdw  # cdw[0] is CDW10 ... cdw[5] is CDW15

    @property
    def cdw10(self) -> int:
        return self.cdw[0]

    @property
    def cdw11(self) -> int:
        return self.cdw[1]

    @property
    def cdw12(self) -> int:
        return self.cdw[2]
