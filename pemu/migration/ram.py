"""Guest RAM in a machine stream: finding the pages worth sending, applying records.

A savevm stream carries only the non-zero pages: loading starts from zeroed RAM
(``zero_ram`` gives the pages back to the host, which is faster than writing zeros),
so a zero page costs nothing.  Live migration sends dirty pages again; a page that
became zero goes as a Z record of a few bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pemu.memory.address_space import RAMBlock
from pemu.migration.stream import MAX_RUN_PAGES, PAGE_SIZE, RamRecord, StreamError, StreamWriter

_ZERO_RUN = bytes(MAX_RUN_PAGES * PAGE_SIZE)  # nonzero_pages skips a MiB at once
_ZERO_PAGE = bytes(PAGE_SIZE)


def _runs(pages: Iterable[int]) -> Iterator[tuple[int, int]]:
    """(first page, count) runs of consecutive page numbers, at most MAX_RUN_PAGES long."""
    start = count = -1
    for p in pages:
        if count > 0 and p == start + count and count < MAX_RUN_PAGES:
            count += 1
            continue
        if count > 0:
            yield start, count
        start, count = p, 1
    if count > 0:
        yield start, count


def nonzero_pages(block: RAMBlock) -> Iterator[int]:
    """Page numbers of the block whose contents are not all zero."""
    mem = block.mem
    run = MAX_RUN_PAGES * PAGE_SIZE
    for base in range(0, block.size, run):
        end = min(base + run, block.size)
        if mem[base:end] == _ZERO_RUN[:end - base]:
            continue  # the common case for an idle guest: a whole MiB of zeros at once
        for off in range(base, end, PAGE_SIZE):
            if mem[off:off + PAGE_SIZE] != _ZERO_PAGE:
                yield off // PAGE_SIZE


def _classified(mem, pages: Iterable[int]) -> Iterator[tuple[int, bool]]:
    for p in pages:
        off = p * PAGE_SIZE
        yield p, mem[off:off + PAGE_SIZE] == _ZERO_PAGE


def send_pages(writer: StreamWriter, block: RAMBlock, pages: Iterable[int],
               skip_zero: bool) -> tuple[int, int]:
    """Write the given pages (ascending): runs of non-zero pages with their data, runs
    of zero pages as Z records (or nothing with ``skip_zero``: the receiver's copy is
    known to be zero, the first pass).  Returns (pages sent with data, zero pages)."""
    mem = block.mem
    sent = zeros = 0
    run: list[int] = []
    run_zero = False

    def flush() -> None:
        nonlocal sent, zeros
        for first, count in _runs(run):
            off = first * PAGE_SIZE
            if run_zero:
                zeros += count
                if not skip_zero:
                    writer.zero(block.name, off, count)
            else:
                writer.ram(block.name, off, mem[off:off + count * PAGE_SIZE])
                sent += count

    for page, is_zero in _classified(mem, pages):
        if run and (is_zero != run_zero or page != run[-1] + 1):
            flush()
            run = []
        run_zero = is_zero
        run.append(page)
    if run:
        flush()
    return sent, zeros


def zero_ram(block: RAMBlock) -> None:
    """Make every page of the block read as zero (the start of a load)."""
    try:
        block.zero_all()
    except (AttributeError, OSError, ValueError):
        block.view[:] = bytes(block.size)
        block.note_unknown_writes()


def apply_ram(blocks: dict[str, RAMBlock], rec: RamRecord) -> None:
    block = blocks.get(rec.block)
    if block is None:
        raise StreamError(f"RAM record for unknown block {rec.block!r}")
    length = rec.zero_pages * PAGE_SIZE if not rec.data else len(rec.data)
    if rec.offset + length > block.size:
        raise StreamError(f"RAM record 0x{rec.offset:x}+0x{length:x} is outside block "
                          f"{rec.block!r} (0x{block.size:x} bytes)")
    if rec.data:
        block.view[rec.offset:rec.offset + length] = rec.data
    else:
        block.view[rec.offset:rec.offset + length] = bytes(length)
    block.note_write(rec.offset, length)  # (a translator's code snapshots)


__all__ = ["apply_ram", "nonzero_pages", "send_pages", "zero_ram"]
