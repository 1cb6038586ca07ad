"""Which pages of a RAM block may have been written since code on them was checked.

System mode keeps a snapshot of every page it translated code from and, at the
guest's instruction-fetch fence (RISC-V ``fence.i``), drops the blocks of pages whose
bytes changed (accel/tcg/code_snapshots.py).  Comparing every snapshotted page at
every fence cost Debian's boot 7 M page compares for 434 changes; these marks let
the fence compare only the pages that something wrote since their last compare.

* ``marks``: one byte per page, 1 = written since the page was last compared.  Every
  writer sets it after its bytes land: translated stores (the native TLB entry
  carries the address of its page's mark byte; the python backend's inline store
  sets it too), the softmmu's slow paths, the memory API (``AddressSpace.write``/
  ``store``), the loaders.  The fence clears a page's mark (then a memory fence)
  before it compares the page: a mark set before the clear has its bytes seen by the
  compare, one set after it brings the page to the next fence - also for a store on
  another host thread (MTTCG).
* ``sticky``: pages holding code that a device was given a view of (DMA).  The device
  may write through it later, on its I/O thread, even after a fence (block/aio.py),
  so these are compared at every fence until their code changes (or is dropped).
* ``code``: one byte per page, 1 = a snapshot of the page is kept (only such pages
  become sticky).

Where a writer cannot say which pages it wrote (a migration restore, pages given
back to the host), it calls ``note_unknown``: every page counts as written.
"""

from __future__ import annotations

import ctypes

PAGE_SHIFT = 12


class CodeWriteMarks:
    """The marks of one RAM block of ``size`` bytes."""

    def __init__(self, size: int) -> None:
        self.pages = (size + (1 << PAGE_SHIFT) - 1) >> PAGE_SHIFT
        # written since the last compare; all set at first: writes made before the
        # marks existed are unknown
        self.marks = (ctypes.c_uint8 * self.pages)()
        ctypes.memset(self.marks, 1, self.pages)
        self.marks_address = ctypes.addressof(self.marks)
        self.code = (ctypes.c_uint8 * self.pages)()
        self.sticky: set[int] = set()

    def note_write(self, offset: int, size: int) -> None:
        """[offset, offset+size) of the block was written."""
        if size <= 0:
            return
        first, last = offset >> PAGE_SHIFT, (offset + size - 1) >> PAGE_SHIFT
        if first == last:
            self.marks[first] = 1
        else:
            ctypes.memset(self.marks_address + first, 1, last - first + 1)

    def note_view(self, offset: int, size: int) -> None:
        """A device took a view of [offset, offset+size): it may write through it at
        any time from now on."""
        if size <= 0:
            return
        self.note_write(offset, size)
        code = self.code
        for page in range(offset >> PAGE_SHIFT, ((offset + size - 1) >> PAGE_SHIFT) + 1):
            if code[page]:
                self.sticky.add(page)

    def note_unknown(self) -> None:
        """Anything in the block may have been written."""
        ctypes.memset(self.marks, 1, self.pages)

    def set_code(self, page: int, holds_code: bool) -> None:
        """Page ``page`` (of the block) now has a snapshot (True: its mark is set, so
        the next fence compares it once) or has none any more."""
        self.code[page] = holds_code
        self.sticky.discard(page)
        if holds_code:
            self.marks[page] = 1

    def clear_code(self) -> None:
        """No page of the block has a snapshot any more."""
        ctypes.memset(self.code, 0, self.pages)
        self.sticky.clear()


__all__ = ["CodeWriteMarks"]
