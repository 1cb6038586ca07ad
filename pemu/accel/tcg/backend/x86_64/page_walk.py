"""TLB refills without Python: a RISC-V Sv39/Sv48/Sv57 page-table walker in host code.

A load or store whose inline TLB check misses (main and victim entry) calls its
memory thunk (runtime.py); before the thunk calls Python (``SoftMMU.missed_load``,
~1.5 us and the GIL), it calls this routine, emitted once in the dispatcher's head:

    rax = walk(rdi = guest virtual address, esi = MMU index (0 U, 1 S, 2 S+SUM),
               edx = WALK_WRITE when the access needs write permission, else
               WALK_READ)

It returns the host address of the access and leaves the TLB entry filled exactly as
``SoftMMU._fill`` -> ``NativeContext.fill`` would, or 0: then the thunk goes on to
Python, which walks again and raises the page fault, sets A/D, or handles whatever
this routine declines.  It declines everything but the common case, so the Python
walk (target/riscv/mmu.py) stays the only place with the full rules:

* the address space must be a V=0 Sv39/48/57 one (the context's ``levels`` word is 0
  for Bare, for H's V=1 spaces and for other targets);
* every PTE read and the leaf page must lie in DRAM on a page the hart's *page map*
  marks usable: PMP lets S and U read and write the whole page, no watcher is on it
  (SoftMMU.refresh_native_walk; an all-zero map when dirty logging or debug triggers
  are on);
* no reserved, Svnapot or Svpbmt bit in any PTE (bits 63:54 zero), non-leaf PTEs
  without A/D/U/W, a leaf with R set (so MXR does not matter), U as the MMU index
  wants it, A set, and for a write W and D set (so no PTE is ever written here);
* the superpage's physical address aligned to its size.

What Python keeps about filled entries (``TLBContext.present``, the superpage pieces
``sfence.vma addr`` must drop) it learns from the context's *fill log*: each native
fill appends ``page | shift``; Python reads it back before any page flush and on each
of its own misses (``TLBContext.absorb_native_fills``).  A full log makes the routine
decline, so no fill is ever unknown to a flush.

Instruction fetches: when a jump-cache miss also misses both code TLBs, the
dispatcher (``emit_code_refill``) calls the same routine with edx = WALK_FETCH and
esi = the fetch index (U or S): X instead of R, no global leaf (Python's global code
TLB keeps those), no W-without-R; it fills nothing, returns the physical page, and
the dispatcher fills the address space's code TLB and logs the fill (page | shift |
LOG_CODE, then the block flags) for ``NativeContext.take_fills``.
"""

from __future__ import annotations

from typing import NamedTuple

from pemu.accel.tcg.page_filter import (
    HASH_MULT,
    NATIVE_BASE,
    PAGE_BITS,
    PROBE_SHIFTS,
    SUPER_BASE,
    SUPER_BITS,
)

from . import encoder as x
from .encoder import R8, R9, R10, R11, RAX, RBP, RCX, RDI, RDX, RSI, Mem

# The walk block: words after the code TLB in each context's TLB array
W_LEVELS = 0  # page-table levels (3, 4, 5), 0: the walker is off in this context
W_VA_SHIFT = 1  # va_bits - 1: the address must be the sign extension of its bits below
W_TOP_SHIFT = 2  # 12 + 9 * (levels - 1): the root level's index shift
W_ROOT = 3  # physical address of the root table
W_DRAM_BASE = 4
W_DRAM_SIZE = 5
W_HOST = 6  # host address of DRAM's first byte
W_MAP = 7  # host address of the hart's page map: one byte per DRAM page, 1 = usable
W_STATS = 8  # host address of the hart's count of native walks that filled an entry
W_LOG_COUNT = 9  # entries in the fill log
W_FETCH_STATS = 10  # host address of the hart's count of native fetch walks
W_FILTER = 11  # host address of the hart's page filter (accel/tcg/page_filter.py), or 0
W_FLUSH_STATS = 12  # host address of the hart's count of page flushes done natively
W_CONTEXTS = 13  # host address of the hart's list of native TLBs (PageFilter.contexts)
W_MARKS = 14  # host address of DRAM's code-write marks (memory/code_writes.py)
W_LOG = 15  # the fill log: (virtual page address | page shift) per native fill
LOG_ENTRIES = 512
WALK_WORDS = W_LOG + LOG_ENTRIES
# a code TLB fill's log entry has this bit set, and the next word is its block flags
# (a page shift is at most 48: bit 11 is free)
LOG_CODE = 1 << 11

