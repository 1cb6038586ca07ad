"""The admin command set (spec 5): queue management, Identify, features, log pages.

``AdminCommands.execute`` returns the completion's dword 0, or None when the command
stays outstanding (an Asynchronous Event Request: pemu raises no events, so it simply
waits until the controller is reset).  A bad command raises ``NvmeError``.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from pemu.hw.nvme import identify as ident
from pemu.hw.nvme import spec as S
from pemu.hw.nvme.prp import copy_to_guest, map_prps
from pemu.hw.nvme.queues import CompletionQueue, SubmissionQueue, ring_view
from pemu.hw.nvme.spec import Command, NvmeError
from pemu.memory.address_space import GuestMemoryError

if TYPE_CHECKING:
    from pemu.hw.nvme.controller import NvmeController

MAX_QUEUE_ENTRIES = 2048  # CAP.MQES + 1
LOG_PAGE_SIZE = 512
DEFAULT_FEATURES = {
    S.FEAT_ARBITRATION: 0, S.FEAT_POWER_MGMT: 0, S.FEAT_TEMP_THRESHOLD: 0x157,
    S.FEAT_ERROR_RECOVERY: 0, S.FEAT_VOLATILE_WC: 1, S.FEAT_IRQ_COALESCING: 0,
    S.FEAT_IRQ_CONFIG: 0, S.FEAT_WRITE_ATOMICITY: 0, S.FEAT_ASYNC_EVENT: 0,
}


class AdminCommands:
    def __init__(self, ctrl: NvmeController) -> None:
        self.ctrl = ctrl
        self.features = dict(DEFAULT_FEATURES)
        self.pending_events: list[tuple[SubmissionQueue, int]] = []
        self._handlers = {
            S.ADM_DELETE_SQ: self.delete_sq, S.ADM_CREATE_SQ: self.create_sq,
            S.ADM_GET_LOG_PAGE: self.get_log_page, S.ADM_DELETE_CQ: self.delete_cq,
            S.ADM_CREATE_CQ: self.create_cq, S.ADM_IDENTIFY: self.identify,
            S.ADM_ABORT: self.abort, S.ADM_SET_FEATURES: self.set_features,
            S.ADM_GET_FEATURES: self.get_features,
        }

    def reset(self) -> None:
        self.features = dict(DEFAULT_FEATURES)
        self.pending_events.clear()

    def execute(self, sq: SubmissionQueue, cmd: Command) -> int | None:
        if cmd.opcode == S.ADM_ASYNC_EVENT:
            if len(self.pending_events) > ident.AER_LIMIT:
                raise NvmeError(S.AER_LIMIT_EXCEEDED)
            self.pending_events.append((sq, cmd.cid))
            return None
        handler = self._handlers.get(cmd.opcode)
        if handler is None:
            raise NvmeError(S.INVALID_OPCODE, f"admin opcode {cmd.opcode:#x}")
        return handler(cmd)

    # -- data out to the host ---------------------------------------------------------------
    def _send(self, cmd: Command, data: bytes) -> None:
        ctrl = self.ctrl
        copy_to_guest(map_prps(ctrl.space, cmd.prp1, cmd.prp2, len(data), ctrl.page_size),
                      data)

    # -- queues -------------------------------------------------------------------------------
    def _queue_args(self, cmd: Command, existing: dict) -> tuple[int, int]:
        qid, size = cmd.cdw10 & 0xFFFF, (cmd.cdw10 >> 16) + 1
        if not 1 <= qid <= self.ctrl.max_ioqpairs or qid in existing:
            raise NvmeError(S.INVALID_QID, f"queue id {qid}")
        if not 2 <= size <= MAX_QUEUE_ENTRIES:
            raise NvmeError(S.INVALID_QUEUE_SIZE, f"queue size {size}")
        if not cmd.cdw11 & 1:  # CAP.CQR: only physically contiguous queues
            raise NvmeError(S.INVALID_FIELD, "queue not physically contiguous")
        if cmd.prp1 & (self.ctrl.page_size - 1):
            raise NvmeError(S.PRP_OFFSET_INVALID, "queue base not page aligned")
        return qid, size

    def _ring(self, base: int, size: int, entry: int) -> memoryview:
        try:
            return ring_view(self.ctrl.space, base, size, entry)
        except GuestMemoryError:
            raise NvmeError(S.DATA_TRANSFER_ERROR, "queue outside RAM") from None

    def create_cq(self, cmd: Command) -> int:
        ctrl = self.ctrl
        qid, size = self._queue_args(cmd, ctrl.cqs)
        vector = cmd.cdw11 >> 16
        if vector >= ctrl.msix_vectors:
            raise NvmeError(S.INVALID_VECTOR, f"interrupt vector {vector}")
        ring = self._ring(cmd.prp1, size, S.CQ_ENTRY)
        ctrl.cqs[qid] = CompletionQueue(qid, ring, size, vector, bool(cmd.cdw11 & 2),
                                       cmd.prp1)
        return 0

    def create_sq(self, cmd: Command) -> int:
        ctrl = self.ctrl
        cqid = cmd.cdw11 >> 16
        if cqid == 0 or cqid not in ctrl.cqs:
            raise NvmeError(S.CQ_INVALID, f"completion queue {cqid}")
        qid, size = self._queue_args(cmd, ctrl.sqs)
        ring = self._ring(cmd.prp1, size, S.SQ_ENTRY)
        ctrl.sqs[qid] = SubmissionQueue(qid, ring, size, cqid, cmd.prp1)
        ctrl.cqs[cqid].sq_count += 1
        return 0

    def delete_sq(self, cmd: Command) -> int:
        qid = cmd.cdw10 & 0xFFFF
        sq = self.ctrl.sqs.get(qid) if qid else None
        if sq is None:
            raise NvmeError(S.INVALID_QID, f"queue id {qid}")
        del self.ctrl.sqs[qid]  # its commands still in flight complete nowhere
        self.ctrl.cqs[sq.cqid].sq_count -= 1
        return 0

    def delete_cq(self, cmd: Command) -> int:
        qid = cmd.cdw10 & 0xFFFF
        cq = self.ctrl.cqs.get(qid) if qid else None
        if cq is None:
            raise NvmeError(S.INVALID_QID, f"queue id {qid}")
        if cq.sq_count:
            raise NvmeError(S.INVALID_QUEUE_DELETION, "submission queues still use it")
        del self.ctrl.cqs[qid]
        self.ctrl.update_intx()
        return 0

    # -- identify, log pages, features -----------------------------------------------------------
    def identify(self, cmd: Command) -> int:
        ctrl = self.ctrl
        cns, nsid = cmd.cdw10 & 0xFF, cmd.nsid
        if cns == S.CNS_CONTROLLER:
            data = ctrl.identify_data()
        elif cns == S.CNS_NAMESPACE:
            if nsid == 0 or (nsid > ident.MAX_NAMESPACES and nsid != S.BROADCAST_NSID):
                raise NvmeError(S.INVALID_NAMESPACE, f"nsid {nsid}")
            data = ident.identify_namespace(ctrl.namespaces.get(nsid))
        elif cns == S.CNS_ACTIVE_NS_LIST:
            if nsid >= 0xFFFFFFFE:
                raise NvmeError(S.INVALID_NAMESPACE, f"nsid {nsid}")
            data = ident.active_namespace_list(list(ctrl.namespaces), nsid)
        elif cns == S.CNS_NS_DESCRIPTORS:
            if nsid not in ctrl.namespaces:
                raise NvmeError(S.INVALID_NAMESPACE, f"nsid {nsid}")
            data = ident.namespace_descriptors(ctrl.serial, nsid)
        elif cns == S.CNS_CSI_CONTROLLER and cmd.cdw11 >> 24 == S.CSI_NVM:
            data = bytes(ident.IDENTIFY_SIZE)  # NVM: no write zeroes / DSM size limits
        else:
            raise NvmeError(S.INVALID_FIELD, f"identify CNS {cns}")
        self._send(cmd, data)
        return 0

    def get_log_page(self, cmd: Command) -> int:
        lid = cmd.cdw10 & 0xFF
        length = (((cmd.cdw11 & 0xFFFF) << 16 | cmd.cdw10 >> 16) + 1) * 4
        offset = cmd.cdw12 | cmd.cdw[3] << 32
        page = bytearray(LOG_PAGE_SIZE)
        if lid == S.LOG_SMART:
            struct.pack_into("<H", page, 1, 0x0143)  # composite temperature, 323 K
            page[3] = 100  # available spare (%)
            page[4] = 10  # spare threshold (%)
        elif lid == S.LOG_FW_SLOT:
            page[0] = 1  # active firmware: slot 1
            page[8:16] = ident._text("1.0", 8)
        elif lid != S.LOG_ERROR:
            raise NvmeError(S.INVALID_LOG_PAGE, f"log page {lid:#x}")
        if offset & 3 or offset >= LOG_PAGE_SIZE:
            raise NvmeError(S.INVALID_FIELD, f"log page offset {offset}")
        self._send(cmd, bytes(page[offset:offset + length]).ljust(length, b"\0"))
        return 0

    def abort(self, cmd: Command) -> int:
        return 1  # bit 0: the command was not aborted (it may already have completed)

    def _queue_counts(self) -> int:
        n = self.ctrl.max_ioqpairs - 1
        return n | n << 16

    def set_features(self, cmd: Command) -> int:
        fid = cmd.cdw10 & 0xFF
        if cmd.cdw10 >> 31:
            raise NvmeError(S.FEATURE_NOT_SAVEABLE)
        if fid == S.FEAT_NUM_QUEUES:
            if cmd.cdw11 & 0xFFFF == 0xFFFF or cmd.cdw11 >> 16 == 0xFFFF:
                raise NvmeError(S.INVALID_FIELD, "number of queues")
            return self._queue_counts()
        if fid not in self.features:
            raise NvmeError(S.INVALID_FIELD, f"feature {fid:#x}")
        self.features[fid] = cmd.cdw11
        return 0

    def get_features(self, cmd: Command) -> int:
        fid = cmd.cdw10 & 0xFF
        if fid == S.FEAT_NUM_QUEUES:
            return self._queue_counts()
        if fid not in self.features:
            raise NvmeError(S.INVALID_FIELD, f"feature {fid:#x}")
        if (cmd.cdw10 >> 8) & 7 == 3:  # SEL=supported capabilities: changeable only
            return 1 << 2
        return self.features[fid]
