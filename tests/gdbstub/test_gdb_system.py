"""Real gdb-multiarch against the riscv virt board started with -S -gdb: breakpoint at
the kernel entry, continue, registers (core and CSR), stepi, x/, a watchpoint, detach."""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Iterator

from pemu.gdbstub.riscv_system import start_system_gdbstub

from .conftest import VirtMachine, free_port


@contextlib.contextmanager
def _stopped_machine_with_gdbstub(baremetal) -> Iterator[tuple[VirtMachine, int]]:
    """The virt board stopped at reset (-S) with its gdb stub on a free port."""
    port = free_port()
    m = VirtMachine(baremetal, "-S", "-gdb", f"tcp::{port}")
    _, server = start_system_gdbstub(m.vm, m.cfg.gdb)
    m.start()
    try:
        yield m, port
    finally:
        server.close()
        m.close()


def test_gdb_on_the_virt_board(gdb, baremetal):
    with _stopped_machine_with_gdbstub(baremetal) as (m, port):
        out = subprocess.run(
            [gdb, "-batch", "-nx", "-ex", "set architecture riscv:rv64",
             "-ex", f"target remote 127.0.0.1:{port}",
             "-ex", "info registers pc",
             "-ex", "break *0x80000000", "-ex", "continue",
             "-ex", "info registers pc",
             "-ex", "stepi", "-ex", "stepi", "-ex", "info registers pc",
             "-ex", "x/2xg 0x80100000",
             "-ex", "watch *(long *)0x80100008", "-ex", "continue",
             "-ex", "info registers t2 mhartid mstatus",
             "-ex", "info threads", "-ex", "detach", str(baremetal)],
            capture_output=True, text=True, timeout=120)
        text = out.stdout + out.stderr
        deadline = time.monotonic() + 5
        while m.vm.run_state != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        state_after_detach = m.vm.run_state
        counter = int.from_bytes(m.vm.read_memory(0x80100000, 8), "little")
    assert re.search(r"^pc\s+0x1000\b", text, re.M), text  # -S: stopped at the reset vector
    assert "Breakpoint 1, _start ()" in text, text
    pcs = [int(x, 16) for x in re.findall(r"^pc\s+(0x[0-9a-f]+)", text, re.M)]
    assert pcs[1] == 0x80000000
    assert 0x80000000 < pcs[2] <= 0x80000008  # two single steps, 2- or 4-byte insns
    assert "0x80100000:\t0x0000000000000000\t0x0000000000000000" in text, text
    assert "Old value = 0\nNew value = 100" in text, text
    assert re.search(r"^t2\s+0x64\s+100", text, re.M), text
    assert re.search(r"^mhartid\s+0x0\s", text, re.M), text
    assert "mstatus" in text and "Thread 1 (CPU#0" in text, text
    assert "detached" in text
    assert state_after_detach == "running" and counter >= 100


def test_gdb_hardware_breakpoints_and_read_watchpoints(gdb, baremetal):
    """hbreak and rwatch/awatch (Z1, Z3, Z4) stop a continuing machine exactly where
    they should: they are checked like the guest's debug triggers, in translated code."""
    with _stopped_machine_with_gdbstub(baremetal) as (m, port):
        out = subprocess.run(
            [gdb, "-batch", "-nx", "-ex", "set architecture riscv:rv64",
             "-ex", f"target remote 127.0.0.1:{port}",
             "-ex", "hbreak loop", "-ex", "continue", "-ex", "continue",
             "-ex", "continue", "-ex", "info registers t2", "-ex", "delete",
             "-ex", "rwatch *(long *)0x80100000", "-ex", "continue",
             "-ex", "info registers pc t0", "-ex", "delete",
             "-ex", "awatch *(long *)0x80100008", "-ex", "continue",
             "-ex", "info registers t2", "-ex", "detach", str(baremetal)],
            capture_output=True, text=True, timeout=120)
        text = out.stdout + out.stderr
    assert text.count("Breakpoint 1, loop ()") == 3, text
    assert re.search(r"^t2\s+0x2\s+2$", text, re.M), text  # stopped at each pass
    assert "Hardware read watchpoint 2: *(long *)0x80100000\n\nValue = 2" in text, text
    # stopped before the load, which gdb stepped over: pc on the addi, t0 loaded
    assert re.search(r"^pc\s+0x8000000e\s", text, re.M), text
    assert re.search(r"^t0\s+0x2\s+2$", text, re.M), text
    assert "Hardware access (read/write) watchpoint 3: *(long *)0x80100008" in text, text
    assert "New value = 100" in text, text
    assert re.search(r"^t2\s+0x64\s+100$", text, re.M), text