# what the walk is for (edx): a load, a store, an instruction fetch
WALK_READ, WALK_WRITE, WALK_FETCH = 0, 1, 2
# RISC-V's fetch MMU index is the privilege in block flags bits 1:0
# (target/riscv/mmu_regime.fetch_index): 0 U, 1 S, 3 M (never walked natively)
FETCH_INDEX_MASK = 3

PTE_V, PTE_R, PTE_W, PTE_X, PTE_U, PTE_G, PTE_A, PTE_D = 1, 2, 4, 8, 16, 32, 64, 128
PTE_RESERVED_SHIFT = 54  # bits 63:54: Svnapot's N, Svpbmt's PBMT and reserved bits
LEVEL_BITS = 9
PAGE_SHIFT = 12


class TLBGeometry(NamedTuple):
    """Where the native TLB keeps what the walker fills (memory_softmmu's layout)."""

    tlb_slot: int  # state slot holding the TLB in use
    entry_shift: int  # log2 of an entry's bytes
    entries: int  # entries per MMU index
    table_bytes: int  # bytes of one MMU index's table (a power of two)
    victim_bytes: int  # from an entry to its set's victim entry
    read_tag: int  # byte offsets inside an entry
    write_tag: int
    addend: int
    mark: int  # the address of the page's code-write mark (set by every fill)
    walk_offset: int  # bytes from the TLB's start to the walk block
    tables: int  # MMU indexes: tables of main (then victim) entries


