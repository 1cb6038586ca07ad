"""The NVMe controller's migratable state, declared as VMState fields (``NVME_FIELDS``)
over views of its queue tables, and the rebuild of the queues on load.

Queues are arrays indexed by queue id (length max_ioqpairs + 1, so a controller with
another queue count refuses the state); size 0 marks a queue id not in use.  A queue
travels as what the host programmed (base, size, its CQ or vector) plus the indices
the controller keeps (head, tail, phase); its ring view is rebuilt from the base on
load.  Completions that wait for room in a full CQ and the outstanding Asynchronous
Event Requests are byte strings of fixed-size records.  In-flight I/O is drained
before saving (the board's migration_pre_save), so nothing else is outstanding.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING, cast

from pemu.hw.core import VMStateField, VMStateInvalid
from pemu.hw.nvme import identify as ident
from pemu.hw.nvme import spec as S
from pemu.hw.nvme.admin import DEFAULT_FEATURES, MAX_QUEUE_ENTRIES
from pemu.hw.nvme.queues import CompletionQueue, SubmissionQueue, ring_view
from pemu.hw.pci.function_state import PCI_FUNCTION_FIELDS
from pemu.memory.address_space import GuestMemoryError

if TYPE_CHECKING:
    from pemu.hw.nvme.admin import AdminCommands
    from pemu.memory.address_space import AddressSpace

FEATURE_IDS = sorted(DEFAULT_FEATURES)
# a completion waiting for room: cqid, result, sq_head, sqid, cid, status
WAITING = struct.Struct("<HIHHHH")
MAX_WAITING = 65 * MAX_QUEUE_ENTRIES  # at most one per submission queue entry
AER = struct.Struct("<H")

# (view name, queue kind, attribute)
_SQ_VIEWS = (("sq_size", "size"), ("sq_base", "base"), ("sq_cqid", "cqid"),
             ("sq_head", "head"), ("sq_tail", "tail"))
_CQ_VIEWS = (("cq_size", "size"), ("cq_base", "base"), ("cq_vector", "vector"),
             ("cq_irq_enabled", "irq_enabled"), ("cq_head", "head"), ("cq_tail", "tail"),
             ("cq_phase", "phase"))

NVME_FIELDS = (
    *PCI_FUNCTION_FIELDS,
    VMStateField("cc", "u32"), VMStateField("csts", "u32"), VMStateField("intms", "u32"),
    VMStateField("aqa", "u32"), VMStateField("asq", "u64"), VMStateField("acq", "u64"),
    VMStateField("feature_values", "u32[]"),
    *(VMStateField(name, "u64[]" if attr == "base" else "u16[]") for name, attr in _SQ_VIEWS),
    *(VMStateField(name, {"base": "u64[]", "irq_enabled": "bool[]"}.get(attr, "u16[]"),
                   max=1 if attr == "phase" else None) for name, attr in _CQ_VIEWS),
    VMStateField("cq_waiting", "bytes", max=MAX_WAITING * WAITING.size),
    VMStateField("aer_cids", "bytes", max=(ident.AER_LIMIT + 1) * AER.size),
)


def _table_view(name: str, table: str, attr: str) -> property:
    """One attribute of every queue id's queue (0 where there is none); a load stages
    the list and ``rebuild_queues`` makes queues of all of them together."""

    def get(self: NvmeControllerState) -> list:
        if name in self._staged:
            return self._staged[name]
        queues = getattr(self, table)
        return [int(getattr(queues[q], attr)) if q in queues else 0
                for q in range(self.max_ioqpairs + 1)]

    def set(self: NvmeControllerState, values: list) -> None:
        self._staged[name] = list(values)

    return property(get, set)


class NvmeControllerState:
    """Mixed into ``NvmeController``: its views, checks and post-load."""

    # what NvmeController provides
    space: AddressSpace
    admin: AdminCommands
    max_ioqpairs: int
    msix_vectors: int
    sqs: dict[int, SubmissionQueue]
    cqs: dict[int, CompletionQueue]
    _staged: dict[str, list]

    sq_size = _table_view("sq_size", "sqs", "size")
    sq_base = _table_view("sq_base", "sqs", "base")
    sq_cqid = _table_view("sq_cqid", "sqs", "cqid")
    sq_head = _table_view("sq_head", "sqs", "head")
    sq_tail = _table_view("sq_tail", "sqs", "tail")
    cq_size = _table_view("cq_size", "cqs", "size")
    cq_base = _table_view("cq_base", "cqs", "base")
    cq_vector = _table_view("cq_vector", "cqs", "vector")
    cq_irq_enabled = _table_view("cq_irq_enabled", "cqs", "irq_enabled")
    cq_head = _table_view("cq_head", "cqs", "head")
    cq_tail = _table_view("cq_tail", "cqs", "tail")
    cq_phase = _table_view("cq_phase", "cqs", "phase")

    @property
    def feature_values(self) -> list[int]:
        return [self.admin.features[f] for f in FEATURE_IDS]

    @feature_values.setter
    def feature_values(self, values: list[int]) -> None:
        self.admin.features = dict(zip(FEATURE_IDS, values, strict=True))

    @property
    def cq_waiting(self) -> bytes:
        if "cq_waiting" in self._staged:
            return bytes(self._staged["cq_waiting"])
        return b"".join(WAITING.pack(q, *w) for q, cq in sorted(self.cqs.items())
                        for w in cq.waiting)

    @cq_waiting.setter
    def cq_waiting(self, value: bytes) -> None:
        self._staged["cq_waiting"] = list(value)

    @property
    def aer_cids(self) -> bytes:
        if "aer_cids" in self._staged:
            return bytes(self._staged["aer_cids"])
        return b"".join(AER.pack(cid) for _, cid in self.admin.pending_events)

    @aer_cids.setter
    def aer_cids(self, value: bytes) -> None:
        self._staged["aer_cids"] = list(value)

    # -- checks -------------------------------------------------------------------------
    def vmstate_check(self, state: Mapping[str, object]) -> None:
        super().vmstate_check(state)  # type: ignore[misc]  # PCIFunctionState's
        t = {name: cast(list, state[name]) for name, _ in (*_SQ_VIEWS, *_CQ_VIEWS)}
        for q in range(self.max_ioqpairs + 1):
            self._check_queue(q, t, "cq", S.CQ_ENTRY)
            if self._check_queue(q, t, "sq", S.SQ_ENTRY):
                cqid = t["sq_cqid"][q]
                if (cqid == 0) != (q == 0) or cqid > self.max_ioqpairs \
                        or not t["cq_size"][cqid]:
                    raise VMStateInvalid("sq_cqid", f"SQ {q} posts to CQ {cqid}, which "
                                         "does not exist")
            if t["cq_size"][q] and t["cq_vector"][q] >= self.msix_vectors:
                raise VMStateInvalid("cq_vector", f"CQ {q}: no vector {t['cq_vector'][q]}")
        waiting, aers = cast(bytes, state["cq_waiting"]), cast(bytes, state["aer_cids"])
        if len(waiting) % WAITING.size or len(aers) % AER.size:
            raise VMStateInvalid("cq_waiting", "not whole records")
        for cqid, *_ in WAITING.iter_unpack(waiting):
            if cqid > self.max_ioqpairs or not t["cq_size"][cqid]:
                raise VMStateInvalid("cq_waiting", f"a completion for CQ {cqid}, which "
                                     "does not exist")
        if aers and not t["sq_size"][0]:
            raise VMStateInvalid("aer_cids", "event requests without an admin queue")

    def _check_queue(self, q: int, t: Mapping[str, list], kind: str, entry: int) -> bool:
        """Could the host have created this queue (size, indices, ring in RAM)?"""
        size = t[f"{kind}_size"][q]
        if not size:
            return False
        if not 2 <= size <= MAX_QUEUE_ENTRIES:
            raise VMStateInvalid(f"{kind}_size", f"queue {q}: {size} entries")
        for index in ("head", "tail"):
            if t[f"{kind}_{index}"][q] >= size:
                raise VMStateInvalid(f"{kind}_{index}", f"queue {q}: outside the ring")
        try:
            ring_view(self.space, t[f"{kind}_base"][q], size, entry)
        except GuestMemoryError:
            raise VMStateInvalid(f"{kind}_base", f"queue {q}: ring outside RAM") from None
        return True

    # -- the rebuild ------------------------------------------------------------------------
    def rebuild_queues(self) -> None:
        """Queues from the staged lists (a load applies every field first)."""
        st, self._staged = self._staged, {}
        if not st:
            return
        space = self.space
        self.cqs, self.sqs = {}, {}
        for q in range(self.max_ioqpairs + 1):
            size = st["cq_size"][q]
            if size:
                cq = CompletionQueue(q, ring_view(space, st["cq_base"][q], size, S.CQ_ENTRY),
                                     size, st["cq_vector"][q], bool(st["cq_irq_enabled"][q]),
                                     st["cq_base"][q])
                cq.head, cq.tail, cq.phase = st["cq_head"][q], st["cq_tail"][q], st["cq_phase"][q]
                self.cqs[q] = cq
        for q in range(self.max_ioqpairs + 1):
            size = st["sq_size"][q]
            if size:
                sq = SubmissionQueue(q, ring_view(space, st["sq_base"][q], size, S.SQ_ENTRY),
                                     size, st["sq_cqid"][q], st["sq_base"][q])
                sq.head, sq.tail = st["sq_head"][q], st["sq_tail"][q]
                self.sqs[q] = sq
                self.cqs[sq.cqid].sq_count += 1
        for cqid, result, sq_head, sqid, cid, status in WAITING.iter_unpack(
                bytes(st["cq_waiting"])):
            self.cqs[cqid].waiting.append((result, sq_head, sqid, cid, status))
        self.admin.pending_events = [(self.sqs[0], cid)
                                for (cid,) in AER.iter_unpack(bytes(st["aer_cids"]))]
