"""ELF loading and the initial stack, checked by reading guest memory back."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from conftest import BUSYBOX, SYSROOT

from pemu.linux_user import initial_stack as st
from pemu.linux_user.elf import ElfError, parse_elf
from pemu.linux_user.loader import PIE_BASE, load_program
from pemu.linux_user.vmem import GuestVirtualMemory


def test_static_busybox_layout():
    if not BUSYBOX.exists():
        pytest.skip("busybox guest binary missing")
    elf = parse_elf(BUSYBOX.read_bytes())
    mem = GuestVirtualMemory()
    prog = load_program(mem, str(BUSYBOX), None)
    assert prog.entry == elf.entry and prog.start_pc == elf.entry and prog.interp_base == 0
    assert prog.start_brk % 4096 == 0
    assert prog.start_brk >= max(p.vaddr + p.memsz for p in elf.loads)
    # the program headers are visible where AT_PHDR says
    assert mem.read(prog.phdr, 56) == elf.data[elf.phoff : elf.phoff + 56]
    sp, auxv = st.setup_stack(mem, prog, [b"busybox", b"echo", b"hi"], [b"A=1"], b"/bb")
    assert sp % 16 == 0
    argc, a0, a1, a2, null = struct.unpack("<5Q", mem.read(sp, 40))
    assert (argc, null) == (3, 0)
    assert [mem.read_cstring(a) for a in (a0, a1, a2)] == [b"busybox", b"echo", b"hi"]
    env0, env_null = struct.unpack("<2Q", mem.read(sp + 40, 16))
    assert mem.read_cstring(env0) == b"A=1" and env_null == 0
    aux = dict(auxv)
    assert aux[st.AT_PAGESZ] == 4096 and aux[st.AT_ENTRY] == elf.entry
    assert aux[st.AT_HWCAP] == 0x112D  # rv64 I, M, A, F, D, C
    assert len(mem.read(aux[st.AT_RANDOM], 16)) == 16
    assert mem.read_cstring(aux[st.AT_EXECFN]) == b"/bb"
    assert mem.read_cstring(aux[st.AT_PLATFORM]) == b"riscv64"
    pairs = struct.unpack(f"<{2 * len(auxv)}Q", mem.read(sp + 56, 16 * len(auxv)))
    assert list(zip(pairs[::2], pairs[1::2], strict=True)) == auxv


def test_dynamic_pie_gets_interpreter(build):
    prog_path = build("cpu_bound")
    mem = GuestVirtualMemory()
    prog = load_program(mem, str(prog_path), SYSROOT)
    assert prog.entry >= PIE_BASE
    assert prog.interp_base and prog.start_pc != prog.entry
    ld = parse_elf(open(f"{SYSROOT}/lib/ld-linux-riscv64-lp64d.so.1", "rb").read())
    assert prog.start_pc == prog.interp_base + ld.entry


def test_missing_interpreter(build, tmp_path):
    mem = GuestVirtualMemory()
    with pytest.raises(ElfError, match="interpreter"):
        load_program(mem, str(build("cpu_bound")), str(tmp_path))  # wrong sysroot: the host
        # has no riscv64 /lib/ld-linux-riscv64-lp64d.so.1 either


def _host_mappings_of(path) -> list[tuple[int, int]]:
    """This process's mappings of file ``path`` (host address ranges), by inode."""
    st = os.stat(path)
    found = []
    for line in open("/proc/self/maps"):
        fields = line.split()
        if len(fields) >= 6 and int(fields[4]) == st.st_ino:
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            found.append((lo, hi))
    return found


@pytest.mark.parametrize("which", ["static", "pie"])
def test_segments_mapped_from_the_file_read_back_as_its_bytes(which, build):
    """The whole pages of a segment are the file's own pages (mapped private, not read
    and copied: loader._place_segment), the partial ones copied; either way the guest
    sees exactly the file's bytes, zeros around them and in .bss, and its writes never
    reach the file.  The pie case checks its dynamic loader too (cpu_bound itself has
    no whole page of file bytes)."""
    path = BUSYBOX if which == "static" else build("cpu_bound")
    if not path.exists():
        pytest.skip("guest binary missing")
    mem = GuestVirtualMemory()
    prog = load_program(mem, str(path), SYSROOT)
    elf = parse_elf(path.read_bytes())
    files = [(path, prog.entry - elf.entry)]
    if prog.interp_base:
        ld = Path(f"{SYSROOT}/lib/ld-linux-riscv64-lp64d.so.1")
        lo = min(p.vaddr for p in parse_elf(ld.read_bytes()).loads) & ~0xFFF
        files.append((ld, prog.interp_base - lo))
    mapped = 0
    for file, bias in files:
        data = file.read_bytes()
        for ph in parse_elf(data).loads:
            start = ph.vaddr + bias
            assert mem.mem[start : start + ph.filesz] == data[ph.offset : ph.offset + ph.filesz]
            bss_end = min(start + ph.memsz, (start + ph.memsz + 0xFFF) & ~0xFFF)
            assert not any(mem.mem[start + ph.filesz : bss_end])
            assert not any(mem.mem[start & ~0xFFF : start])
            first = (start + 0xFFF) & ~0xFFF
            if first + 0x1000 > ((start + ph.filesz) & ~0xFFF):
                continue  # no whole page: copied
            # the file's pages, in this process, where the guest sees them
            assert any(lo <= mem.base + first < hi for lo, hi in _host_mappings_of(file))
            mapped += 1
            # a write (the loader's kind: ignoring protections) stays in the guest
            mem.write_initial(first, b"\xff" * 8)
            assert mem.mem[first : first + 8] == b"\xff" * 8
            at = ph.offset + (first - start)
            assert file.read_bytes()[at : at + 8] == data[at : at + 8]
    assert mapped


def test_a_file_system_that_cannot_map_files_gets_its_segments_copied(monkeypatch):
    if not BUSYBOX.exists():
        pytest.skip("busybox guest binary missing")
    from pemu.linux_user import loader

    def refuse(*args, **kwargs):
        raise OSError(19, "No such device")  # ENODEV: what mmap of such a file says

    mem = GuestVirtualMemory()  # its page tables are mmaps: made before the refusal
    monkeypatch.setattr(loader.mmap, "mmap", refuse)
    load_program(mem, str(BUSYBOX), None)
    data = BUSYBOX.read_bytes()
    for ph in parse_elf(data).loads:
        assert mem.mem[ph.vaddr : ph.vaddr + ph.filesz] == data[ph.offset : ph.offset + ph.filesz]
    # none of the file's pages is mapped in this guest (earlier tests' guests may be)
    assert not [r for r in _host_mappings_of(BUSYBOX)
                if mem.base <= r[0] < mem.base + mem.size]