def emit_walker(a: x.Assembler, g: TLBGeometry, entry: x.Label | None = None) -> x.Label:
    """The walk routine (module docstring) at ``entry`` (a new label if None); returns
    its label.  It preserves rcx, rdi and the callee-saved registers, and clobbers
    rdx, rsi and r8-r11.

    With edx = WALK_FETCH (esi: the fetch index, 0 U or 1 S) it fills nothing: it
    returns the physical page (0: declined) and r9 = its log word (virtual page |
    shift); emit_code_refill fills the code TLB with them."""
    entry = entry if entry is not None else x.Label()
    fail, loop, leaf, u_ok, check_write, place, swap, same, no_write = (
        x.Label() for _ in range(9))
    fetch_leaf, fetched, u_check = x.Label(), x.Label(), x.Label()
    w = g.walk_offset

    def word(n: int) -> Mem:
        return Mem(R8, w + 8 * n)

    a.align(16)
    a.bind(entry)
    a.push(RCX)
    a.load(64, R8, Mem(RBP, 8 * g.tlb_slot))
    a.load(64, RAX, word(W_LEVELS))
    a.test_rr(64, RAX, RAX)
    a.jcc(x.CC_E, fail)
    a.alu_ri(x.CMP, 64, word(W_LOG_COUNT), LOG_ENTRIES)
    a.jcc(x.CC_AE, fail)  # Python must read the log first
    # canonical: bits 63..va_bits-1 all equal
    a.load(64, RCX, word(W_VA_SHIFT))
    a.mov_rr(64, R11, RDI)
    a.shift_cl(x.SAR, 64, R11)
    a.alu_ri(x.ADD, 64, R11, 1)
    a.alu_ri(x.CMP, 64, R11, 1)
    a.jcc(x.CC_A, fail)
    a.load(64, R9, word(W_ROOT))
    a.load(64, RCX, word(W_TOP_SHIFT))  # cl: this level's index shift
    a.bind(loop)
    # r11 = DRAM offset of the PTE
    a.mov_rr(64, R11, RDI)
    a.shift_cl(x.SHR, 64, R11)
    a.alu_ri(x.AND, 32, R11, (1 << LEVEL_BITS) - 1)
    a.lea(R11, Mem(R9, 0, R11, 8))
    a.alu_rm(x.SUB, 64, R11, word(W_DRAM_BASE))
    a.alu_rm(x.CMP, 64, R11, word(W_DRAM_SIZE))
    a.jcc(x.CC_AE, fail)  # outside DRAM (or below it: wrapped)
    _check_page_usable(a, R11, word(W_MAP), fail)
    a.alu_rm(x.ADD, 64, R11, word(W_HOST))
    a.load(64, RAX, Mem(R11, 0))  # the PTE
    a.mov_rr(64, R10, RAX)
    a.shift_ri(x.SHR, 64, R10, PTE_RESERVED_SHIFT)
    a.jcc(x.CC_NE, fail)
    a.test_ri(32, RAX, PTE_V)
    a.jcc(x.CC_E, fail)
    a.test_ri(32, RAX, PTE_R | PTE_X)
    a.jcc(x.CC_NE, leaf)
    # a pointer to the next level
    a.test_ri(32, RAX, PTE_W | PTE_A | PTE_D | PTE_U)
    a.jcc(x.CC_NE, fail)
    a.alu_ri(x.SUB, 32, RCX, LEVEL_BITS)
    a.alu_ri(x.CMP, 32, RCX, PAGE_SHIFT)
    a.jcc(x.CC_B, fail)  # a pointer at level 0
    a.mov_rr(64, R9, RAX)
    a.shift_ri(x.SHR, 64, R9, 10)
    a.shift_ri(x.SHL, 64, R9, PAGE_SHIFT)
    a.jmp(loop)

    a.bind(leaf)
    a.alu_ri(x.CMP, 32, RDX, WALK_FETCH)
    a.jcc(x.CC_E, fetch_leaf)
    a.test_ri(32, RAX, PTE_R)
    a.jcc(x.CC_E, fail)  # execute-only: MXR decides, Python knows it
    # U: MMU index 0 wants it set, 1 clear, 2 (S with SUM) either
    a.bind(u_check)
    a.alu_ri(x.CMP, 32, RSI, 2)
    a.jcc(x.CC_E, u_ok)
    a.mov_rr(32, R10, RAX)
    a.shift_ri(x.SHR, 32, R10, 4)
    a.alu_ri(x.AND, 32, R10, 1)
    a.alu_rr(x.XOR, 32, R10, RSI)
    a.jcc(x.CC_E, fail)  # (U == 1) ^ idx is 1 when they agree
    a.bind(u_ok)
    a.test_ri(32, RAX, PTE_A)
    a.jcc(x.CC_E, fail)  # Python sets A (or faults: Svade)
    # r11 = 1 if the entry may take stores too (W and D set), as Python's fill
    a.mov_rr(32, R10, RAX)
    a.alu_ri(x.AND, 32, R10, PTE_W | PTE_D)
    a.mov_ri(R11, 0)
    a.alu_ri(x.CMP, 32, R10, PTE_W | PTE_D)
    a.setcc(x.CC_E, R11)
    a.alu_ri(x.CMP, 32, RDX, WALK_WRITE)
    a.jcc(x.CC_NE, check_write)
    a.test_rr(32, R11, R11)
    a.jcc(x.CC_E, fail)
    a.bind(check_write)
    # r9 = the leaf's physical base, aligned to the page size (1 << cl)
    a.mov_rr(64, R9, RAX)
    a.shift_ri(x.SHR, 64, R9, 10)
    a.shift_ri(x.SHL, 64, R9, PAGE_SHIFT)
    a.mov_ri(R10, 1)
    a.shift_cl(x.SHL, 64, R10)
    a.alu_ri(x.SUB, 64, R10, 1)
    a.test_rr(64, R9, R10)
    a.jcc(x.CC_NE, fail)  # a misaligned superpage: a page fault
    # rax = the DRAM offset of the 4 KiB page accessed
    a.mov_rr(64, RAX, RDI)
    a.alu_rr(x.AND, 64, RAX, R10)
    a.alu_ri(x.AND, 64, RAX, -(1 << PAGE_SHIFT))
    a.alu_rr(x.OR, 64, RAX, R9)
    a.alu_rm(x.SUB, 64, RAX, word(W_DRAM_BASE))
    a.alu_rm(x.CMP, 64, RAX, word(W_DRAM_SIZE))
    a.jcc(x.CC_AE, fail)  # MMIO, ROM: Python's accesses
    _check_page_usable(a, RAX, word(W_MAP), fail)
    a.alu_ri(x.CMP, 32, RDX, WALK_FETCH)
    a.jcc(x.CC_E, fetched)
    # rax = the addend (host address - guest address), r9 = the tag (virtual page)
    a.alu_rm(x.ADD, 64, RAX, word(W_HOST))
    a.mov_rr(64, R9, RDI)
    a.alu_ri(x.AND, 64, R9, -(1 << PAGE_SHIFT))
    a.alu_rr(x.SUB, 64, RAX, R9)
    # r10 = the entry: tlb + idx * table_bytes + (vpn % entries) << entry_shift
    a.mov_rr(64, R10, RDI)
    a.shift_ri(x.SHR, 64, R10, PAGE_SHIFT - g.entry_shift)
    a.alu_ri(x.AND, 32, R10, (g.entries - 1) << g.entry_shift)
    a.alu_rr(x.ADD, 64, R10, R8)
    a.shift_ri(x.SHL, 32, RSI, g.table_bytes.bit_length() - 1)
    a.alu_rr(x.ADD, 64, R10, RSI)
    # the victim-entry rule of NativeContext.fill: another page's entry moves to the
    # victim slot, unless the victim is this page (then they swap)
    rt, wt, ad, v = g.read_tag, g.write_tag, g.addend, g.victim_bytes
    moved = (rt, wt, ad, g.mark)
    a.alu_rm(x.CMP, 64, R9, Mem(R10, rt))
    a.jcc(x.CC_E, same)
    a.alu_rm(x.CMP, 64, R9, Mem(R10, wt))
    a.jcc(x.CC_E, same)
    a.alu_rm(x.CMP, 64, R9, Mem(R10, v + rt))
    a.jcc(x.CC_E, swap)
    a.alu_rm(x.CMP, 64, R9, Mem(R10, v + wt))
    a.jcc(x.CC_E, swap)
    a.bind(place)
    for off in moved:
        a.load(64, RDX, Mem(R10, off))
        a.store(8, Mem(R10, v + off), RDX)
    a.store_imm(8, Mem(R10, rt), -1)
    a.store_imm(8, Mem(R10, wt), -1)
    a.jmp(same)
    a.bind(swap)
    for off in moved:
        a.load(64, RDX, Mem(R10, off))
        a.load(64, RSI, Mem(R10, v + off))
        a.store(8, Mem(R10, off), RSI)
        a.store(8, Mem(R10, v + off), RDX)
    a.bind(same)
    a.store(8, Mem(R10, rt), R9)
    a.test_rr(32, R11, R11)
    a.jcc(x.CC_E, no_write)
    a.store(8, Mem(R10, wt), R9)
    a.bind(no_write)
    a.store(8, Mem(R10, ad), RAX)
    # the mark: marks + DRAM offset of the page (host page - DRAM's host address) / 4 KiB
    a.mov_rr(64, RDX, RAX)
    a.alu_rr(x.ADD, 64, RDX, R9)
    a.alu_rm(x.SUB, 64, RDX, word(W_HOST))
    a.shift_ri(x.SHR, 64, RDX, PAGE_SHIFT)
    a.alu_rm(x.ADD, 64, RDX, word(W_MARKS))
    a.store(8, Mem(R10, g.mark), RDX)
    # the fill log: page | shift
    a.load(64, RDX, word(W_LOG_COUNT))
    a.mov_rr(32, RSI, RCX)
    a.alu_rr(x.OR, 64, RSI, R9)
    a.store(8, Mem(R8, w + 8 * W_LOG, RDX, 8), RSI)
    a.alu_ri(x.ADD, 64, RDX, 1)
    a.store(8, word(W_LOG_COUNT), RDX)
    a.load(64, RDX, word(W_STATS))
    a.alu_ri(x.ADD, 64, Mem(RDX, 0), 1)
    _emit_filter_marks(a, RDI, word(W_FILTER), NATIVE_BASE)
    a.alu_rr(x.ADD, 64, RAX, RDI)  # the host address of the access
    a.pop(RCX)
    a.ret()
    a.bind(fetched)
    # rax = the physical page, r9 = the log word: virtual page | shift
    a.alu_rm(x.ADD, 64, RAX, word(W_DRAM_BASE))
    a.mov_rr(64, R9, RDI)
    a.alu_ri(x.AND, 64, R9, -(1 << PAGE_SHIFT))
    a.alu_rr(x.OR, 64, R9, RCX)
    a.pop(RCX)
    a.ret()
    # a fetch's leaf: X, not W without R (reserved), not global (Python keeps global
    # code in the vCPU's global code TLB), then U and A as for data
    a.bind(fetch_leaf)
    a.test_ri(32, RAX, PTE_X)
    a.jcc(x.CC_E, fail)
    a.test_ri(32, RAX, PTE_G)
    a.jcc(x.CC_NE, fail)
    a.mov_rr(32, R10, RAX)
    a.alu_ri(x.AND, 32, R10, PTE_R | PTE_W)
    a.alu_ri(x.CMP, 32, R10, PTE_W)
    a.jcc(x.CC_E, fail)
    a.alu_ri(x.CMP, 32, RSI, 1)
    a.jcc(x.CC_A, fail)  # only U and S fetch through page tables
    a.jmp(u_check)
    a.bind(fail)
    a.mov_ri(RAX, 0)
    a.pop(RCX)
    a.ret()
    return entry


