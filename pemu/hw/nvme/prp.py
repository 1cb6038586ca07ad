"""Physical Region Page lists (spec 4.3): a command's data as memoryviews of guest RAM.

PRP1 may start anywhere in a page (dword aligned); every later entry must start a page.
If the transfer needs at most one more page, PRP2 is that page; otherwise PRP2 points at
a list of entries, whose last entry points at the next list page when more remain.
Adjacent pages are merged, so a contiguous buffer becomes one view (one ``preadv``
segment).  Anything outside RAM, or a misplaced entry, is an NVMe status, not a host
exception.
"""

from __future__ import annotations

from pemu.hw.nvme.spec import DATA_TRANSFER_ERROR, PRP_OFFSET_INVALID, NvmeError
from pemu.memory.address_space import AddressSpace, GuestMemoryError

ENTRY = 8


def _read_u64s(space: AddressSpace, addr: int, count: int) -> list[int]:
    try:
        raw = space.read(addr, count * ENTRY)
    except GuestMemoryError:
        raise NvmeError(DATA_TRANSFER_ERROR, "PRP list outside RAM") from None
    return [int.from_bytes(raw[i:i + ENTRY], "little") for i in range(0, len(raw), ENTRY)]


def prp_ranges(space: AddressSpace, prp1: int, prp2: int, length: int,
               page: int) -> list[tuple[int, int]]:
    """(guest address, length) pieces of a ``length``-byte transfer."""
    if length <= 0:
        return []
    if prp1 & 3:
        raise NvmeError(PRP_OFFSET_INVALID, "PRP1 not dword aligned")
    first = min(length, page - (prp1 & (page - 1)))
    pieces = [(prp1, first)]
    left = length - first
    if left == 0:
        return pieces
    if left <= page:
        pages = [prp2]
    else:
        pages = _list_pages(space, prp2, (left + page - 1) // page, page)
    for addr in pages:
        if addr & (page - 1):
            raise NvmeError(PRP_OFFSET_INVALID, f"PRP entry {addr:#x} not page aligned")
        take = min(left, page)
        last_addr, last_len = pieces[-1]
        if last_addr + last_len == addr:
            pieces[-1] = (last_addr, last_len + take)
        else:
            pieces.append((addr, take))
        left -= take
    return pieces


def _list_pages(space: AddressSpace, list_addr: int, count: int, page: int) -> list[int]:
    """``count`` page addresses from the PRP list at ``list_addr`` (chained)."""
    if list_addr & 7:
        raise NvmeError(PRP_OFFSET_INVALID, "PRP list pointer not qword aligned")
    out: list[int] = []
    while len(out) < count:
        room = (page - (list_addr & (page - 1))) // ENTRY  # entries left in this page
        need = count - len(out)
        if need <= room:
            out += _read_u64s(space, list_addr, need)
            break
        entries = _read_u64s(space, list_addr, room)
        out += entries[:-1]
        list_addr = entries[-1]  # the last entry chains to the next list page
        if list_addr & (page - 1):
            raise NvmeError(PRP_OFFSET_INVALID, "chained PRP list not page aligned")
    return out


def map_prps(space: AddressSpace, prp1: int, prp2: int, length: int,
             page: int) -> list[memoryview]:
    views = []
    for addr, size in prp_ranges(space, prp1, prp2, length, page):
        try:
            views.append(space.view(addr, size))
        except GuestMemoryError:
            # a merged range may straddle two RAM blocks: map it page by page
            views += _page_views(space, addr, size, page)
    return views


def _page_views(space: AddressSpace, addr: int, size: int, page: int) -> list[memoryview]:
    out = []
    end = addr + size
    while addr < end:
        take = min(end - addr, page - (addr & (page - 1)))
        try:
            out.append(space.view(addr, take))
        except GuestMemoryError:
            raise NvmeError(DATA_TRANSFER_ERROR, f"PRP {addr:#x} outside RAM") from None
        addr += take
    return out


def copy_to_guest(views: list[memoryview], data: bytes) -> None:
    """Admin data (identify, log pages) into the mapped buffer, truncated to fit."""
    pos = 0
    for v in views:
        chunk = data[pos:pos + len(v)]
        v[:len(chunk)] = chunk
        pos += len(v)
