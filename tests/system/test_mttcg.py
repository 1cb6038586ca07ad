"""MTTCG: ``-accel tcg,thread=multi`` runs each hart on its own host thread.

``smp_atomics_stress.S``: 2 and 4 harts add to shared counters with amoadd, with an
LR/SC loop, under an LR/SC spinlock and under a Linux-style ticket lock (amoadd to
take it, a plain halfword store to release it), and amoadd in a tight loop for 0.3 s
of guest time; the exact totals are checked.  Translating the atomics as plain loads
and stores (what one host thread can afford) fails it with check 7 (lost increments);
helpers under a Python lock without the host cmpxchg failed it now and then with
check 5 (a ticket release lost).  The programs of the single-thread tests (atomics,
timer interrupts with a spinning hart, WFI woken by Sstc) must pass with a thread per
hart too; ``smp_smc.S`` patches code on one hart while the other runs it; the
monitor's stop holds every hart thread; and the lean Linux guest boots with 2 and 4
harts and runs processes in parallel.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.gdbstub.conftest import VirtMachine, baremetal  # noqa: F401 - fixture
from tests.libvirt.initrd_overlay import with_overlay
from tests.system.conftest import GUESTS, PROGRAMS, run_pemu
from tests.system.lean_guest import LeanGuest, need_lean_guest

QEMU = "qemu-system-riscv64"
MULTI = ["-accel", "tcg,backend=native,thread=multi"]
pytestmark = pytest.mark.backends("native")


def _run_multi(elf, *args: str, timeout: float = 120,
               accel: str = "") -> subprocess.CompletedProcess:
    return run_pemu("-M", "virt", *args, "-bios", "none", "-nographic", "-kernel", str(elf),
                    MULTI[0], MULTI[1] + accel, timeout=timeout)


def _explain(r: subprocess.CompletedProcess) -> str:
    return (f"check {r.returncode} failed\n{r.stdout.decode(errors='replace')}"
            f"{r.stderr.decode(errors='replace')}")


@pytest.mark.parametrize("harts, iters", [(2, 500), (4, 150)])
def test_atomics_stay_atomic_across_host_threads(build_program, tcg_backend, harts, iters):
    elf = build_program("smp_atomics_stress", HARTS=harts, ITERS=iters)
    r = _run_multi(elf, "-smp", str(harts))
    assert r.returncode == 0, _explain(r)
    assert b"DONE" in r.stdout


def test_qemu_mttcg_agrees_with_the_stress_program(build_program):
    if shutil.which(QEMU) is None:
        pytest.skip(f"needs {QEMU} (Debian qemu-system-misc)")
    elf = build_program("smp_atomics_stress", HARTS=4, ITERS=300)
    r = subprocess.run([QEMU, "-M", "virt", "-smp", "4", "-accel", "tcg,thread=multi",
                        "-bios", "none", "-kernel", str(elf), "-nographic"],
                       capture_output=True, input=b"", timeout=60)
    assert r.returncode == 0, f"QEMU: {_explain(r)}"


def test_code_buffer_resets_while_other_harts_run(build_program, tcg_backend):
    """``tb_flush.S`` with a 1 MiB code buffer: hart 0 translates 6 x 3000 blocks, so
    the buffer fills and is reset (once or twice) while hart 1's thread reads mtime in a loop,
    i.e. sits in generated code or in an MMIO helper waiting for the big lock, and
    comes back to the entry gate (runtime ``_call``) while the reset is pending.  A
    gate that kept the big lock while waiting there hangs (demonstrated: timeout);
    a reset that did not wait for the other thread could free the block it returns
    to (a narrow window: not reliably caught here)."""
    r = _run_multi(build_program("tb_flush", PASSES=6), "-smp", "2", "-d", "stats",
                   accel=",tb-size=1", timeout=60)
    assert r.returncode == 0, _explain(r)
    stats = r.stderr.decode()
    resets = int(stats.split(" code buffer resets")[0].rsplit(" ", 1)[1])
    assert resets >= 1, stats  # the buffer really was reset under the running hart 1


@pytest.mark.parametrize("program, smp", [("atomics", 2), ("smp_timer", 2),
                                          ("smp_sstc_wfi", 2), ("smp_smc", 2)])
def test_single_thread_programs_pass_with_a_thread_per_hart(build_program, tcg_backend,
                                                            program, smp):
    r = _run_multi(build_program(program), "-smp", str(smp))
    assert r.returncode == 0, _explain(r)
    assert b"DONE" in r.stdout and b"FAIL" not in r.stdout


@pytest.mark.parametrize("accel, error", [
    ("tcg,backend=python,thread=multi", b"the python backend runs every vCPU on one thread"),
    ("tcg,thread=many", b"thread=many: expected single or multi"),
])
def test_thread_option_errors(accel, error):
    r = run_pemu("-M", "virt", "-bios", "none", "-nographic", "-accel", accel, timeout=60)
    assert r.returncode == 1
    assert error in r.stderr, r.stderr.decode(errors="replace")


CC = "riscv64-linux-gnu-gcc"
THREADS_RUNS = 5  # programs/smp_threads.c runs per boot (races are caught by repetition)


@pytest.fixture(scope="module")
def threads_initrd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lean guest's initramfs plus ``/smp-threads`` (programs/smp_threads.c)."""
    need_lean_guest()
    if shutil.which(CC) is None:
        pytest.skip(f"needs {CC} (Debian gcc-riscv64-linux-gnu, libc6-dev-riscv64-cross)")
    out = tmp_path_factory.mktemp("smp-threads")
    binary = out / "smp-threads"
    subprocess.run([CC, "-static", "-O2", "-Wall", "-pthread", "-o", str(binary),
                    str(PROGRAMS / "smp_threads.c")], check=True, capture_output=True)
    return with_overlay(GUESTS / "initramfs.cpio.gz",
                        {"smp-threads": (0o100755, binary.read_bytes())}, out / "initrd")


