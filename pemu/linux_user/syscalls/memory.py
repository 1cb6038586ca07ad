"""The guest address space: brk, mmap, munmap, mprotect, mremap, madvise."""

from __future__ import annotations

import errno

from ..loader import MMAP_BASE
from ..vmem import PAGE_MASK, PROT_EXEC, PROT_READ, PROT_WRITE
from .hostcall import fd_arg, host
from .registry import syscall

MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_SHARED_VALIDATE = 0x03
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_FIXED_NOREPLACE = 0x100000
MREMAP_MAYMOVE = 1
MREMAP_FIXED = 2
PROT_MASK = PROT_READ | PROT_WRITE | PROT_EXEC


def _align(n: int) -> int:
    return (n + PAGE_MASK) & ~PAGE_MASK


def _valid_range(mem, addr: int, length: int) -> bool:
    return not addr & PAGE_MASK and 0 < length and addr + length <= mem.size


@syscall("brk")
def sys_brk(t, new_brk):
    p = t.process
    mem = p.mem
    with p.mm_lock:
        if new_brk < p.brk_start or new_brk >= mem.size:
            return p.brk
        old_end, new_end = _align(p.brk), _align(new_brk)
        if new_end > old_end:
            if mem.any_mapped(old_end, new_end - old_end):
                return p.brk
            mem.map_anonymous(old_end, new_end - old_end, PROT_READ | PROT_WRITE)
        elif new_end < old_end:
            mem.unmap(new_end, old_end - new_end)
            p.engine.invalidate_range(new_end, old_end - new_end)
        p.brk = new_brk
        return p.brk


@syscall("mmap")
def sys_mmap(t, addr, length, prot, flags, fd, offset):
    p = t.process
    mem = p.mem
    if length == 0 or offset & PAGE_MASK or prot & ~PROT_MASK & 0xFFFFFFFF:
        return -errno.EINVAL
    kind = flags & MAP_SHARED_VALIDATE
    if kind == 0:
        return -errno.EINVAL
    size = _align(length)
    if size > mem.size:
        return -errno.ENOMEM
    with p.mm_lock:
        if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
            if not _valid_range(mem, addr, size):
                return -errno.EINVAL if addr & PAGE_MASK else -errno.ENOMEM
            if flags & MAP_FIXED_NOREPLACE and not flags & MAP_FIXED:
                if mem.any_mapped(addr, size):
                    return -errno.EEXIST
            where = addr
        else:
            where = None
            if addr and _valid_range(mem, addr & ~PAGE_MASK, size):
                hint = addr & ~PAGE_MASK
                if mem.find_free(size, hint, hint) == hint:
                    where = hint
            if where is None:
                where = mem.find_free(size, MMAP_BASE, MMAP_BASE)
                if where is None:
                    return -errno.ENOMEM
        shared = kind != MAP_PRIVATE
        if flags & MAP_ANONYMOUS:
            mem.map_anonymous(where, size, prot & PROT_MASK, shared=shared)
        else:
            mem.map_file(where, size, prot & PROT_MASK, fd_arg(fd), offset, shared)
        p.engine.invalidate_range(where, size)
        return where


@syscall("munmap")
def sys_munmap(t, addr, length):
    p = t.process
    addr = p.mem.untagged(addr)  # the tagged address ABI (tagged_addr.py), as Linux
    size = _align(length)
    if not _valid_range(p.mem, addr, size):
        return -errno.EINVAL
    with p.mm_lock:
        p.mem.unmap(addr, size)
        p.engine.invalidate_range(addr, size)
    return 0


@syscall("mprotect")
def sys_mprotect(t, addr, length, prot):
    p = t.process
    addr = p.mem.untagged(addr)
    size = _align(length)
    if addr & PAGE_MASK or prot & ~PROT_MASK & 0xFFFFFFFF:
        return -errno.EINVAL
    if size == 0:
        return 0
    if not p.mem.is_mapped(addr, size):
        return -errno.ENOMEM
    with p.mm_lock:
        p.mem.protect(addr, size, prot & PROT_MASK)
        if not prot & PROT_EXEC:
            p.engine.invalidate_range(addr, size)
    return 0


@syscall("mremap")
def sys_mremap(t, old_addr, old_size, new_size, flags, new_addr):
    p = t.process
    mem = p.mem
    old_addr = mem.untagged(old_addr)
    old_size, new_size = _align(old_size), _align(new_size)
    if old_addr & PAGE_MASK or new_size == 0 or flags & MREMAP_FIXED:
        return -errno.EINVAL
    if not mem.is_mapped(old_addr, max(old_size, 1)):
        return -errno.EFAULT
    with p.mm_lock:
        if new_size <= old_size:
            if new_size < old_size:
                mem.unmap(old_addr + new_size, old_size - new_size)
                p.engine.invalidate_range(old_addr + new_size, old_size - new_size)
            return old_addr
        grow_at = old_addr + old_size
        prot = mem.prot[old_addr >> 12]
        if grow_at + new_size - old_size <= mem.size and \
                mem.find_free(new_size - old_size, grow_at, grow_at) == grow_at:
            mem.map_anonymous(grow_at, new_size - old_size, prot)
            return old_addr
        if not flags & MREMAP_MAYMOVE:
            return -errno.ENOMEM
        # Moving copies the contents: file-backed mappings lose their file link, which
        # is what glibc's realloc of big anonymous blocks needs.
        where = mem.find_free(new_size, MMAP_BASE, MMAP_BASE)
        if where is None:
            return -errno.ENOMEM
        mem.map_anonymous(where, new_size, prot)
        mem.mem[where : where + old_size] = mem.mem[old_addr : old_addr + old_size]
        mem.unmap(old_addr, old_size)
        p.engine.invalidate_range(old_addr, old_size)
        return where


MADV_DONTNEED = 4
MADV_FREE = 8


@syscall("madvise")
def sys_madvise(t, addr, length, advice):
    mem = t.process.mem
    addr = mem.untagged(addr)
    size = _align(length)
    if addr & PAGE_MASK:
        return -errno.EINVAL
    if size == 0:
        return 0
    if not mem.is_mapped(addr, size):
        return -errno.ENOMEM
    if advice in (MADV_DONTNEED, MADV_FREE):
        # DONTNEED must zero private anonymous pages: let the host kernel do it
        return host("madvise", mem.base + addr, size, MADV_DONTNEED if advice ==
                    MADV_DONTNEED else advice)
    return 0


@syscall("msync")
def sys_msync(t, addr, length, flags):
    mem = t.process.mem
    addr = mem.untagged(addr)
    size = _align(length)
    if addr & PAGE_MASK or (size and not mem.is_mapped(addr, size)):
        return -errno.ENOMEM if not addr & PAGE_MASK else -errno.EINVAL
    return host("msync", mem.base + addr, size, flags) if size else 0


@syscall("mlock")
def sys_mlock(t, addr, length):
    mem = t.process.mem
    addr = mem.untagged(addr)
    return 0 if mem.is_mapped(addr & ~PAGE_MASK, max(length, 1)) else -errno.ENOMEM


@syscall("munlock")
def sys_munlock(t, addr, length):
    return 0


@syscall("mlockall")
def sys_mlockall(t, flags):
    return 0


@syscall("munlockall")
def sys_munlockall(t):
    return 0


@syscall("riscv_flush_icache")
def sys_riscv_flush_icache(t, start, end, flags):
    t.process.engine.flush()
    return 0
