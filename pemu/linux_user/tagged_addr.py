"""The tagged address ABI: ``prctl(PR_SET_TAGGED_ADDR_CTRL / PR_GET_TAGGED_ADDR_CTRL)``
as Linux (6.13 on riscv, pointer masking; Supm) implements it.

Two settings, kept apart as Linux keeps them:

* the thread's pointer masking (riscv: senvcfg.PMM of the task): loads and stores
  ignore the top PMLEN bits.  pemu keeps it in the thread's block flags (the
  architecture's ``pointer_masking`` table maps PMLEN to them), so the translated code
  masks, and a clone() inherits it with the registers;
* the process's "tagged address ABI" (the mm's pmlen, only with
  ``PR_TAGGED_ADDR_ENABLE``): system calls accept tagged pointers and untag them
  (``GuestVirtualMemory.tag_bits``: untagged_addr() in every user access).

A request for PMLEN n gets the smallest supported PMLEN >= n (0, 7 or 16) or EINVAL;
once the process has more than one thread its ABI PMLEN can no longer change (EBUSY),
as Linux's MM_CONTEXT_LOCK_PMLEN.  Without the extension (``-cpu`` lacking supm) both
calls fail with EINVAL, as on hardware without it.
"""

from __future__ import annotations

import errno

PR_SET_TAGGED_ADDR_CTRL = 55
PR_GET_TAGGED_ADDR_CTRL = 56
PR_TAGGED_ADDR_ENABLE = 1
PR_PMLEN_SHIFT = 24
PR_PMLEN_MASK = 0x7F << PR_PMLEN_SHIFT


def _lengths(t) -> dict[int, int]:
    """PMLEN -> the block flags that mask it, for this process's CPU ({}: none)."""
    process = t.process
    table = process.arch.pointer_masking
    return table(process.options.cpu) if table is not None else {}


def set_tagged_addr_ctrl(t, arg: int, *rest: int) -> int:
    lengths = _lengths(t)
    if any(rest) or not lengths or arg & ~(PR_TAGGED_ADDR_ENABLE | PR_PMLEN_MASK):
        return -errno.EINVAL
    wanted = (arg & PR_PMLEN_MASK) >> PR_PMLEN_SHIFT
    pmlen = min((n for n in lengths if n >= wanted), default=None)
    if pmlen is None or (arg & PR_TAGGED_ADDR_ENABLE and not pmlen):
        return -errno.EINVAL
    process = t.process
    abi_pmlen = pmlen if arg & PR_TAGGED_ADDR_ENABLE else 0
    with process.mm_lock:
        if process.tagged_addr_locked and process.mem.tag_bits != abi_pmlen:
            return -errno.EBUSY
        process.mem.tag_bits = abi_pmlen
    # this thread's pointer masking: the run loop picks the new flags up when it
    # resumes after the system call
    t.state.slots[t.cpu.flags_slot] = lengths[pmlen]
    return 0


def get_tagged_addr_ctrl(t, *rest: int) -> int:
    lengths = _lengths(t)
    if any(rest) or not lengths:
        return -errno.EINVAL
    flags = t.state.slots[t.cpu.flags_slot]
    pmlen = next((n for n, f in lengths.items() if f == flags), 0)
    enabled = PR_TAGGED_ADDR_ENABLE if t.process.mem.tag_bits else 0
    return pmlen << PR_PMLEN_SHIFT | enabled


__all__ = ["PR_GET_TAGGED_ADDR_CTRL", "PR_PMLEN_MASK", "PR_PMLEN_SHIFT",
           "PR_SET_TAGGED_ADDR_CTRL", "PR_TAGGED_ADDR_ENABLE", "get_tagged_addr_ctrl",
           "set_tagged_addr_ctrl"]