def _vcpu_threads(pid: int) -> list[str]:
    """The host threads of pemu process ``pid`` named for a vCPU (-name debug-threads)."""
    names = []
    for comm in Path(f"/proc/{pid}/task").glob("*/comm"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            names.append(comm.read_text().strip())
    return sorted(n for n in names if n.startswith("pemu-vcpu"))


@pytest.mark.parametrize("smp, accel", [(2, []), (4, MULTI)],
                         ids=["smp2-default", "smp4-thread-multi"])
def test_lean_guest_runs_processes_and_threads_in_parallel(tcg_backend, threads_initrd,
                                                           smp, accel):
    """Linux brings every hart up (their IPIs, remote fences and timers cross host
    threads), then runs as many shell loops as harts, a pipeline through them, and
    programs/smp_threads.c: one thread pinned to each vCPU adding to shared counters
    with amoadd, with an lr/sc loop and under a futex mutex, and passing a token
    round the ring on a condition variable, every total checked exactly, several
    times over (and once with twice as many threads as vCPUs).  With ``-smp 2`` and no
    ``thread=`` the default must be a host thread per vCPU, as QEMU's."""
    guest = LeanGuest(["-smp", str(smp), "-name", "mttcg,debug-threads=on", *accel],
                      initrd=threads_initrd)
    try:
        guest.wait_prompt()
        assert _vcpu_threads(guest.proc.pid) == [f"pemu-vcpu{i}" for i in range(1, smp)]
        # the count is the last word before the done marker (the prompt may follow it
        # in the same read when the guest is quick)
        out = guest.run("grep -c ^processor /proc/cpuinfo")
        assert out.rsplit("PEMU-DONE", 1)[0].split()[-1] == str(smp), out
        loops = " ".join(str(i) for i in range(smp))
        out = guest.run(f"for i in {loops}; do (n=0; while [ $n -lt 2000 ]; do "
                        "n=$((n+1)); done; echo loop$i=$n) & done; wait", timeout=300)
        for i in range(smp):
            assert f"loop{i}=2000" in out
        out = guest.run("head -c 65536 /dev/urandom | tee /tmp/a | sha256sum; "
                        "sha256sum /tmp/a", timeout=300)
        sums = [line.split()[0] for line in out.splitlines() if line.endswith(("-", "/tmp/a"))]
        assert len(sums) == 2 and sums[0] == sums[1], out
        out = guest.run(f"r=0; while [ $r -lt {THREADS_RUNS} ]; do /smp-threads {smp} 3000 "
                        f"100 || break; r=$((r+1)); done; [ $r -eq {THREADS_RUNS} ]",
                        timeout=600)
        results = [line for line in out.splitlines() if line.startswith("SMP-THREADS")]
        assert len(results) == THREADS_RUNS, out
        # every thread found itself on the vCPU it was pinned to: all of them ran
        assert all(line.endswith(f"cpus={smp}") for line in results), out
        out = guest.run(f"/smp-threads {2 * smp} 1000 50", timeout=300)
        assert "SMP-THREADS OK" in out, out
    finally:
        guest.close()


COUNTER = 0x80100000  # where tests/gdbstub/baremetal_counter.S counts


def test_stop_parks_every_hart_thread(baremetal, tcg_backend):  # noqa: F811
    """The monitor's stop must hold every vCPU thread, not only the one that reached
    the pause gate first: both harts run the counting loop, and the count must not
    move while the machine is stopped, then move again after cont."""
    m = VirtMachine(baremetal, "-S", "-smp", "2", *MULTI)
    m.start()
    try:
        def count() -> int:
            return int.from_bytes(m.vm.read_memory(COUNTER, 8), "little")

        for _ in range(3):
            m.vm.cont()
            time.sleep(0.3)
            m.vm.stop()
            stopped = count()
            time.sleep(0.3)
            assert count() == stopped, "a hart ran while the machine was stopped"
        assert stopped > 0
        m.vm.cont()
        deadline = time.monotonic() + 20
        while count() == stopped:
            assert time.monotonic() < deadline, "the harts did not run again after cont"
            time.sleep(0.05)
    finally:
        m.close()
    assert not m.thread.is_alive()
