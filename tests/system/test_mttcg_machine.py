"""The machine-level services with a thread per hart, the default for a RISC-V board
with several harts on the native backend: the monitor (HMP/QMP, stop and cont),
savevm/loadvm, migration to a file and back, and the gdb stub.

Both harts run tests/gdbstub/baremetal_counter.S, adding to one RAM counter at
COUNTER (a plain load and store: the harts race, so it only grows); a stopped
machine's counter must not move, and a state that is loaded or migrated must bring
back the counter it saved exactly (~20 s, no Linux boot).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from pemu.block.qcow2 import create_qcow2
from tests.gdbstub.conftest import VirtMachine, baremetal, free_port, gdb  # noqa: F401
from tests.migration.pemu_process import Pemu

pytestmark = pytest.mark.backends("native")

COUNTER = 0x80100000  # where baremetal_counter.S counts


def _args(elf: Path, disk: str) -> list[str]:
    # no thread=: a thread per hart must be the default here
    return ["-M", "virt", "-m", "64M", "-bios", "none", "-kernel", str(elf), "-smp", "2",
            "-name", "smp,debug-threads=on",
            "-drive", f"file={disk},format=qcow2,if=none,id=d0",
            "-device", "virtio-blk-device,drive=d0,id=blk0"]


def _counter(vm: Pemu) -> int:
    text = vm.qmp.hmp(f"xp /1gx {COUNTER:#x}")
    return int(text.split(":")[1].split()[0], 16)


def _vcpu_threads(pid: int) -> list[str]:
    names = []
    for comm in Path(f"/proc/{pid}/task").glob("*/comm"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            names.append(comm.read_text().strip())
    return sorted(n for n in names if n.startswith("pemu-vcpu"))


def _thread_name(pid: int, tid: int) -> str:
    return Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()


def _grows(vm: Pemu, since: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while (now := _counter(vm)) <= since:
        assert time.monotonic() < deadline, "the harts do not run"
        time.sleep(0.05)
    return now


def test_monitor_savevm_loadvm_and_migration_with_a_thread_per_hart(
        baremetal, tcg_backend, tmp_path):  # noqa: F811
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed")
    disk = str(tmp_path / "disk.qcow2")
    create_qcow2(disk, 16 << 20)
    vm = Pemu(tmp_path, *_args(baremetal, disk))
    try:
        started = _grows(vm, 0)
        assert _vcpu_threads(vm.proc.pid) == ["pemu-vcpu1"]
        cpus = vm.qmp.cmd("query-cpus-fast")
        assert [c["cpu-index"] for c in cpus] == [0, 1]
        # each vCPU's own host thread, as QEMU reports them (libvirt pins vCPUs by it)
        assert _thread_name(vm.proc.pid, cpus[1]["thread-id"]) == "pemu-vcpu1"
        assert cpus[0]["thread-id"] != cpus[1]["thread-id"]
        info = vm.qmp.hmp("info cpus").strip().splitlines()
        assert len(info) == 2 and f"thread_id={cpus[1]['thread-id']}" in info[1], info

        for _ in range(3):  # stop holds both hart threads, cont lets them go again
            vm.qmp.cmd("stop")
            stopped = _counter(vm)
            time.sleep(0.2)
            assert _counter(vm) == stopped, "a hart ran while the machine was stopped"
            vm.qmp.cmd("cont")
            _grows(vm, stopped)

        vm.qmp.cmd("stop")
        saved = _counter(vm)
        assert saved > started
        assert vm.qmp.hmp("savevm s1") == ""
        vm.qmp.cmd("cont")
        _grows(vm, saved)
        vm.qmp.cmd("stop")
        assert vm.qmp.hmp("loadvm s1") == ""
        assert vm.qmp.cmd("query-status")["status"] == "paused"
        assert _counter(vm) == saved  # RAM as saved, and no hart ran since
        vm.qmp.cmd("cont")
        _grows(vm, saved)

        vm.qmp.cmd("stop")
        migrated = _counter(vm)
        state = tmp_path / "state"
        assert vm.qmp.hmp(f"migrate file:{state}") == ""  # HMP waits for the end
    finally:
        assert vm.finish() == 0
    dest = Pemu(tmp_path, *_args(baremetal, disk), "-S", "-incoming", f"file:{state}",
                name="dest")
    try:
        deadline = time.monotonic() + 120
        while dest.qmp.cmd("query-status")["status"] != "paused":
            assert time.monotonic() < deadline, dest.qmp.cmd("query-status")
            time.sleep(0.1)
        assert _counter(dest) == migrated
        dest.qmp.cmd("cont")
        _grows(dest, migrated)
        assert _vcpu_threads(dest.proc.pid) == ["pemu-vcpu1"]
    finally:
        assert dest.finish() == 0


def test_gdb_sees_and_switches_between_hart_threads(gdb, baremetal):  # noqa: F811
    """gdb-multiarch on the board started with -S and two harts, each on its thread:
    a breakpoint stops the machine with both harts running; both are gdb threads,
    each with its own mhartid; RAM reads; detach lets both run again.  (Continuing
    and stepping one thread at a time: the test below.)"""
    from pemu.gdbstub.riscv_system import start_system_gdbstub

    port = free_port()
    m = VirtMachine(baremetal, "-S", "-smp", "2", "-gdb", f"tcp::{port}")
    assert m.board.translator.parallel  # the default with two harts on native code
    _, server = start_system_gdbstub(m.vm, m.cfg.gdb)
    m.start()
    try:
        out = subprocess.run(
            [gdb, "-batch", "-nx", "-ex", "set architecture riscv:rv64",
             "-ex", f"target remote 127.0.0.1:{port}",
             "-ex", "break *0x80000010", "-ex", "continue",
             "-ex", "info threads",
             "-ex", "thread 1", "-ex", "info registers mhartid",
             "-ex", "thread 2", "-ex", "info registers mhartid",
             "-ex", "x/1xg 0x80100000", "-ex", "delete",
             "-ex", "detach", str(baremetal)],
            capture_output=True, text=True, timeout=120)
        text = out.stdout + out.stderr
        deadline = time.monotonic() + 5
        while m.vm.run_state != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        state_after_detach = m.vm.run_state
        first = int.from_bytes(m.vm.read_memory(COUNTER, 8), "little")
        deadline = time.monotonic() + 20
        while int.from_bytes(m.vm.read_memory(COUNTER, 8), "little") == first:
            assert time.monotonic() < deadline, "the harts did not run after detach"
            time.sleep(0.05)
    finally:
        server.close()
        m.close()
    assert "hit Breakpoint 1, loop ()" in text, text
    assert "Thread 1 (CPU#0" in text and "Thread 2 (CPU#1" in text, text
    hartids = re.findall(r"^mhartid\s+(0x[0-9a-f]+)", text, re.M)
    assert hartids == ["0x0", "0x1"], text
    assert "0x80100000:\t0x" in text, text
    assert "detached" in text
    assert state_after_detach == "running"


def _gdb_script(port: int, elf: Path, *commands: str) -> list[str]:
    args = ["-batch", "-nx", "-ex", "set architecture riscv:rv64",
            "-ex", f"target remote 127.0.0.1:{port}"]
    for c in commands:
        args += ["-ex", c]
    return [*args, str(elf)]


def _where(tag: str) -> str:
    """A gdb command printing ``TAG T<thread> PC <pc>`` for the current thread."""
    return f'printf "{tag} T%d PC %lx\\n", $_thread, $pc'


@pytest.mark.parametrize("mode", ["multi", "single"])
def test_gdb_moves_one_hart_thread_at_a_time(gdb, baremetal, mode):  # noqa: F811
    """gdb (13) steps a thread over a breakpoint or a watchpoint by resuming that
    thread alone (``vCont;c:N``, software single-step on RISC-V): the other hart must
    stay stopped, or its stop comes first and gdb dies on an assertion
    (finish_step_over).  With two harts on their threads or on one: a watchpoint
    written by one hart reports that hart; four continues through a breakpoint both
    harts run; with scheduler-locking, stepping thread 2 leaves thread 1 where it
    is (~1-3 s each)."""
    from pemu.gdbstub.riscv_system import start_system_gdbstub

    port = free_port()
    m = VirtMachine(baremetal, "-S", "-smp", "2", "-gdb", f"tcp::{port}",
                    "-accel", f"tcg,thread={mode}")
    assert m.board.translator.parallel == (mode == "multi")
    _, server = start_system_gdbstub(m.vm, m.cfg.gdb)
    m.start()
    try:
        out = subprocess.run([gdb, *_gdb_script(
            port, baremetal,
            "watch *(long*)0x80100008", "continue",  # the first hart to count to 100
            'printf "WATCH T%d PC %lx T2 %ld\\n", $_thread, $pc, $t2', "delete",
            "break *0x80000010",
            *[c for _ in range(4) for c in ("continue", _where("BREAK"))],
            "set scheduler-locking step",
            "thread 1", _where("BEFORE"), "thread 2", _where("BEFORE"),
            "stepi", "stepi", _where("AFTER"), "thread 1", _where("AFTER"),
            "set scheduler-locking replay", "continue", _where("BREAK"),
            "delete", "detach")], capture_output=True, text=True, timeout=120)
    finally:
        server.close()
        m.close()
    text = out.stdout + out.stderr
    assert "internal-error" not in text and out.returncode == 0, text
    # the hart that stored 100 at 0x80100008 is the one reported, stopped after its store
    watch = re.search(r"^WATCH T(\d) PC (\w+) T2 (\d+)$", text, re.M)
    assert watch is not None, text
    assert f"Thread {watch[1]} hit Hardware watchpoint 1" in text, text
    assert (watch[2], watch[3]) == ("80000022", "100"), text
    breaks = re.findall(r"^BREAK T(\d) PC (\w+)$", text, re.M)
    assert len(breaks) == 5 and {pc for _, pc in breaks} == {"80000010"}, text
    for thread, _ in breaks:
        assert f"Thread {thread} hit Breakpoint 2" in text, text
    before = dict(re.findall(r"^BEFORE T(\d) PC (\w+)$", text, re.M))
    after = dict(re.findall(r"^AFTER T(\d) PC (\w+)$", text, re.M))
    assert set(before) == set(after) == {"1", "2"}, text
    assert after["2"] != before["2"], text  # thread 2 stepped
    assert after["1"] == before["1"], text  # thread 1 stayed stopped meanwhile
    assert "detached" in text, text
