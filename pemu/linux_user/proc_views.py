"""The guest's view of the /proc files that describe the process and the CPU.

Opened as they are, ``/proc/self/maps`` would list pemu's own host mappings (Python,
the code cache, the 64 GiB guest reservation), ``/proc/self/auxv`` pemu's auxiliary
vector, ``/proc/self/cmdline`` pemu's Python command line and ``/proc/cpuinfo`` the x86
host: programs that read them (glibc's
``pthread_getattr_np``, sanitizers, ``ldd``-style tools, build systems probing the CPU)
would see another machine.  An open of one of these paths gets instead a memfd holding
what the riscv64 kernel would show for this guest.
"""

from __future__ import annotations

import os
import struct

from .loader import STACK_SIZE, STACK_TOP
from .vmem import PAGE_SHIFT, PROT_EXEC, PROT_READ, PROT_WRITE

ISA = "rv64imafdc_zicntr_zicsr_zifencei_zihpm_zba_zbb_zbs"


def _own_paths(pid: int, name: str) -> tuple[bytes, ...]:
    return tuple(p.encode() for p in (f"/proc/self/{name}", f"/proc/{pid}/{name}",
                                      f"/proc/thread-self/{name}"))


def synthetic_content(process: object, path: bytes) -> bytes | None:
    """The guest's content for ``path``, or None when the host file is right as it is."""
    if path in _own_paths(process.pid, "maps"):
        return guest_maps(process).encode()
    if path in _own_paths(process.pid, "auxv"):
        return b"".join(struct.pack("<QQ", k, v) for k, v in process.auxv)
    if path in _own_paths(process.pid, "cmdline") and process.argv:
        return b"".join(arg + b"\0" for arg in process.argv)
    if path == b"/proc/cpuinfo":
        arch = getattr(process, "arch", None)
        return (arch.cpuinfo() if arch is not None and arch.cpuinfo else cpuinfo()).encode()
    return None


def open_synthetic(content: bytes) -> int:
    """A read-only-looking descriptor positioned at the start of ``content``."""
    fd = os.memfd_create("pemu-proc", os.MFD_CLOEXEC)
    try:
        os.write(fd, content)
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd


def cpuinfo() -> str:
    """One entry per host CPU, in the riscv64 kernel's format."""
    entries = []
    for n in range(os.cpu_count() or 1):
        entries.append(f"processor\t: {n}\nhart\t\t: {n}\nisa\t\t: {ISA}\nmmu\t\t: sv39\n"
                       "uarch\t\t: pemu\nmvendorid\t: 0x0\nmarchid\t\t: 0x0\nmimpid\t\t: 0x0\n")
    return "\n".join(entries) + "\n"


def _perms(prot: int, shared: bool) -> str:
    return ("r" if prot & PROT_READ else "-") + ("w" if prot & PROT_WRITE else "-") + \
        ("x" if prot & PROT_EXEC else "-") + ("s" if shared else "p")


def guest_maps(process: object) -> str:
    """The guest's mappings at guest addresses: the host's own mappings inside the guest
    reservation, split where the guest's page permissions or the file the ELF loader
    copied change, named as the kernel names them (file, [heap], [stack])."""
    mem = process.mem
    lo_host, hi_host = mem.base, mem.base + mem.size
    stack = (STACK_TOP - STACK_SIZE, STACK_TOP)
    heap = (getattr(process, "brk_start", 0), getattr(process, "brk", 0))
    regions = sorted(mem.file_regions, key=lambda r: r.start)

    def loaded_from(addr: int):
        for r in regions:
            if r.start <= addr < r.end:
                return r
        return None

    lines = []
    runs: list[tuple] = []  # (start, end, prot, shared, offset, dev, inode, name)
    with open("/proc/self/maps") as f:
        host_lines = f.read().splitlines()
    for line in host_lines:
        fields = line.split(None, 5)
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if end <= lo_host or start >= hi_host:
            continue
        start, end = max(start, lo_host) - lo_host, min(end, hi_host) - lo_host
        host_file = (int(fields[2], 16), fields[3], fields[4],
                     fields[5] if len(fields) > 5 else "")
        shared = fields[1].endswith("s")
        page, last = start >> PAGE_SHIFT, end >> PAGE_SHIFT
        # runs found at C speed: the reservation is one host mapping of millions of
        # pages, which a page-by-page walk took a second of CPU to cross (glibc reads
        # this file in programs as small as grep)
        while page < last:
            page = mem.mapped.find(b"\1", page, last)
            if page < 0:
                break
            unmapped = mem.mapped.find(b"\0", page, last)
            stop = last if unmapped < 0 else unmapped
            prot, region = mem.prot[page], loaded_from(page << PAGE_SHIFT)
            if region is not None:
                stop = min(stop, region.end >> PAGE_SHIFT)
            else:  # up to the next file region
                stop = min([stop, *(r.start >> PAGE_SHIFT for r in regions
                                    if page < r.start >> PAGE_SHIFT < stop)])
            same = mem.prot[page:stop]
            run = page + len(same) - len(same.lstrip(bytes([prot])))
            a, b = page << PAGE_SHIFT, run << PAGE_SHIFT
            if region is not None:
                off, dev, inode, label = region.offset + a - region.start, region.dev, \
                    str(region.inode), region.path
            else:
                offset, dev, inode, label = host_file
                off = offset + (a - start) if inode != "0" else 0
                if not label and a < stack[1] and b > stack[0]:
                    label = "[stack]"
                elif not label and heap[0] <= a < heap[1]:
                    label = "[heap]"
            _add_run(runs, (a, b, prot, shared, off, dev, inode, label))
            page = run
    for a, b, prot, shared, off, dev, inode, label in runs:
        text = f"{a:08x}-{b:08x} {_perms(prot, shared)} {off:08x} {dev} {inode} "
        # the kernel pads the name to column 73 (seq_pad on a 64-bit host)
        lines.append(text.ljust(73) + label if label else text.rstrip())
    return "\n".join(lines) + "\n"


def _add_run(runs: list[tuple], run: tuple) -> None:
    """Append a run of pages, or extend the last one where it continues it (same
    permissions, file and name, the file offset following on): the loader's whole
    pages and partial ones are separate host mappings of what is one guest mapping."""
    if runs:
        a, b, prot, shared, off, dev, inode, label = runs[-1]
        na, nb, nprot, nshared, noff, ndev, ninode, nlabel = run
        if (na == b and (nprot, nshared, ndev, ninode, nlabel) == (prot, shared, dev, inode, label)
                and (inode == "0" or noff == off + (b - a))):
            runs[-1] = (a, nb, prot, shared, off, dev, inode, label)
            return
    runs.append(run)