def _emit_bucket(a: x.Assembler, dest: int, tmp: int, vaddr: int, shift: int | None
                 ) -> None:
    """dest = page_filter.bucket(shift, vaddr >> shift): ``shift`` a constant, or
    None for the one in cl (``tmp`` is clobbered)."""
    a.mov_rr(64, dest, vaddr)
    if shift is None:
        a.shift_cl(x.SHR, 64, dest)
        a.shift_ri(x.SHL, 64, dest, 6)
        a.alu_rr(x.OR, 64, dest, RCX)
    else:
        a.shift_ri(x.SHR, 64, dest, shift)
        a.shift_ri(x.SHL, 64, dest, 6)
        a.alu_ri(x.OR, 64, dest, shift)
    a.imul_rri(64, dest, dest, HASH_MULT)
    a.mov_rr(64, tmp, dest)
    a.shift_ri(x.SHR, 64, tmp, PAGE_BITS)
    a.alu_rr(x.XOR, 64, dest, tmp)
    if shift == PAGE_SHIFT:
        a.alu_ri(x.AND, 32, dest, (1 << PAGE_BITS) - 1)
    else:  # a superpage (cl > PAGE_SHIFT where it is not a constant)
        a.alu_ri(x.AND, 32, dest, (1 << SUPER_BITS) - 1)
        a.alu_ri(x.ADD, 32, dest, SUPER_BASE)


