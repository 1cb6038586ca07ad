"""The guest's /proc: maps, auxv, cmdline and cpuinfo describe the riscv64 process, not pemu's host
process; openat2 resolves as the kernel does (QEMU 7.2 has no openat2: checked against the
kernel's documented results instead); unknown syscalls give ENOSYS, logged once."""

from __future__ import annotations

import os

from conftest import run_pemu, run_qemu


def _maps(text: bytes) -> list[tuple[int, int, str, int, str, str]]:
    rows = []
    for line in text.decode().splitlines():
        f = line.split(None, 5)
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        rows.append((lo, hi, f[1], int(f[2], 16), f[4], f[5] if len(f) > 5 else ""))
    return rows


def test_maps_show_the_guest_program_as_qemu_does(busybox, qemu):
    ours = run_pemu(str(busybox), "cat", "/proc/self/maps")
    theirs = run_qemu(str(busybox), "cat", "/proc/self/maps")
    assert ours.returncode == 0, ours.stderr
    program = str(busybox)
    # a static ET_EXEC sits where it is linked: the same lines under both emulators
    ours_program = [r for r in _maps(ours.stdout) if r[5] == program]
    assert ours_program == [r for r in _maps(theirs.stdout) if r[5] == program]
    assert len(ours_program) >= 2
    stack = [r for r in _maps(ours.stdout) if r[5] == "[stack]"]
    assert len(stack) == 1 and stack[0][2] == "rw-p"
    # nothing of pemu's host process: every address is a guest address
    assert all(hi <= 1 << 40 for _, hi, *_ in _maps(ours.stdout))


def test_cmdline_is_the_guests_as_qemu_shows_it(busybox, qemu):
    args = (str(busybox), "cat", "/proc/self/cmdline")  # (qemu 7.2: not thread-self)
    ours, theirs = run_pemu(*args), run_qemu(*args)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    assert ours.stdout.startswith(str(busybox).encode() + b"\0cat\0")


def test_cpuinfo_is_a_riscv_one(busybox):
    out = run_pemu(str(busybox), "cat", "/proc/cpuinfo").stdout.decode()
    isa = [line for line in out.splitlines() if line.startswith("isa")]
    assert len(isa) == (os.cpu_count() or 1)
    assert all(line.split(":")[1].strip().startswith("rv64imafdc") for line in isa)
    assert "vendor_id" not in out  # not the x86 host's


def test_auxv_file_matches_getauxval_and_openat2_resolves(build, tmp_path, qemu):
    prog = build("openat2_auxv")
    (tmp_path / "target").write_text("hello-target")
    (tmp_path / "link").symlink_to("target")
    log = tmp_path / "unimp.log"
    ours = run_pemu("-d", "unimp", "-D", str(log), "-L", "/usr/riscv64-linux-gnu", str(prog),
                    str(tmp_path))
    theirs = run_qemu("-L", "/usr/riscv64-linux-gnu", str(prog), str(tmp_path))
    assert ours.returncode == 0, ours.stderr
    lines = ours.stdout.decode().splitlines()
    assert lines[:4] == ["plain: hello-target", "no-symlinks: Too many levels of symbolic links",
                         "beneath: Invalid cross-device link",
                         "future field: Argument list too long"]
    assert lines[4] == "auxv: 6 checked, 0 wrong"
    assert theirs.stdout.decode().splitlines()[4:] == lines[4:]
    assert lines[5] == "unknown syscall: -1 Function not implemented, -1 Function not implemented"
    # -d unimp names an unknown syscall once, however often the guest calls it
    assert log.read_text().splitlines().count("Unsupported syscall: 999 (syscall_999)") == 1
