"""Submission and completion queues: ring indexes, the phase tag, posting entries.

Both rings are physically contiguous in guest RAM (CAP.CQR = 1), checked when the queue
is created, so fetching and posting cannot fault later.  A completion queue that is full
keeps its completions waiting (in order) until the host moves its head doorbell: an
entry is never overwritten and the host's ring is never overrun.
"""

from __future__ import annotations

from collections import deque

from pemu.hw.nvme.spec import CQ_ENTRY, CQE_HEAD, CQE_TAIL, SQ_ENTRY, Command
from pemu.memory.address_space import AddressSpace


class SubmissionQueue:
    def __init__(self, qid: int, ring: memoryview, size: int, cqid: int, base: int) -> None:
        self.qid = qid
        self.base = base  # the ring's guest address (migration rebuilds the view from it)
        self.ring = ring
        self.size = size
        self.cqid = cqid
        self.head = 0
        self.tail = 0

    def set_tail(self, tail: int) -> bool:
        """The host's tail doorbell; False (ignored) if it points outside the ring."""
        if tail >= self.size:
            return False
        self.tail = tail
        return True

    def fetch(self) -> list[Command]:
        """Every entry between head and tail; the head moves past them."""
        out = []
        while self.head != self.tail:
            off = self.head * SQ_ENTRY
            out.append(Command(bytes(self.ring[off:off + SQ_ENTRY])))
            self.head = (self.head + 1) % self.size
        return out


class CompletionQueue:
    def __init__(self, qid: int, ring: memoryview, size: int, vector: int,
                 irq_enabled: bool, base: int) -> None:
        self.qid = qid
        self.base = base
        self.ring = ring
        self.size = size
        self.vector = vector
        self.irq_enabled = irq_enabled
        self.head = 0
        self.tail = 0
        self.phase = 1
        self.waiting: deque[tuple[int, int, int, int, int]] = deque()
        self.sq_count = 0  # submission queues that post here (deletion is refused)

    @property
    def full(self) -> bool:
        return (self.tail + 1) % self.size == self.head

    @property
    def has_unread(self) -> bool:
        """Entries the host has not consumed yet (what keeps INTx asserted)."""
        return self.tail != self.head

    def set_head(self, head: int) -> bool:
        if head >= self.size:
            return False
        self.head = head
        return True

    def post(self, result: int, sq_head: int, sqid: int, cid: int, status: int) -> bool:
        """Queue one completion; True if an entry was written to the ring now."""
        self.waiting.append((result, sq_head, sqid, cid, status))
        return self.flush_waiting()

    def flush_waiting(self) -> bool:
        wrote = False
        while self.waiting and not self.full:
            result, sq_head, sqid, cid, status = self.waiting.popleft()
            off = self.tail * CQ_ENTRY
            self.ring[off:off + 12] = CQE_HEAD.pack(result, 0, sq_head, sqid)
            # the dword holding the phase tag goes last: the host polls on it
            self.ring[off + 12:off + 16] = CQE_TAIL.pack(cid, (status << 1) | self.phase)
            self.tail += 1
            if self.tail == self.size:
                self.tail = 0
                self.phase ^= 1
            wrote = True
        return wrote


def ring_view(space: AddressSpace, base: int, entries: int, entry_size: int) -> memoryview:
    """The ring's memory (GuestMemoryError if it is not all RAM)."""
    return space.view(base, entries * entry_size)