def _emit_filter_marks(a: x.Assembler, vaddr: int, filter_word: Mem, region: int) -> None:
    """A native fill of the page at ``vaddr`` (a register; cl = the page shift of its
    mapping): its bytes in the hart's page filter, the 4 KiB page's in the region from
    byte ``region`` (page_filter: native data fills, or 0: code) and, for a superpage,
    the superpage's.  Clobbers rdx, r10 and r11."""
    done = x.Label()
    a.load(64, R11, filter_word)
    a.test_rr(64, R11, R11)
    a.jcc(x.CC_E, done)
    _emit_bucket(a, R10, RDX, vaddr, PAGE_SHIFT)
    a.store_imm(1, Mem(R11, region, R10, 1), 1)
    a.alu_ri(x.CMP, 32, RCX, PAGE_SHIFT)
    a.jcc(x.CC_BE, done)
    _emit_bucket(a, R10, RDX, vaddr, None)
    a.store_imm(1, Mem(R11, 0, R10, 1), 1)
    a.bind(done)


def emit_flush_probe(a: x.Assembler, g: TLBGeometry, entry: x.Label) -> None:
    """``uint64 probe(vaddr)`` at ``entry``, called from generated code as a helper
    (rbp: the state slots): the flush of ``vaddr``'s page, done here when the hart's
    page filter (page_filter.py) proves that only native data TLB entries may hold
    it: no superpage key holding the page is marked (PROBE_SHIFTS), nor its Python
    byte, and the fill log is less than half full.  Then the entries of the page
    (main and victim, every MMU index) are dropped from every address space's native
    TLB, one native flush is counted, and it returns 0; else 1 (Python flushes).
    Clobbers rax, rcx, rdx, rsi and r8-r11."""
    maybe, done, contexts = x.Label(), x.Label(), x.Label()
    w = g.walk_offset
    a.align(16)
    a.bind(entry)
    a.load(64, R8, Mem(RBP, 8 * g.tlb_slot))
    a.load(64, R11, Mem(R8, w + 8 * W_FILTER))
    a.test_rr(64, R11, R11)
    a.jcc(x.CC_E, maybe)
    # a fill log half full: Python's flush reads it, before the walker finds it full
    # and sends each miss to Python's walk, whose fills mark the page as Python's
    a.alu_ri(x.CMP, 64, Mem(R8, w + 8 * W_LOG_COUNT), LOG_ENTRIES // 2)
    a.jcc(x.CC_AE, maybe)
    for shift in PROBE_SHIFTS[1:]:
        _emit_bucket(a, RAX, RDX, RDI, shift)
        a.movzx(R10, Mem(R11, 0, RAX, 1), 1)
        a.test_rr(32, R10, R10)
        a.jcc(x.CC_NE, maybe)
    _emit_bucket(a, RAX, RDX, RDI, PAGE_SHIFT)
    a.movzx(R10, Mem(R11, 0, RAX, 1), 1)
    a.test_rr(32, R10, R10)
    a.jcc(x.CC_NE, maybe)  # Python holds it, or it held code
    a.movzx(R10, Mem(R11, NATIVE_BASE, RAX, 1), 1)
    a.test_rr(32, R10, R10)
    a.jcc(x.CC_E, done)  # no cache holds it
    # rdx = the tag, r9 = the entry's offset in a table, rsi = the list, rcx = its count
    a.mov_rr(64, RDX, RDI)
    a.alu_ri(x.AND, 64, RDX, -(1 << PAGE_SHIFT))
    a.mov_rr(64, R9, RDI)
    a.shift_ri(x.SHR, 64, R9, PAGE_SHIFT - g.entry_shift)
    a.alu_ri(x.AND, 32, R9, (g.entries - 1) << g.entry_shift)
    a.load(64, RSI, Mem(R8, w + 8 * W_CONTEXTS))
    a.load(64, RCX, Mem(RSI, 0))
    a.bind(contexts)
    a.test_rr(64, RCX, RCX)
    a.jcc(x.CC_E, done)
    a.load(64, R10, Mem(RSI, 0, RCX, 8))
    a.alu_rr(x.ADD, 64, R10, R9)
    for idx in range(g.tables):
        for victim in (0, g.victim_bytes):
            at = idx * g.table_bytes + victim
            drop, keep = x.Label(), x.Label()
            a.alu_rm(x.CMP, 64, RDX, Mem(R10, at + g.read_tag))
            a.jcc(x.CC_E, drop)
            a.alu_rm(x.CMP, 64, RDX, Mem(R10, at + g.write_tag))
            a.jcc(x.CC_NE, keep)
            a.bind(drop)
            a.store_imm(8, Mem(R10, at + g.read_tag), -1)
            a.store_imm(8, Mem(R10, at + g.write_tag), -1)
            a.bind(keep)
    a.alu_ri(x.SUB, 64, RCX, 1)
    a.jmp(contexts)
    a.bind(done)
    a.load(64, RDX, Mem(R8, w + 8 * W_FLUSH_STATS))
    a.alu_ri(x.ADD, 64, Mem(RDX, 0), 1)
    a.mov_ri(RAX, 0)
    a.ret()
    a.bind(maybe)
    a.mov_ri(RAX, 1)
    a.ret()


def _check_page_usable(a: x.Assembler, offset: int, page_map: Mem, fail: x.Label) -> None:
    """Jump to ``fail`` unless the page map marks the DRAM page at ``offset`` usable
    (r10 is clobbered)."""
    a.mov_rr(64, R10, offset)
    a.shift_ri(x.SHR, 64, R10, PAGE_SHIFT)
    a.alu_rm(x.ADD, 64, R10, page_map)
    a.movzx(R10, Mem(R10, 0), 1)
    a.test_rr(32, R10, R10)
    a.jcc(x.CC_E, fail)


def emit_refill(a: x.Assembler, walker: x.Label, g: TLBGeometry, idx: int, size: int,
                kind: str, done: x.Label) -> None:
    """In a memory thunk (guest address in r11, a store's value in rcx, registers
    saved): try the walker; on success do the access (a store also sets its page's
    code-write mark) and jump to ``done`` with a load's value in r11, else fall
    through to the Python call."""
    python = x.Label()
    if size > 1:  # a page-crossing access: Python splits it
        a.mov_rr(32, RAX, R11)
        a.alu_ri(x.AND, 32, RAX, (1 << PAGE_SHIFT) - 1)
        a.alu_ri(x.CMP, 32, RAX, (1 << PAGE_SHIFT) - size)
        a.jcc(x.CC_A, python)
    a.mov_rr(64, RDI, R11)
    a.mov_ri(RSI, idx)
    a.mov_ri(RDX, 0 if kind == "ld" else 1)
    a.call(walker)
    a.test_rr(64, RAX, RAX)
    declined = x.Label()
    a.jcc(x.CC_E, declined)
    if kind == "st":
        a.store(size, Mem(RAX, 0), RCX)
        # r8 is still the TLB the walker filled: its walk block has the marks
        a.mov_rr(64, RDX, RAX)
        a.alu_rm(x.SUB, 64, RDX, Mem(R8, g.walk_offset + 8 * W_HOST))
        a.shift_ri(x.SHR, 64, RDX, PAGE_SHIFT)
        a.alu_rm(x.ADD, 64, RDX, Mem(R8, g.walk_offset + 8 * W_MARKS))
        a.store_imm(1, Mem(RDX, 0), 1)
    else:
        a.movzx(R11, Mem(RAX, 0), size)
    a.jmp(done)
    a.bind(declined)
    a.mov_rr(64, R11, RDI)  # the walker used r11 (it keeps rdi)
    a.bind(python)


class CodeTLBGeometry(NamedTuple):
    """Where the address space's code TLB lies in its TLB array (byte offsets)."""

    offset: int  # from the TLB's start to the code TLB
    vpage: int  # inside an entry: the virtual page, the flags, the physical page
    flags: int
    page: int


def emit_code_refill(a: x.Assembler, walker: x.Label, g: TLBGeometry, c: CodeTLBGeometry,
                     flags: Mem, jump_cache: Mem, found: x.Label, miss: x.Label) -> None:
    """In the dispatcher, after every code TLB missed (rax = the pc, rcx = the byte
    offset of its entry in the address space's code TLB): walk for a fetch and, on
    success, fill that entry as ``CodeTLB.fill`` would, log the fill (two words: the
    page's log word | LOG_CODE, the flags) and jump to ``found`` with rsi = the
    physical page, rdi = the jump cache in ``jump_cache``'s slot and rax = the pc;
    else jump to ``miss`` (Python looks the pc up, walking in Python)."""
    declined = x.Label()
    a.load(64, R8, Mem(RBP, 8 * g.tlb_slot))
    a.alu_ri(x.CMP, 64, Mem(R8, g.walk_offset + 8 * W_LOG_COUNT), LOG_ENTRIES - 1)
    a.jcc(x.CC_AE, miss)  # no room for two words: Python must read the log first
    a.push(RAX)
    a.mov_rr(64, RDI, RAX)
    a.load(64, RSI, flags)
    a.alu_ri(x.AND, 32, RSI, FETCH_INDEX_MASK)
    a.mov_ri(RDX, WALK_FETCH)
    a.call(walker)  # keeps rcx
    a.test_rr(64, RAX, RAX)
    a.jcc(x.CC_E, declined)
    a.mov_rr(64, RSI, RAX)
    a.pop(RAX)
    # the entry: r10 = &code_tlb[entry]; tags = the pc's page and the flags
    a.load(64, R8, Mem(RBP, 8 * g.tlb_slot))
    a.lea(R10, Mem(R8, c.offset, RCX, 1))
    a.mov_rr(64, RDX, RAX)
    a.alu_ri(x.AND, 64, RDX, -(1 << PAGE_SHIFT))
    a.store(8, Mem(R10, c.vpage), RDX)
    a.load(64, R11, flags)
    a.store(8, Mem(R10, c.flags), R11)
    a.store(8, Mem(R10, c.page), RSI)
    # the fill log: page | shift | LOG_CODE, then the flags
    w = g.walk_offset
    a.load(64, RDX, Mem(R8, w + 8 * W_LOG_COUNT))
    a.alu_ri(x.OR, 64, R9, LOG_CODE)
    a.store(8, Mem(R8, w + 8 * W_LOG, RDX, 8), R9)
    a.store(8, Mem(R8, w + 8 * W_LOG + 8, RDX, 8), R11)
    a.alu_ri(x.ADD, 64, RDX, 2)
    a.store(8, Mem(R8, w + 8 * W_LOG_COUNT), RDX)
    a.load(64, RDX, Mem(R8, w + 8 * W_FETCH_STATS))
    a.alu_ri(x.ADD, 64, Mem(RDX, 0), 1)
    a.mov_rr(32, RCX, R9)  # cl = the page shift (the log word's low bits)
    a.alu_ri(x.AND, 32, RCX, LOG_CODE - 1)
    _emit_filter_marks(a, RAX, Mem(R8, w + 8 * W_FILTER), 0)
    a.load(64, RDI, jump_cache)
    a.jmp(found)
    a.bind(declined)
    a.pop(RAX)
    a.jmp(miss)


__all__ = ["LOG_ENTRIES", "LOG_CODE", "CodeTLBGeometry", "TLBGeometry", "WALK_WORDS",
           "emit_code_refill", "emit_flush_probe", "emit_refill", "emit_walker"]
